#!/usr/bin/env bash
# Whole-process benchmarks of backprop against plain baselines (issue 6, "Benchmarks").
#
#   benches/harness.sh            # everything, a few minutes on a 2-core machine
#   benches/harness.sh --quick    # fewer repetitions, 10 s instead of 60 s for the idle-CPU case
#
# Options: --quick, --no-build (use target/release/backprop as it is), --no-criterion (skip
# `cargo bench`; the store-update and protocol rows then say "skipped").
#
# It builds the release binary, then measures (each against the baseline named):
#   pass-through   1,000,000 JSONL progress lines under `backprop run -q` vs `| cat >/dev/null`
#   start          `backprop run -q --gpu-probe none -- true` vs `true`
#   batch          200 instant runs through `backprop queue` (maxParallel 2) vs `xargs -P2`
#   store          `backprop list` with 10,000 runs in the store; one record update (criterion)
#   footprint      peak RSS supervising 1 and 8 runs; backprop's CPU while a script sleeps
#   protocol       parse_line lines/s (criterion, benches/protocol.rs)
# and prints one table at the end. Timing uses hyperfine when installed (median of the runs),
# else a loop around `date +%s%N` (median as well); peak RSS and CPU come from
# `/usr/bin/time -v`. Everything happens in a temp dir that is removed on exit; no network.
set -euo pipefail

QUICK=0
BUILD=1
CRITERION=1
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --no-criterion) CRITERION=0 ;;
        -h | --help)
            sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "harness.sh: unknown option $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/release/backprop"
TIME_BIN=/usr/bin/time

