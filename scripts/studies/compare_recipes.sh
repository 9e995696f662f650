#!/usr/bin/env bash
# The default command on real faces against the classic PyTorch DCGAN example and against
# the DCGAN paper's recipe (experiment=paper), equal wall time, one CPU core each: the
# comparison in docs/recipes.md. The default and the classic example train at once (cores
# 0 and 1), then the paper's recipe on core 1 while the default's core stays busy with a
# copy of the same run, so every run shares the machine with one other. Run it on an
# otherwise idle machine with at least 2 cores.
#
#   scripts/studies/compare_recipes.sh FACES OUT "FD METER" [MINUTES] [animegan-train overrides...]
#   scripts/studies/compare_recipes.sh ~/data/faces runs/compare "animefd --n 2000" 30
#
# FACES: a folder of face images; OUT: where the runs go; the FD meter: a command that
# takes a generator file and prints "FD32 <x>  FD64 <y>" (see scripts/studies/score_runs.py).
# MINUTES (default 30) is each run's training time; snapshots are taken at 5, 10, 15, 30,
# 60 and 120 minutes where they fall inside it. Needs animegan installed (animegan-train
# and animegan-sample on PATH) and torchvision for the classic example.
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,16p "$0"; exit 2; }
FACES=$1; OUT=$2; FD=$3; MINUTES=${4:-30}; shift $(( $# < 4 ? $# : 4 ))
HERE=$(cd "$(dirname "$0")" && pwd)
MARKS=$(python3 -c "m=float('$MINUTES'); print(','.join(f'{x:g}' for x in (5, 10, 15, 30, 60, 120) if x < m))")
mkdir -p "$OUT"
export OMP_NUM_THREADS=1  # one thread per run: each run has one core to itself

train() {  # train CORE NAME [overrides...]: the default command (or a recipe) for MINUTES minutes
    local core=$1 name=$2; shift 2
    taskset -c "$core" animegan-train dataset=folder "dataset.root=$FACES" "train.max_minutes=$MINUTES" epochs=100000 \
        "checkpoint.snapshot_minutes=[$MARKS]" "hydra.run.dir=$OUT/$name" "$@" > "$OUT/$name.log" 2>&1
}

# 1. the default command beside the classic example
train 0 default "$@" &
taskset -c 1 python3 "$HERE/../bench/classic_dcgan.py" --data "$FACES" --out "$OUT/classic" --minutes "$MINUTES" \
    --export-minutes "$MARKS" > "$OUT/classic.log" 2>&1
wait
# 2. the paper's recipe beside a second default run (a load like the first pair's)
train 0 default-again "$@" &
train 1 paper experiment=paper "$@"
wait
# (each animegan run's last row, "end", is its generator.pt after MINUTES minutes)
python3 "$HERE/score_runs.py" "$OUT/classic" "$OUT/default" "$OUT/paper" "$OUT/default-again" --fd "$FD"
