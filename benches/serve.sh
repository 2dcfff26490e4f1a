#!/usr/bin/env bash
# The costs of `backprop serve`, whole processes (release build).
#
#   benches/serve.sh [--no-build] [--runs N] [--seconds S]
#
#   first load  N runs (default 10,000) in the store: the page (HTML, script, style) and its
#               first API call (`/api/runs?limit=100`), one after the other on fresh
#               connections as a first visit makes them; median and worst of 20.
#               Target: <= 300 ms.
#   idle        CPU of the serve process over S s (default 60) with the store unchanged: with
#               no page open, then with one page's event stream open (it gets the machine
#               sample every 2 s). Target: <= 1 % of a core.
#   progress    16 runs printing progress 10 times a second (each writes the store once a
#               second): how long taking the store's write lock takes (a probe every 20 ms;
#               median and 99th percentile), without serve, then with serve and one page
#               open in headless Chromium on the run table (an event stream, rows patched on
#               every change) or, without Chromium, an event stream read by curl.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/release/backprop"
BUILD=1 RUNS=10000 SECS=60
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --runs) RUNS=$2; shift ;;
        --seconds) SECS=$2; shift ;;
        *) echo "serve.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
# shellcheck source=support/store_fill.sh
. "$ROOT/benches/support/store_fill.sh"
WORK=$(mktemp -d)
PIDS=() RUN_PIDS=()
cleanup() {
    for pid in "${RUN_PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 2
    rm -rf "$WORK"
}
trap cleanup EXIT
export BACKPROP_MIN_FREE_RAM_GB=0 BACKPROP_MAX_CPU_LOAD=1000 BACKPROP_GPU_PROBE=none BACKPROP_EXPORT_JSON=false
export BACKPROP_HOME=$WORK/home

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu_seconds() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }

echo "filling a store with $RUNS runs..." >&2
BACKPROP_BENCH_HOME=$BACKPROP_HOME BACKPROP_BENCH_RUNS=$RUNS "$FILL" >&2

# Starts serve; sets URL, PORT, TOKEN, SERVE_PID.
start_serve() {
    "$BIN" serve --port 0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
    SERVE_PID=$!
    PIDS+=("$SERVE_PID")
    for _ in $(seq 100); do
        [ -s "$WORK/serve.out" ] && break
        sleep 0.1
    done
    URL=$(head -1 "$WORK/serve.out")
    PORT=$(echo "$URL" | sed 's|http://127.0.0.1:\([0-9]*\)/.*|\1|')
    TOKEN=${URL##*token=}
}

start_serve
BASE="http://127.0.0.1:$PORT"
first_load() { # ms for the page and its first API call, each on a new connection
    local total=0 t
    for path in / /app.js /style.css; do
        t=$(curl -s -o /dev/null -w '%{time_total}' "$BASE$path")
        total=$(awk -v a="$total" -v b="$t" 'BEGIN {print a + b}')
    done
    t=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "$BASE/api/runs?limit=100")
    awk -v a="$total" -v b="$t" 'BEGIN {printf "%d\n", (a + b) * 1000}'
}
first_load >/dev/null # warm the page cache of the database
loads=$(for _ in $(seq 20); do first_load; done)
load_median=$(echo "$loads" | median)
load_worst=$(echo "$loads" | sort -n | tail -1)
api_ms=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "$BASE/api/runs?limit=100" | awk '{printf "%d", $1 * 1000}')
all_ms=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "$BASE/api/runs?limit=10000" | awk '{printf "%d", $1 * 1000}')

echo "idle for ${SECS}s..." >&2
sleep 2
c0=$(cpu_seconds "$SERVE_PID"); sleep "$SECS"; c1=$(cpu_seconds "$SERVE_PID")
curl -sN "$BASE/api/events?token=$TOKEN" >/dev/null &
PIDS+=("$!")
sleep 2
c2=$(cpu_seconds "$SERVE_PID"); sleep "$SECS"; c3=$(cpu_seconds "$SERVE_PID")
kill "$SERVE_PID" "${PIDS[-1]}" 2>/dev/null || true
wait "$SERVE_PID" 2>/dev/null || true

# 16 runs printing progress; returns once they have started.
progress_runs() {
    for i in $(seq 16); do
        "$BIN" run -q -p 32 --gpus 0 -m "$((SECS + 60))s" --name "bench-$i" \
            -- python3 -c "
import json, time
t0 = time.time(); step = 0
while time.time() - t0 < $SECS + 20:
    step += 1
    print(json.dumps({'step': step, 'loss': 1.0 / step}), flush=True)
    time.sleep(0.1)
" >/dev/null 2>&1 &
        RUN_PIDS+=("$!")
    done
    sleep 8
}
lock_probe() { # prints "median p99" ms to take and give back the write lock
    python3 - "$BACKPROP_HOME/backprop.db" "$SECS" <<'PY'
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
waits = []
end = time.time() + float(sys.argv[2])
while time.time() < end:
    t = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("ROLLBACK")
    waits.append((time.perf_counter() - t) * 1000)
    time.sleep(0.02)
waits.sort()
print(f"{waits[len(waits) // 2]:.2f} {waits[int(len(waits) * 0.99)]:.2f}")
PY
}
stop_runs() {
    for pid in "${RUN_PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${RUN_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    RUN_PIDS=()
}

echo "progress writes without serve for ${SECS}s..." >&2
progress_runs
read -r plain_median plain_p99 < <(lock_probe)
stop_runs

echo "progress writes with serve and one page for ${SECS}s..." >&2
start_serve
progress_runs
PAGE=curl
if command -v chromium >/dev/null 2>&1; then
    PAGE=chromium
    chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --user-data-dir="$WORK/chromium" --remote-debugging-port=0 "$URL" >/dev/null 2>&1 &
else
    curl -sN "http://127.0.0.1:$PORT/api/events?token=$TOKEN" >/dev/null &
fi
PAGE_PID=$!
PIDS+=("$PAGE_PID")
sleep 5
# The page's connections to the server (its event stream among them), as a check it is open.
page_connections=$(ss -Htn state established "( dport = :$PORT )" 2>/dev/null | wc -l)
s0=$(cpu_seconds "$SERVE_PID")
read -r served_median served_p99 < <(lock_probe)
s1=$(cpu_seconds "$SERVE_PID")
stop_runs
kill "$PAGE_PID" "$SERVE_PID" 2>/dev/null || true

pct() { awk -v a="$1" -v b="$2" -v s="$SECS" 'BEGIN {printf "%.2f", (b - a) * 100 / s}'; }
echo
echo "store of $RUNS runs ($(du -m "$BACKPROP_HOME/backprop.db" | cut -f1) MB)"
echo "first load (page + /api/runs?limit=100): median $load_median ms, worst $load_worst ms of 20 (target <= 300 ms)"
echo "  /api/runs?limit=100 alone:              $api_ms ms; all $RUNS runs (limit=10000): $all_ms ms"
echo "serve idle, no page:                      $(pct "$c0" "$c1") % of a core (target <= 1 %)"
echo "serve idle, one event stream open:        $(pct "$c2" "$c3") % of a core (target <= 1 %)"
echo "write lock, 16 runs with progress:        median $plain_median ms, p99 $plain_p99 ms without serve"
echo "                                          median $served_median ms, p99 $served_p99 ms with serve and one page ($PAGE, $page_connections connections)"
echo "serve CPU meanwhile:                      $(pct "$s0" "$s1") % of a core"
