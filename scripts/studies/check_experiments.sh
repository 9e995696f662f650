#!/usr/bin/env bash
# Does any shipped experiment end in a grid of copies? Trains each experiment on the same
# faces for MINUTES minutes (FID during training off, everything else as shipped), then
# draws each export's grid and measures how alike its 64 faces are (scripts/studies/score_runs.py:
# closest and median pair; copies of one face bring the closest pair near 0). Look at
# every grid as well.
#
#   scripts/studies/check_experiments.sh FACES OUT [MINUTES] [EXPERIMENT...]
#   scripts/studies/check_experiments.sh ~/data/faces runs/collapse 12
#   scripts/studies/check_experiments.sh ~/data/faces runs/collapse 12 naruto nyu
#
# FACES: a folder of face images (the experiments' own data sets work too: give their
# folder); OUT: where the runs go. MINUTES defaults to 12; the experiments default to all
# six shipped ones. Set FD_METER to score the exports as well (as for score_runs.py), and
# ANIMEGAN_OVERRIDES for more overrides of every run (e.g. "dataset.cache_dir=~/cache").
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,15p "$0"; exit 2; }
FACES=$1; OUT=$2; MINUTES=${3:-12}; shift $(( $# < 3 ? $# : 3 ))
EXPERIMENTS=("$@"); [ ${#EXPERIMENTS[@]} -gt 0 ] || EXPERIMENTS=(oulu nyu afg gochiusa naruto paper)
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
for experiment in "${EXPERIMENTS[@]}"; do
    # every export named generator.pt (afg's is afg.pt), where score_runs.py looks for it
    # shellcheck disable=SC2086  # ANIMEGAN_OVERRIDES is a list of words on purpose
    animegan-train "experiment=$experiment" dataset=folder "dataset.root=$FACES" eval.every_n_epochs=0 \
        "train.max_minutes=$MINUTES" epochs=100000 checkpoint.export=generator.pt \
        "hydra.run.dir=$OUT/$experiment" ${ANIMEGAN_OVERRIDES:-}
done
python3 "$HERE/score_runs.py" "${EXPERIMENTS[@]/#/$OUT/}" ${FD_METER:+--fd "$FD_METER"}
