#!/usr/bin/env bash
# The classic PyTorch DCGAN example against `experiment=recommended`, equal wall time, one
# after the other on this machine, each scored at 5, 15 and 30 minutes (and at the end):
# the comparison in docs/recipes.md. Run it on an otherwise idle machine.
#
#   scripts/compare_recipes.sh FACES OUT "FD METER" [MINUTES] [animegan-train overrides...]
#   scripts/compare_recipes.sh ~/data/faces runs/compare "animefd --n 2000" 30
#   scripts/compare_recipes.sh ~/data/faces runs/long "animefd --n 2000" 120 dataset.cache_dir=~/cache
#
# FACES: a folder of face images; OUT: where both runs go; the FD meter: a command that
# takes a generator file and prints "FD32 <x>  FD64 <y>" (see scripts/score_runs.py).
# MINUTES (default 30) is each run's training time; snapshots are taken at 5, 15, 30, 60
# and 120 minutes where they fall inside it. Needs animegan installed (animegan-train and
# animegan-sample on PATH) and torchvision for the classic example.
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,16p "$0"; exit 2; }
FACES=$1; OUT=$2; FD=$3; MINUTES=${4:-30}; shift $(( $# < 4 ? $# : 4 ))
HERE=$(cd "$(dirname "$0")" && pwd)
MARKS=$(python3 -c "m=float('$MINUTES'); print(','.join(f'{x:g}' for x in (5, 15, 30, 60, 120) if x < m))")
mkdir -p "$OUT"

python3 "$HERE/classic_dcgan.py" --data "$FACES" --out "$OUT/classic" --minutes "$MINUTES" --export-minutes "$MARKS"
animegan-train experiment=recommended dataset=folder "dataset.root=$FACES" "train.max_minutes=$MINUTES" epochs=100000 \
    "checkpoint.snapshot_minutes=[$MARKS]" "hydra.run.dir=$OUT/recommended" "$@"
# (the recipe's last row, "end", is its generator.pt after MINUTES minutes)
python3 "$HERE/score_runs.py" "$OUT/classic" "$OUT/recommended" --fd "$FD"
