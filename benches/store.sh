#!/usr/bin/env bash
# The store at 100,000 runs, whole processes (the per-operation figures are
# `cargo bench --bench store`).
#
#   benches/store.sh [--no-build] [--runs N] [--seconds S]
#
#   start     `backprop run -q --gpus 0 --gpu-probe none -- true` with N runs in the store vs
#             an empty store (median of 15; the export is off here, it is measured below).
#             Target: <= 1.5x.
#   list      `backprop list --limit 50` and `backprop list --all` with N runs (median of 5).
#             Targets: <= 30 ms and <= 1 s.
#   memory    peak RSS of the supervising process of a 2 s run with N runs in the store.
#             Target: <= 20 MB.
#   lock      16 runs printing progress 10 times a second for S seconds; a probe tries to
#             take the write lock every 5 ms without waiting: the share of tries that find it
#             taken is the share of time it is busy. Target: < 5 %.
#   export    the same 16 runs with the export on: CPU of all backprop processes (minus the
#             same without the export) and bytes of experiments.json written, per minute.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/release/backprop"
BUILD=1 RUNS=100000 SECONDS_LOAD=30
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --runs) RUNS=$2; shift ;;
        --seconds) SECONDS_LOAD=$2; shift ;;
        *) echo "store.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
# shellcheck source=support/store_fill.sh
. "$ROOT/benches/support/store_fill.sh"
WORK=$(mktemp -d)
trap 'pkill -f "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export BACKPROP_MIN_FREE_RAM_GB=0 BACKPROP_MAX_CPU_LOAD=1000 BACKPROP_GPU_PROBE=none

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { python3 -c 'import time; print(int(time.monotonic_ns() // 1000000))'; }
timed() { # prints the median wall time in ms of N runs of a command
    local n=$1; shift
    for _ in $(seq "$n"); do
        local t0 t1
        t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
        echo $(( (t1 - t0) / 1000000 ))
    done | median
}

BIG=$WORK/big EMPTY=$WORK/empty
echo "filling a store with $RUNS runs..." >&2
BACKPROP_BENCH_HOME=$BIG BACKPROP_BENCH_RUNS=$RUNS "$FILL" >&2
mkdir -p "$EMPTY"

start_empty=$(BACKPROP_HOME=$EMPTY BACKPROP_EXPORT_JSON=false timed 15 "$BIN" run -q --gpus 0 -- true)
start_big=$(BACKPROP_HOME=$BIG BACKPROP_EXPORT_JSON=false timed 15 "$BIN" run -q --gpus 0 -- true)
list50=$(BACKPROP_HOME=$BIG BACKPROP_EXPORT_JSON=false timed 5 "$BIN" list --limit 50)
listall=$(BACKPROP_HOME=$BIG BACKPROP_EXPORT_JSON=false timed 5 "$BIN" list --all)
rss=$(BACKPROP_HOME=$BIG BACKPROP_EXPORT_JSON=false /usr/bin/time -f %M "$BIN" run -q --gpus 0 -- sleep 2 2>&1 >/dev/null | tail -1)

# 16 runs printing progress; returns once they are all running.
load() {
    local home=$1 export=$2
    for i in $(seq 16); do
        BACKPROP_HOME=$home BACKPROP_EXPORT_JSON=$export "$BIN" run -q -p 32 --gpus 0 -m "$((SECONDS_LOAD + 30))s" \
            -- python3 -c "
import json, time
t0 = time.time(); step = 0
while time.time() - t0 < $SECONDS_LOAD + 10:
    step += 1
    print(json.dumps({'step': step, 'loss': 1.0 / step}), flush=True)
    time.sleep(0.1)
" >/dev/null 2>&1 &
    done
    sleep 5
}
cpu_of() { # total CPU seconds so far (utime + stime) of the processes listed
    local total=0
    for pid in "$@"; do
        total=$(awk -v t="$total" '{print t + ($14 + $15) / 100}' "/proc/$pid/stat" 2>/dev/null || echo "$total")
    done
    echo "$total"
}

load "$BIG" false
pids=$(pgrep -f "$BIN run" | tr '\n' ' ')
cpu0=$(cpu_of $pids)
busy=$(python3 - "$BIG/backprop.db" "$SECONDS_LOAD" <<'PY'
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
tries = taken = 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    tries += 1
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError:
        taken += 1
    time.sleep(0.005)
print(f"{100.0 * taken / tries:.2f}")
PY
)
cpu1=$(cpu_of $pids)
pkill -INT -f "$BIN run" || true; wait || true

load "$BIG" true
exports=0 bytes=0 last=""
pids=$(pgrep -f "$BIN run" | tr '\n' ' ')
cpu2=$(cpu_of $pids)
end=$(( $(date +%s) + SECONDS_LOAD ))
while [ "$(date +%s)" -lt "$end" ]; do
    stamp=$(stat -c '%Y.%y %s' "$BIG/experiments.json" 2>/dev/null || true)
    if [ -n "$stamp" ] && [ "$stamp" != "$last" ]; then
        exports=$((exports + 1)); bytes=$((bytes + ${stamp##* }))
        last=$stamp
    fi
    sleep 0.2
done
cpu3=$(cpu_of $pids)
pkill -INT -f "$BIN run" || true; wait || true

per_min() { awk -v v="$1" -v s="$SECONDS_LOAD" 'BEGIN {printf "%.1f", v * 60 / s}'; }
echo
echo "store of $RUNS runs ($(du -m "$BIG/backprop.db" | cut -f1) MB)"
awk -v b="$start_big" -v e="$start_empty" 'BEGIN {printf "start of run -- true:         %d ms vs %d ms empty: %.2fx (target <= 1.5x)\n", b, e, b / e}'
echo "list --limit 50:              $list50 ms (target <= 30 ms)"
echo "list --all:                   $listall ms (target <= 1000 ms)"
echo "supervising process RSS:      $((rss / 1024)) MB (target <= 20 MB)"
echo "write lock busy, 16 runs:     $busy % of the time (target < 5 %)"
no_export=$(awk -v a="$cpu1" -v b="$cpu0" 'BEGIN {print a - b}')
with_export=$(awk -v a="$cpu3" -v b="$cpu2" 'BEGIN {print a - b}')
echo "backprop CPU, 16 runs:        $(per_min "$no_export") s/min without the export, $(per_min "$with_export") s/min with it"
echo "export:                       $(per_min "$exports") exports/min, $(per_min "$((bytes / 1048576))") MB/min written"