log() { printf '[harness %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

command -v python3 >/dev/null || die "python3 is needed (the producer and the store generator)"
[ -x "$TIME_BIN" ] || die "$TIME_BIN is needed (apt-get install -y time)"

# Repetitions (full / quick).
if [ "$QUICK" = 1 ]; then
    R_PASS=2 R_START=10 R_BATCH=1 R_LIST=5 IDLE_S=10
else
    R_PASS=5 R_START=30 R_BATCH=5 R_LIST=10 IDLE_S=60
fi
LINES=1000000
BATCH_RUNS=200
STORE_RUNS=10000

# ---------------------------------------------------------------------------------------------
# Temp dir, cleanup, a neutral environment.

TMP=$(mktemp -d "${TMPDIR:-/tmp}/backprop-harness.XXXXXX")
BG_PIDS=()
cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# A BACKPROP_* variable of the caller (a config layer) or a backprop.config.json in the
# current directory would change what is measured.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^BACKPROP_' || true)
export BACKPROP_MIN_FREE_RAM_GB=0 BACKPROP_MAX_CPU_LOAD=1000 BACKPROP_GPU_PROBE=none
cd "$TMP"

HAVE_HYPERFINE=0
if command -v hyperfine >/dev/null && [ "${HARNESS_NO_HYPERFINE:-0}" != 1 ]; then
    HAVE_HYPERFINE=1
fi

# ---------------------------------------------------------------------------------------------
# Build.

if [ "$BUILD" = 1 ]; then
    log "cargo build --release (waits for the target dir's lock if another build holds it)"
    (cd "$ROOT" && cargo build --release --quiet) || die "the release build failed"
fi
[ -x "$BIN" ] || die "$BIN is missing (build it, or drop --no-build)"

# ---------------------------------------------------------------------------------------------
# Timing helpers. `measure NAME RUNS WARMUP PREPARE CMD [noshell]` runs CMD (a shell command
# line; with `noshell`, a plain command run without a shell, for millisecond figures) RUNS
# times after WARMUP untimed runs, PREPARE (may be empty) before each, and sets MEDIAN_S and
# SPREAD (min–max, for the log) from hyperfine's JSON or the fallback loop.

MEDIAN_S=
SPREAD=
measure() {
    local name=$1 runs=$2 warmup=$3 prepare=$4 cmd=$5 noshell=${6:-}
    local json="$TMP/hf-$name.json"
    log "$name: $cmd ($runs runs)"
    if [ "$HAVE_HYPERFINE" = 1 ]; then
        local args=(--runs "$runs" --warmup "$warmup" --export-json "$json" --style basic)
        [ -n "$prepare" ] && args+=(--prepare "$prepare")
        [ -n "$noshell" ] && args+=(--shell=none)
        hyperfine "${args[@]}" "$cmd" >"$TMP/hf-$name.log" 2>&1 ||
            die "$name failed; hyperfine said: $(tail -5 "$TMP/hf-$name.log")"
        local parsed
        parsed=$(python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("%.6f %.4f-%.4f" % (r["median"], r["min"], r["max"]))' "$json")
        read -r MEDIAN_S SPREAD <<<"$parsed"
    else
        local i t0 t1
        : >"$TMP/times-$name"
        for ((i = 0; i < warmup + runs; i++)); do
            [ -n "$prepare" ] && bash -c "$prepare"
            t0=$(date +%s%N)
            if [ -n "$noshell" ]; then
                # shellcheck disable=SC2086 # a plain command line, split on spaces
                $cmd >/dev/null 2>&1 || die "$name failed: $cmd"
            else
                bash -c "$cmd" >/dev/null 2>&1 || die "$name failed: $cmd"
            fi
            t1=$(date +%s%N)
            [ "$i" -ge "$warmup" ] && echo $(((t1 - t0) / 1000)) >>"$TMP/times-$name"
        done
        local parsed
        parsed=$(sort -n "$TMP/times-$name" | awk '
            { v[NR] = $1 / 1e6 }
            END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                  printf "%.6f %.4f-%.4f\n", m, v[1], v[NR] }')
        read -r MEDIAN_S SPREAD <<<"$parsed"
    fi
    log "  median ${MEDIAN_S}s (min-max ${SPREAD}s); load $(cut -d' ' -f1-3 /proc/loadavg)"
}

# `footprint NAME CMD...`: runs CMD under /usr/bin/time -v while polling the VmHWM of the
# backprop process itself; sets RSS_KB (time's maxrss: the largest of backprop and its
# children, which here are `sleep` and the guard), HWM_KB (backprop's own peak), CPU_S
# (user+sys of backprop and its children) and WALL_S.
RSS_KB= HWM_KB= CPU_S= WALL_S=
footprint() {
    local name=$1
    shift
    local out="$TMP/time-$name.txt"
    log "$name: $*"
    "$TIME_BIN" -v -o "$out" "$@" >"$TMP/$name.stdout" 2>"$TMP/$name.stderr" &
    local tpid=$!
    BG_PIDS+=("$tpid")
    local child="" hwm=0 v
    while kill -0 "$tpid" 2>/dev/null; do
        [ -z "$child" ] && child=$(pgrep -P "$tpid" 2>/dev/null | head -1 || true)
        if [ -n "$child" ]; then
            v=$(awk '/^VmHWM:/ {print $2}' "/proc/$child/status" 2>/dev/null || true)
            [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
        fi
        sleep 0.2
    done
    wait "$tpid" || die "$name failed: $(tail -3 "$TMP/$name.stderr")"
    BG_PIDS=()
    RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
    CPU_S=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f", u + s}' "$out")
    WALL_S=$(awk '/Elapsed \(wall clock\)/ {n = split($NF, p, ":"); s = 0;
        for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s}' "$out")
    HWM_KB=$hwm
    log "  peak RSS ${RSS_KB} kB (backprop's own VmHWM ${HWM_KB} kB), CPU ${CPU_S}s, wall ${WALL_S}s"
}

ROWS=()
# row METRIC BACKPROP BASELINE RATIO TARGET RESULT
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
verdict() { # verdict VALUE OP LIMIT -> pass/FAIL
    python3 -c "import sys; v, l = float(sys.argv[1]), float(sys.argv[3]); ok = v <= l if sys.argv[2] == 'le' else v >= l; print('pass' if ok else '**FAIL**')" "$1" "$2" "$3"
}
ms() { python3 -c "import sys; print('%.1f ms' % (float(sys.argv[1]) * 1000))" "$1"; }
secs() { python3 -c "import sys; print('%.2f s' % float(sys.argv[1]))" "$1"; }
# The last measurement's min–max, for a table cell: "(0.71–0.80 s)" or "(11.2–14.9 ms)".
spread_s() { python3 -c "import sys; a, b = sys.argv[1].split('-'); print('(%.2f–%.2f s)' % (float(a), float(b)))" "$SPREAD"; }
spread_ms() { python3 -c "import sys; a, b = sys.argv[1].split('-'); print('(%.1f–%.1f ms)' % (float(a) * 1000, float(b) * 1000))" "$SPREAD"; }
mb() { python3 -c "import sys; print('%.1f MB' % (int(sys.argv[1]) / 1024))" "$1"; }
calc() { python3 -c "import sys; print($1)"; }

log "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM; load $(cut -d' ' -f1-3 /proc/loadavg)"
log "backprop: $BIN; hyperfine: $([ "$HAVE_HYPERFINE" = 1 ] && hyperfine --version || echo 'no (date loop)')"

# ---------------------------------------------------------------------------------------------
# Pass-through: 1,000,000 progress lines.
#
# The producer keeps its own cost small so that the pipe reader is what is measured: it
# writes a block of 10,000 distinct progress lines (~0.6 MB) 100 times with os.write, and
# reports the longest single write (how long the reader let it block) to $PRODUCER_STATS.

cat >"$TMP/producer.py" <<'EOF'
import json, os, sys, time
n = int(sys.argv[1])
per_line = len(sys.argv) > 2 and sys.argv[2] == "--line-by-line"
lines = ['{"step": %d, "loss": %.6f, "lr": 0.01, "epoch": %d, "grad_norm": %.4f}\n'
         % (s, 1.0 / (s + 1), s // 10000, 1.0 + (s % 97) / 100.0) for s in range(10000)]
block = "".join(lines).encode()
longest = total = 0.0
start = time.perf_counter()
if per_line:  # like print(..., flush=True) in a training loop: one write per line
    encoded = [l.encode() for l in lines]
    for i in range(n):
        t0 = time.perf_counter()
        os.write(1, encoded[i % 10000])
        dt = time.perf_counter() - t0
        total += dt
        if dt > longest:
            longest = dt
else:
    for _ in range(n // 10000):
        t0 = time.perf_counter()
        view = memoryview(block)
        while view:
            view = view[os.write(1, view):]
        dt = time.perf_counter() - t0
        total += dt
        if dt > longest:
            longest = dt
stats = os.environ.get("PRODUCER_STATS")
if stats:
    with open(stats, "a") as f:
        f.write(json.dumps({"longest_write_s": longest, "total_write_s": total,
                            "wall_s": time.perf_counter() - start}) + "\n")
EOF

longest_write() { # the median over the runs of the longest single write, in ms
    python3 - "$1" <<'EOF'
import json, sys
v = sorted(json.loads(l)["longest_write_s"] for l in open(sys.argv[1]))
print("%.1f" % (v[len(v) // 2] * 1000))
EOF
}

PT_HOME="$TMP/home-pass"
for mode in block line; do
    flag=""
    label="pass-through, 1M lines in 0.6 MB writes"
    if [ "$mode" = line ]; then
        flag="--line-by-line"
        label="pass-through, 1M lines one write each"
    fi
    export PRODUCER_STATS="$TMP/stats-base-$mode.jsonl"
    measure "pass-base-$mode" "$R_PASS" 1 "" \
        "python3 $TMP/producer.py $LINES $flag | cat >/dev/null"
    base=$MEDIAN_S
    base_spread=$(spread_s)
    export PRODUCER_STATS="$TMP/stats-bp-$mode.jsonl"
    measure "pass-backprop-$mode" "$R_PASS" 1 "rm -rf $PT_HOME" \
        "env BACKPROP_HOME=$PT_HOME $BIN run -q --gpu-probe none -n producer $TMP/producer.py -- $LINES $flag"
    bp=$MEDIAN_S
    unset PRODUCER_STATS
    # Every line must have reached metrics.jsonl (the last run's home is still there).
    got=$(cat "$PT_HOME"/runs/*/metrics.jsonl | wc -l)
    [ "$got" = "$LINES" ] || die "pass-through ($mode): metrics.jsonl has $got lines, not $LINES"
    ratio=$(calc "'%.2f' % ($bp / $base)")
    row "$label (wall)" "$(secs "$bp") $(spread_s)" "$(secs "$base") $base_spread (\`cat >/dev/null\`)" "${ratio}×" "≤ 1.5×" \
        "$(verdict "$ratio" le 1.5)"
    row "… longest single write() of the producer" \
        "$(longest_write "$TMP/stats-bp-$mode.jsonl") ms" \
        "$(longest_write "$TMP/stats-base-$mode.jsonl") ms" "" "(info)" ""
done
rm -rf "$PT_HOME"

# ---------------------------------------------------------------------------------------------
# Start overhead: a command that exits at once. The home holds one earlier run (reset before
# every timed run, so the store does not grow with the repetitions).

SEED="$TMP/home-seed"
BACKPROP_HOME="$SEED" "$BIN" run -q --gpu-probe none -- true
START_HOME="$TMP/home-start"
measure start-base "$R_START" 3 "" "true" noshell
base=$MEDIAN_S
base_spread=$(spread_ms)
printf 'rm -rf "%s" && cp -a "%s" "%s"\n' "$START_HOME" "$SEED" "$START_HOME" >"$TMP/reset-start.sh"
measure start-backprop "$R_START" 3 "bash $TMP/reset-start.sh" \
    "env BACKPROP_HOME=$START_HOME $BIN run -q --gpu-probe none -- true" noshell
bp=$MEDIAN_S
START_BP=$bp
added=$(calc "'%.1f' % (($bp - $base) * 1000)")
row "start overhead (\`run -- true\`)" "$(ms "$bp") $(spread_ms)" "$(ms "$base") $base_spread (\`true\`)" "+${added} ms" \
    "≤ 30 ms added" "$(verdict "$added" le 30)"

# ---------------------------------------------------------------------------------------------
# Batch overhead: 200 instant runs, 2 at a time.

python3 - "$TMP/sweep-batch.json" "$BATCH_RUNS" <<'EOF'
import json, sys
json.dump({"script": "true", "grid": {"i": list(range(int(sys.argv[2])))}, "name": "b{i}",
           "maxParallel": 2}, open(sys.argv[1], "w"))
EOF
BATCH_HOME="$TMP/home-batch"
measure batch-base "$R_BATCH" 1 "" "seq $BATCH_RUNS | xargs -P2 -n1 true"
base=$MEDIAN_S
base_spread=$(spread_s)
measure batch-backprop "$R_BATCH" 0 "rm -rf $BATCH_HOME" \
    "env BACKPROP_HOME=$BATCH_HOME $BIN queue -q $TMP/sweep-batch.json" noshell
bp=$MEDIAN_S
bp_spread=$(spread_s)
n=$(BACKPROP_HOME="$BATCH_HOME" "$BIN" list --json | python3 -c \
    'import json, sys; print(sum(r["status"] == "completed" for r in json.load(sys.stdin)))')
[ "$n" = "$BATCH_RUNS" ] || die "batch: $n of $BATCH_RUNS runs completed"
per=$(calc "'%.1f' % (($bp - $base) * 1000 / $BATCH_RUNS)")
row "batch: $BATCH_RUNS × \`true\` via \`queue\`, maxParallel 2" "$(secs "$bp") $bp_spread" \
    "$(secs "$base") $base_spread (\`xargs -P2\`)" "+${per} ms/run" "≤ 20 ms/run added" "$(verdict "$per" le 20)"
rm -rf "$BATCH_HOME"

# ---------------------------------------------------------------------------------------------
# Store at scale: 10,000 runs. The records are copies of a real one (a `backprop run` of
# tests/scripts/progress.py), varied: ids, names, times, statuses, losses, checkpoints, a
# second attempt on one in five, sweep params and batch ids on most. All finished, so the
# reaper has nothing to do.

REAL="$TMP/home-real"
BACKPROP_HOME="$REAL" "$BIN" run -q --gpu-probe none -n train \
    "$ROOT/tests/scripts/progress.py" -- --steps 50 --delay 0.001 >/dev/null
BIG="$TMP/home-10k"
mkdir -p "$BIG"
chmod 700 "$BIG"
python3 - "$REAL/experiments.json" "$BIG/experiments.json" "$STORE_RUNS" <<'EOF'
import copy, json, random, sys
real = next(iter(json.load(open(sys.argv[1])).values()))
n = int(sys.argv[3])
rnd = random.Random(1)
t0 = 1767225600000
out = []
for i in range(n):
    lr, bs = rnd.choice(["0.1", "0.03", "0.01", "0.003", "0.001"]), rnd.choice([32, 64, 128, 256])
    in_batch = rnd.random() < 0.7
    name = "lr%s-bs%d" % (lr, bs) if in_batch else "train"
    created = t0 + i * 240000 + rnd.randrange(60000)
    rid = "%s-2026%02d%02d-%06d-%04x" % (name, 1 + i // 3000, 1 + (i // 100) % 28, i, rnd.randrange(65536))
    r = copy.deepcopy(real)
    old = real["id"]
    r["id"], r["name"], r["createdTime"], r["queueSeq"] = rid, name, created, created * 1000000 + i
    r["status"] = rnd.choice(["completed"] * 12 + ["timeboxed"] * 5 + ["failed"] * 2 + ["stopped"])
    r["spec"]["args"] = ["--lr", lr, "--batch-size", str(bs), "--epochs", "20"]
    step = rnd.randrange(1000, 20000)
    loss = rnd.uniform(0.05, 2.0)
    r["checkpoints"] = [c.replace(old, rid).replace("ckpt-", "ckpt-%d-" % i) for c in real["checkpoints"]]
    r["lastCheckpoint"] = r["checkpoints"][-1] if r["checkpoints"] else None
    a = r["attempts"][0]
    attempts = []
    start = created + rnd.randrange(2000)
    for k in range(2 if rnd.random() < 0.2 else 1):
        active = rnd.randrange(60000, 600000)
        b = dict(a, number=k + 1, startTime=start, endTime=start + active + 500, activeMs=active,
                 lastStep=step, lastLoss=loss, pid=rnd.randrange(1000, 60000),
                 status=r["status"] if k == 0 else "timeboxed")
        attempts.append(b)
        start += active + 10000
    r["attempts"] = attempts[::-1] if len(attempts) > 1 else attempts
    r["startTime"], r["endTime"] = r["attempts"][0]["startTime"], r["attempts"][-1]["endTime"]
    r["activeMs"] = sum(x["activeMs"] for x in attempts)
    r["lastStep"], r["lastLoss"] = step, loss
    r["metrics"] = dict(r["metrics"], lr=float(lr), val_loss=loss * 1.1, grad_norm=rnd.uniform(0, 4),
                        epoch=step / 1000)
    if in_batch:
        r["params"] = {"lr": float(lr), "bs": bs}
        r["batchId"] = "batch-2026%02d-%04x" % (1 + i // 3000, i // 24)
    out.append(json.dumps(rid) + ": " + json.dumps(r, separators=(",", ":")))
with open(sys.argv[2], "w") as f:
    f.write("{\n" + ",\n".join(out) + "\n}\n")
EOF
size=$(stat -c %s "$BIG/experiments.json")
n=$(BACKPROP_HOME="$BIG" "$BIN" list --json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
[ "$n" = "$STORE_RUNS" ] || die "the generated store lists $n runs, not $STORE_RUNS"
log "store: $STORE_RUNS runs, experiments.json $size bytes ($((size / STORE_RUNS)) bytes/run)"

export BACKPROP_HOME="$BIG"
measure list-10k "$R_LIST" 1 "" "$BIN list" noshell
unset BACKPROP_HOME
row "\`list\`, $STORE_RUNS runs ($((size / 1048576)) MiB store)" "$(ms "$MEDIAN_S") $(spread_ms)" "—" "" \
    "≤ 150 ms" "$(verdict "$MEDIAN_S" le 0.150)"

# The same start as above, but into the 10,000-run store: its extra time is what the store's
# size costs one run (each store write re-reads, re-parses and rewrites the whole file; the
# reaper and the admission check parse every record). The writes are counted with strace.
START_BIG="$TMP/home-start-10k"
printf 'rm -rf "%s" && cp -a "%s" "%s"\n' "$START_BIG" "$BIG" "$START_BIG" >"$TMP/reset-10k.sh"
measure start-10k "$R_LIST" 1 "bash $TMP/reset-10k.sh" \
    "env BACKPROP_HOME=$START_BIG $BIN run -q --gpu-probe none -- true" noshell
big=$MEDIAN_S
big_spread=$(spread_ms)
writes=""
if command -v strace >/dev/null; then
    rm -rf "$START_BIG" && cp -a "$BIG" "$START_BIG"
    BACKPROP_HOME="$START_BIG" strace -f -qq -e trace=rename,renameat,renameat2 -o "$TMP/renames.txt" \
        "$BIN" run -q --gpu-probe none -- true || true
    writes=$(grep -c 'experiments.json.tmp' "$TMP/renames.txt" || true)
fi
rm -rf "$START_BIG"
added=$(calc "'+%.0f ms' % (($big - $START_BP) * 1000)")
[ -n "$writes" ] && added="$added ($writes store writes)"
row "\`run -- true\` into the $STORE_RUNS-run store" "$(ms "$big") $big_spread" \
    "$(ms "$START_BP") (1-run store)" "$added" "(info)" ""
rm -rf "$BIG"

# ---------------------------------------------------------------------------------------------
# Footprint.

FP_HOME="$TMP/home-fp"
export BACKPROP_HOME="$FP_HOME"
footprint rss-1 "$BIN" run -q --gpu-probe none -m 1 -- sleep 5
row "peak RSS, supervising 1 run (\`-- sleep 5\`)" "$(mb "$RSS_KB")" "—" "(backprop's own VmHWM: $(mb "$HWM_KB"))" \
    "≤ 20 MB" "$(verdict "$RSS_KB" le 20480)"

python3 - "$TMP/sweep-8.json" <<'EOF'
import json, sys
json.dump({"script": "sleep", "args": ["5"], "grid": {"i": list(range(8))}, "name": "s{i}",
           "maxParallel": 8, "maxRunMinutes": 1}, open(sys.argv[1], "w"))
EOF
footprint rss-8 "$BIN" queue -q "$TMP/sweep-8.json"
row "peak RSS, supervising 8 runs (\`queue\` of 8 × \`sleep 5\`, maxParallel 8)" "$(mb "$RSS_KB")" "—" \
    "(backprop's own VmHWM: $(mb "$HWM_KB"); wall ${WALL_S} s)" "≤ 40 MB" "$(verdict "$RSS_KB" le 40960)"

footprint idle-cpu "$BIN" run -q --gpu-probe none -m 2 -- sleep "$IDLE_S"
limit=$(calc "'%.2f' % ($IDLE_S * 0.01)")
pct=$(calc "'%.3f' % ($CPU_S / $WALL_S * 100)")
cpu_text="${CPU_S} s"
[ "$CPU_S" = "0.00" ] && cpu_text="< 0.01 s"
row "CPU of backprop while the script sleeps ${IDLE_S} s (user+sys)" "$cpu_text (${pct} % of a core)" "—" "" \
    "≤ ${limit} s (1 % of a core)" "$(verdict "$CPU_S" le "$limit")"
unset BACKPROP_HOME
rm -rf "$FP_HOME"

# ---------------------------------------------------------------------------------------------
# Criterion: the store's record update at 10,000 runs, and protocol parsing.

if [ "$CRITERION" = 1 ]; then
    TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    crit=(--noplot)
    [ "$QUICK" = 1 ] && crit+=(--quick)
    estimate() { # estimate GROUP/NAME -> median in ns
        python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' \
            "$TARGET_DIR/criterion/$1/new/estimates.json"
    }
    log "cargo bench --bench store -- ${crit[*]}"
    (cd "$ROOT" && cargo bench --quiet --bench store -- "${crit[@]}") >"$TMP/bench-store.log" 2>&1 ||
        die "cargo bench --bench store failed: $(tail -5 "$TMP/bench-store.log")"
    grep -E '^store:' "$TMP/bench-store.log" >&2 || true
    upd=$(estimate store_10k/update_record)
    all=$(estimate store_10k/read_parse_all)
    row "store: \`update_record\` of 1 run among 10,000 (criterion)" \
        "$(calc "'%.1f ms' % ($upd / 1e6)")" "—" "" "≤ 50 ms" "$(verdict "$(calc "$upd / 1e6")" le 50)"
    row "store: \`read()\` + parse all 10,000 records (criterion)" \
        "$(calc "'%.1f ms' % ($all / 1e6)")" "—" "" "(info; what \`list\` parses)" ""
    log "cargo bench --bench protocol -- ${crit[*]}"
    (cd "$ROOT" && cargo bench --quiet --bench protocol -- "${crit[@]}") >"$TMP/bench-protocol.log" 2>&1 ||
        die "cargo bench --bench protocol failed: $(tail -5 "$TMP/bench-protocol.log")"
    parse=$(estimate protocol/parse_line)
    pump=$(estimate protocol/pump_stdout)
    lps=$(calc "10000 / ($parse / 1e9)")
    row "protocol: \`parse_line\`, realistic mix, 1 core (criterion)" \
        "$(calc "'{:,.0f} lines/s'.format($lps)")" \
        "$(calc "'{:,.0f} lines/s'.format(10000 / ($pump / 1e9))") (whole \`pump_stdout\`)" "" \
        "≥ 1,000,000 lines/s" "$(verdict "$lps" ge 1000000)"
else
    row "store: \`update_record\` (criterion)" "skipped" "" "" "≤ 50 ms" ""
    row "protocol: \`parse_line\` (criterion)" "skipped" "" "" "≥ 1,000,000 lines/s" ""
fi

# ---------------------------------------------------------------------------------------------

echo
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM; load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "backprop: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo 'not a git checkout')"
echo "timing: $([ "$HAVE_HYPERFINE" = 1 ] && hyperfine --version || echo 'date +%s%N loop') (medians)$([ "$QUICK" = 1 ] && echo '; --quick')"
echo
echo "| metric | backprop | baseline | ratio / added | target | result |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
