#!/usr/bin/env bash
# Starts under contention: many backprop processes at the same instant, and how fast a
# waiting process starts once another frees its slot.
#
#   benches/contention.sh [--no-build] [--rounds N]
#
#   burst    20 `backprop run -p 20 --gpus 0 -- python3 -c 'sleep 1'` started together
#            (a barrier file) vs 20 plain `python3 -c 'sleep 1'` started the same way:
#            wall time of the whole burst, median of N rounds. Target: ratio <= 1.3.
#   wake-up  `-p 1`: one run sleeps 1 s, a second waits for its slot (pollInterval 60 s, so
#            only the wake file can start it early); latency = the second's start - the
#            first's end, from the records. Median and worst of N rounds. Target: <= 50 ms.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/release/backprop"
BUILD=1 ROUNDS=5
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --rounds) ROUNDS=$2; shift ;;
        *) echo "contention.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release -q)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export BACKPROP_MIN_FREE_RAM_GB=0 BACKPROP_MAX_CPU_LOAD=1000

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# One burst of 20 processes waiting on one barrier; prints its wall time in ms.
burst() {
    local kind=$1
    local dir=$WORK/burst-$kind-$RANDOM
    mkdir -p "$dir"
    export BACKPROP_HOME=$dir/home
    for i in $(seq 20); do
        (
            while [ ! -e "$dir/go" ]; do sleep 0.002; done
            if [ "$kind" = backprop ]; then
                "$BIN" run -q -p 20 --gpus 0 -- python3 -c 'import time; time.sleep(1)'
            else
                python3 -c 'import time; time.sleep(1)'
            fi
        ) &
    done
    sleep 0.5
    local start
    start=$(now_ms)
    touch "$dir/go"
    wait
    echo $(( $(now_ms) - start ))
}

# One wake-up: prints the second run's start minus the first run's end, in ms.
wakeup() {
    local dir=$WORK/wake-$RANDOM
    mkdir -p "$dir"
    export BACKPROP_HOME=$dir/home BACKPROP_POLL_INTERVAL=60
    "$BIN" run -q -p 1 --gpus 0 --run-id first -- sleep 1 &
    for _ in $(seq 200); do
        "$BIN" --json list 2>/dev/null | grep -q '"running"' && break
        sleep 0.02
    done
    "$BIN" run -q -p 1 --gpus 0 --run-id second -- true
    wait
    "$BIN" --json list | python3 -c '
import json, sys
runs = {r["id"]: r for r in json.load(sys.stdin)}
print(runs["second"]["startTime"] - runs["first"]["attempts"][0]["endTime"])'
    unset BACKPROP_POLL_INTERVAL
}

plain=() bp=() wake=()
for _ in $(seq "$ROUNDS"); do
    plain+=("$(burst plain)")
    bp+=("$(burst backprop)")
    wake+=("$(wakeup)")
done
p=$(printf '%s\n' "${plain[@]}" | median)
b=$(printf '%s\n' "${bp[@]}" | median)
w=$(printf '%s\n' "${wake[@]}" | median)
worst=$(printf '%s\n' "${wake[@]}" | sort -n | tail -1)
echo "burst of 20, plain python3:   ${p} ms (median of $ROUNDS: ${plain[*]})"
echo "burst of 20, backprop -p 20:  ${b} ms (median of $ROUNDS: ${bp[*]})"
awk -v b="$b" -v p="$p" 'BEGIN {printf "ratio:                        %.2f (target <= 1.3)\n", b / p}'
echo "wake-up latency:              median ${w} ms, worst ${worst} ms (${wake[*]}; target <= 50 ms)"
