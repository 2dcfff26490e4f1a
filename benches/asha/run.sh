#!/usr/bin/env bash
# Adaptive search (ASHA) against the full grid it searches: 27 configurations of
# examples/sklearn_digits.py (hidden × lr × alpha), maxParallel 2.
#
#   benches/asha/run.sh [--quick] [--no-build] [--bin PATH] [--min-budget N] [--grid-from DIR]
#                       [--keep DIR]
#
#   grid   benches/asha/grid.json: every configuration trained to 2700 steps
#   asha   benches/asha/asha.json: the same grid with "search" (rungs 100, 300, 900, 2700
#          steps, reduction factor 3, seed 7): losers are stopped at a rung
#
# Then a table (benches/asha/report.py): the grid's best final val_loss vs that of ASHA's
# winner (claim: within 1 %), the training steps of each (claim: ASHA <= 1/3 of the grid's)
# and their active time.
#
#   --quick      3 configurations (hidden 64, alpha 0.0001, every lr) to 300 steps; ASHA
#                with rungs 100 and 300: checks the script end to end in about a minute
#   --no-build   use target/release/backprop as it is
#   --bin PATH   use this backprop binary (no build)
#   --min-budget N     the search's minBudget in steps (default: asha.json's, 100)
#   --grid-from DIR    take the full grid's records from an earlier --keep DIR instead of
#                      running the grid again (same script, grid and maxBudget)
#   --keep DIR   keep the homes, sweep files and records in DIR (default: a temp dir,
#                removed at the end)
#
# Needs python3 with scikit-learn (`pip install scikit-learn`). The full run takes about
# 10 minutes on two cores (the grid is most of it; one 2700-step run takes 10-25 s). Each
# half uses its own BACKPROP_HOME, so other runs of this machine are not counted; the
# resource gates are relaxed (maxCpuLoad, minFreeRamGB) so that the benchmark's own load
# does not hold its runs back.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/benches/asha"
BIN="$ROOT/target/release/backprop"
QUICK=0 BUILD=1 KEEP="" MIN_BUDGET="" GRID_FROM=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --bin) BIN=$(realpath "$2"); BUILD=0; shift ;;
        --keep) KEEP=$2; shift ;;
        --min-budget) MIN_BUDGET=$2; shift ;;
        --grid-from) GRID_FROM=$(realpath "$2"); shift ;;
        -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[asha %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

python3 -c 'import sklearn' 2>/dev/null \
    || die "python3 cannot import scikit-learn; install it with: pip install scikit-learn"
if [ "$BUILD" = 1 ]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release -q)
fi
[ -x "$BIN" ] || die "no backprop binary at $BIN (build it, or give --bin PATH)"

if [ -n "$KEEP" ]; then
    mkdir -p "$KEEP"
    WORK=$(realpath "$KEEP")
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi
# The caller's settings stay out: no BACKPROP_* of theirs, no backprop.config.json (the
# batches run in $WORK, with the script's absolute path).
for var in $(compgen -e | grep '^BACKPROP_' || true); do unset "$var"; done
export BACKPROP_MAX_CPU_LOAD=100 BACKPROP_MIN_FREE_RAM_GB=0 BACKPROP_GPU_PROBE=none

# The sweep files as given, or cut down for --quick.
python3 - "$ROOT" "$WORK" "$QUICK" "$MIN_BUDGET" <<'EOF'
import json, sys
root, work, quick, min_budget = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
for name in ("grid", "asha"):
    with open("%s/benches/asha/%s.json" % (root, name)) as f:
        sweep = json.load(f)
    sweep["script"] = "%s/%s" % (root, sweep["script"])
    if quick:
        sweep["grid"] = {"hidden": [64], "lr": sweep["grid"]["lr"], "alpha": [0.0001]}
        args = sweep["args"]
        args[args.index("--steps") + 1] = "300"
        if "search" in sweep:
            sweep["search"]["maxBudget"] = {"steps": 300}
    if min_budget and "search" in sweep:
        sweep["search"]["minBudget"] = {"steps": int(min_budget)}
    with open("%s/%s.json" % (work, name), "w") as f:
        json.dump(sweep, f, indent=1)
EOF
MAX_STEPS=$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["args"]; print(a[a.index("--steps")+1])' "$WORK/grid.json")

# One half: the batch in its own home, then every record of that home.
run_batch() {
    local name=$1
    export BACKPROP_HOME="$WORK/$name-home"
    mkdir -p "$BACKPROP_HOME"
    log "$name: backprop queue $name.json (records in $BACKPROP_HOME)"
    local start=$SECONDS status=0
    (cd "$WORK" && "$BIN" -q queue "$WORK/$name.json") >"$WORK/$name-queue.out" 2>"$WORK/$name-queue.err" \
        || status=$?
    log "$name: exit $status after $((SECONDS - start)) s"
    (cd "$WORK" && "$BIN" --json list) >"$WORK/$name-runs.json"
    return "$status"
}

if [ -n "$GRID_FROM" ]; then
    [ -s "$GRID_FROM/grid-runs.json" ] || die "no grid-runs.json in $GRID_FROM (keep a full run with --keep DIR)"
    log "grid: the records of $GRID_FROM"
    cp "$GRID_FROM/grid-runs.json" "$WORK/grid-runs.json"
else
    run_batch grid || die "the full grid did not complete (exit $?): $(tail -3 "$WORK/grid-queue.err")"
fi

ASHA_ARGS=(--asha "$WORK/asha-runs.json")
if ! (cd "$WORK" && BACKPROP_HOME="$WORK/asha-home" "$BIN" queue "$WORK/asha.json" --dry-run) \
    >"$WORK/asha-plan.out" 2>"$WORK/asha-plan.err"; then
    REFUSED="backprop queue refuses the sweep's \"search\" key: $(tail -1 "$WORK/asha-plan.err")"
elif ! grep -q '^search: ' "$WORK/asha-plan.out"; then
    REFUSED="backprop queue --dry-run does not show a search plan (is \"search\" supported?)"
else
    # Pruned runs may make the exit code 1: the records decide.
    run_batch asha || log "asha: queue exited non-zero: $(tail -1 "$WORK/asha-queue.err")"
    if python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])) else 1)' \
        "$WORK/asha-runs.json"; then
        REFUSED=""
    else
        REFUSED="backprop queue refused the ASHA sweep: $(tail -1 "$WORK/asha-queue.err")"
    fi
fi
[ -z "$REFUSED" ] && grep '^search: ' "$WORK/asha-plan.out" >&2
[ -n "$REFUSED" ] && ASHA_ARGS=(--asha-missing "$REFUSED")

echo
QUICK_ARGS=()
[ "$QUICK" = 1 ] && QUICK_ARGS=(--quick)
python3 "$HERE/report.py" --grid "$WORK/grid-runs.json" "${ASHA_ARGS[@]}" --max-steps "$MAX_STEPS" \
    "${QUICK_ARGS[@]}"
[ -n "$KEEP" ] && log "kept in $WORK"
if [ -n "$REFUSED" ]; then
    die "ASHA part not run: $REFUSED"
fi
