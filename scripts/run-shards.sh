#!/bin/bash
# Runs the N shards of a sweep on this machine, P at a time, then merges them: the one-machine
# counterpart of scripts/slurm/reproduce-array.sbatch.
#
#   scripts/run-shards.sh N P OUT jghm-arguments...
#
# runs `jghm ARGS --shard K/N --out OUT.shards/shard-K` for K = 1..N as background processes
# (at most P at once; each shard's log in OUT.shards/shard-K.log), then
# `jghm merge OUT OUT.shards/shard-1 .. shard-N`. A shard folder that already holds settings is
# continued with --resume (rates, reproduce), so running the script again after an interruption finishes the work.
# Examples:
#   scripts/run-shards.sh 4 2 plots/reproduce-merged reproduce risks --bayes-only
#   scripts/run-shards.sh 3 2 sweep rates --quick
#   JGHM=target/release/jghm scripts/run-shards.sh 2 2 emu emulate --model model.json --widths 4,8,16,32

set -euo pipefail

if [ "$#" -lt 4 ]; then
    echo "usage: $0 N P OUT jghm-arguments..." >&2
    exit 2
fi
N=$1
P=$2
OUT=$3
shift 3
JGHM=${JGHM:-jghm}
case "$N$P" in
    *[!0-9]*) echo "$0: N and P must be whole numbers" >&2; exit 2 ;;
esac
if [ "$N" -lt 1 ] || [ "$P" -lt 1 ]; then
    echo "$0: N and P must be at least 1" >&2
    exit 2
fi

SHARDS="$OUT.shards"
mkdir -p "$SHARDS"
pids=()
dirs=()
failed=0
for K in $(seq 1 "$N"); do
    dir="$SHARDS/shard-$K"
    dirs+=("$dir")
    resume=()
    # The emulate sweep has no --resume: its shards start again.
    if [ "$1" != emulate ] && { compgen -G "$dir/*settings.json" > /dev/null || [ -e "$dir/sweep.json" ]; }; then
        resume=(--resume)
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$P" ]; do
        wait -n || failed=1
    done
    echo "shard $K/$N -> $dir" >&2
    "$JGHM" "$@" --shard "$K/$N" --out "$dir" "${resume[@]}" > "$SHARDS/shard-$K.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done
if [ "$failed" -ne 0 ]; then
    echo "$0: a shard failed (see $SHARDS/shard-*.log); run the script again to continue" >&2
    exit 1
fi
"$JGHM" merge "$OUT" "${dirs[@]}"
