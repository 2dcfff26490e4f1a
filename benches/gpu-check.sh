#!/usr/bin/env bash
# Hardware check of backprop's GPU probes, for a machine with an NVIDIA GPU.
#
#   benches/gpu-check.sh             # builds target/release/backprop first if it is missing
#   benches/gpu-check.sh --no-build  # use target/release/backprop as it is (must exist)
#   GPU_CHECK_BIN=path benches/gpu-check.sh   # check another backprop binary
#
# What it does, in a throwaway BACKPROP_HOME (removed on exit):
#   1. plain `nvidia-smi` (driver, -L listing, the query backprop makes) as the reference;
#   2. what backprop reads through each probe, side by side: `backprop status --json`
#      with gpu.probe nvml, then nvidia-smi (BACKPROP_GPU_PROBE); each compared with (1):
#      the same devices, uuids, names and total memory;
#   3. two runs placed at once (`backprop run --no-wait`, a small Python script that
#      prints the CUDA_VISIBLE_DEVICES it got); where PyTorch with CUDA is installed, the
#      script also prints torch.cuda.get_device_properties(0).uuid, which must be the
#      device backprop placed it on.
# Every step has a time limit; the whole check takes well under five minutes (not
# counting the first release build). CPU and RAM gates are opened wide for the runs:
# this checks GPUs, not load.
#
# Exit codes:
#   0  every comparison matched, or there is no NVIDIA GPU here (then it prints
#      "no NVIDIA GPU: ..." and checks nothing)
#   1  a comparison failed (each mismatch is listed at the end, prefixed FAIL)
#   2  bad usage, or a tool it needs is missing (python3, timeout, cargo to build)
#   3  backprop could not be built or found
set -uo pipefail

BUILD=1
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=0 ;;
        -h | --help)
            sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "gpu-check.sh: unknown option $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="${GPU_CHECK_BIN:-$ROOT/target/release/backprop}"
STARTED=$SECONDS

log() { printf '[gpu-check %3ds] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }
section() { printf '\n=== %s ===\n' "$*"; }

# --- 0. Is there a GPU at all? (before building anything) ---------------------------
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "no NVIDIA GPU: nvidia-smi is not on PATH, so there is nothing to check here."
    exit 0
fi
command -v timeout >/dev/null || { echo "gpu-check.sh: 'timeout' (coreutils) is needed" >&2; exit 2; }
LISTING=$(timeout 20 nvidia-smi -L 2>&1)
LIST_STATUS=$?
if [ "$LIST_STATUS" -ne 0 ] || ! grep -q '^GPU [0-9]' <<<"$LISTING"; then
    echo "no NVIDIA GPU: nvidia-smi -L lists none (exit $LIST_STATUS): $(head -n 1 <<<"$LISTING")"
    exit 0
fi
command -v python3 >/dev/null || { echo "gpu-check.sh: python3 is needed" >&2; exit 2; }

# --- Build -----------------------------------------------------------------------------
if [ ! -x "$BIN" ]; then
    if [ "$BUILD" = 0 ]; then
        echo "gpu-check.sh: $BIN is missing (drop --no-build to build it)" >&2
        exit 3
    fi
    command -v cargo >/dev/null || { echo "gpu-check.sh: cargo is needed to build backprop" >&2; exit 2; }
    log "building backprop (cargo build --release)"
    (cd "$ROOT" && cargo build --release) || { echo "gpu-check.sh: the build failed" >&2; exit 3; }
fi
[ -x "$BIN" ] || { echo "gpu-check.sh: $BIN is missing" >&2; exit 3; }
STARTED=$SECONDS

WORK=$(mktemp -d "${TMPDIR:-/tmp}/backprop-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export BACKPROP_HOME="$WORK/home"
export BACKPROP_MIN_FREE_RAM_GB=0
export BACKPROP_MAX_CPU_LOAD=1000
unset BACKPROP_GPU_PROBE CUDA_VISIBLE_DEVICES

# The comparisons and tables (stdlib only).
cat >"$WORK/report.py" <<'PY'
import csv, json, sys

def plain(path):
    """Rows of the plain nvidia-smi query, by index."""
    rows = {}
    with open(path) as f:
        for r in csv.reader(f, skipinitialspace=True):
            if len(r) < 10 or not r[0].strip().isdigit():
                continue
            rows[int(r[0])] = dict(zip(
                ["index", "uuid", "name", "total", "used", "free", "temp", "util", "mode", "mig"],
                [c.strip() for c in r]))
    return rows

def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None

def cell(v):
    return "-" if v is None else str(v)

def table(status):
    probe = status.get("gpuProbe", {})
    print(f"probe: {probe.get('kind')}   error: {cell(probe.get('error'))}")
    if probe.get("note"):
        print(f"note:  {probe['note']}")
    head = ["#", "deviceId", "name", "used/total MB", "temp", "util", "slowdown",
            "compute", "mig", "failure"]
    rows = []
    for g in status.get("gpus", []):
        label = str(g.get("index"))
        if g.get("parentIndex") is not None:
            label = f"{g['parentIndex']}:{g.get('migIndex')}"
        failure = g.get("failure")
        rows.append([label, cell(g.get("deviceId")), cell(g.get("name")),
                     f"{cell(g.get('memoryUsedMb'))}/{cell(g.get('memoryTotalMb'))}",
                     cell(g.get("temperatureC")), cell(g.get("utilizationPct")),
                     cell(g.get("slowdownTempC")), cell(g.get("computeMode")),
                     cell(g.get("migMode")),
                     "-" if not failure else f"{failure['kind']}: {failure['message']}"])
    if not rows:
        print("  (no devices)")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    for r in [head] + rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())

def compare(status, ref, probe):
    """FAIL lines: devices of the plain query that the probe reads differently."""
    fails = []
    if status.get("gpuProbe", {}).get("kind") != probe:
        fails.append(f"{probe}: backprop used probe {status.get('gpuProbe', {}).get('kind')!r} "
                     f"({status.get('gpuProbe', {}).get('note') or status.get('gpuProbe', {}).get('error')})")
        return fails
    if status["gpuProbe"].get("error"):
        fails.append(f"{probe}: read failed: {status['gpuProbe']['error']}")
    gpus = status.get("gpus", [])
    plain_gpus = {g["index"]: g for g in gpus if g.get("parentIndex") is None}
    mig_parents = {g["parentIndex"] for g in gpus if g.get("parentIndex") is not None}
    for index, r in sorted(ref.items()):
        if r["mig"] == "Enabled":
            if index not in mig_parents and not (index in plain_gpus and plain_gpus[index].get("failure")):
                fails.append(f"{probe}: GPU {index} is in MIG mode but no instance and no failure was reported")
            continue
        g = plain_gpus.get(index)
        if g is None:
            fails.append(f"{probe}: GPU {index} ({r['uuid']}) is missing")
            continue
        if g.get("uuid") != r["uuid"]:
            fails.append(f"{probe}: GPU {index} uuid {g.get('uuid')} != nvidia-smi's {r['uuid']}")
        if g.get("name") != r["name"]:
            fails.append(f"{probe}: GPU {index} name {g.get('name')!r} != nvidia-smi's {r['name']!r}")
        if g.get("deviceId") != str(index):
            fails.append(f"{probe}: GPU {index} deviceId {g.get('deviceId')!r} != '{index}'")
        total, ref_total = g.get("memoryTotalMb"), num(r["total"])
        if (total is None) != (ref_total is None) or (
                total is not None and abs(total - ref_total) > max(2, ref_total * 0.01)):
            fails.append(f"{probe}: GPU {index} memory.total {total} != nvidia-smi's {r['total']}")
        if g.get("failure"):
            fails.append(f"{probe}: GPU {index} reported failed: {g['failure']}")
    for index in plain_gpus:
        if index not in ref:
            fails.append(f"{probe}: GPU {index} is not in nvidia-smi's listing")
    return fails

def same_devices(a, b):
    ids = lambda s: sorted((g.get("deviceId"), g.get("uuid")) for g in s.get("gpus", []))
    if a.get("gpuProbe", {}).get("kind") == "nvml" and b.get("gpuProbe", {}).get("kind") == "nvidia-smi":
        if ids(a) != ids(b):
            return [f"nvml and nvidia-smi list different devices: {ids(a)} vs {ids(b)}"]
    return []

def strip(u):
    u = (u or "").lower()
    for p in ("gpu-", "mig-"):
        if u.startswith(p):
            u = u[len(p):]
    return u

def run_result(run_id, code, stdout_log, ref, status):
    """Prints what run `run_id` got; FAIL lines for a placement that does not hold."""
    fails, got = [], None
    try:
        with open(stdout_log) as f:
            for line in f:
                if line.startswith("GPUCHECK "):
                    got = json.loads(line[len("GPUCHECK "):])
    except OSError:
        pass
    if code != 0 or got is None:
        fails.append(f"run {run_id}: not placed or failed (exit {code}; see its stderr above)")
        print(f"  {run_id}: exit {code}, no report")
        return fails
    cvd = got.get("CUDA_VISIBLE_DEVICES")
    print(f"  {run_id}: CUDA_VISIBLE_DEVICES={cvd}  torch={cell(got.get('torch'))}  "
          f"device={cell(got.get('name'))}  uuid={cell(got.get('uuid'))}")
    devices = [d for d in (cvd or "").split(",") if d]
    if not devices:
        fails.append(f"run {run_id}: no CUDA_VISIBLE_DEVICES")
        return fails
    first = devices[0]
    known = {g.get("deviceId"): g for g in status.get("gpus", [])}
    if first not in known:
        fails.append(f"run {run_id}: CUDA_VISIBLE_DEVICES={cvd} names no device backprop reads "
                     f"(device ids: {sorted(k for k in known if k)})")
    if first.isdigit():
        placed_uuid = ref.get(int(first), {}).get("uuid")
    else:
        placed_uuid = first
    if got.get("torch") and got.get("cuda") != "not available":
        if got.get("uuid") is None:
            print(f"  {run_id}: this PyTorch has no device uuid; compared the name only")
            ref_name = ref.get(int(first), {}).get("name") if first.isdigit() else None
            if ref_name and got.get("name") != ref_name:
                fails.append(f"run {run_id}: torch sees {got.get('name')!r}, placed on {ref_name!r}")
        elif strip(got["uuid"]) != strip(placed_uuid):
            fails.append(f"run {run_id}: torch sees device {got['uuid']}, placed on {placed_uuid}")
    elif got.get("torch"):
        fails.append(f"run {run_id}: PyTorch is installed but sees no CUDA device "
                     f"with CUDA_VISIBLE_DEVICES={cvd}")
    return fails

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "table":
        table(json.load(open(sys.argv[2])))
    elif cmd == "compare":
        ref = plain(sys.argv[2])
        fails = []
        statuses = []
        for probe, path in zip(sys.argv[3::2], sys.argv[4::2]):
            s = json.load(open(path))
            statuses.append(s)
            fails += compare(s, ref, probe)
        if len(statuses) == 2:
            fails += same_devices(*statuses)
        for f in fails:
            print("FAIL " + f)
    elif cmd == "run":
        run_id, code, log, ref_path, status_path = sys.argv[2:7]
        for f in run_result(run_id, int(code), log, plain(ref_path), json.load(open(status_path))):
            print("FAIL " + f)
PY

cat >"$WORK/which_device.py" <<'PY'
# Prints the device this run was given, as CUDA_VISIBLE_DEVICES and as PyTorch sees it.
import json, os, time
out = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
try:
    import torch
    out["torch"] = torch.__version__
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out["name"] = p.name
        out["count"] = torch.cuda.device_count()
        uuid = getattr(p, "uuid", None)
        out["uuid"] = None if uuid is None else str(uuid)
    else:
        out["cuda"] = "not available"
except Exception as e:  # no torch, or a broken one: report, do not fail the run
    out["torch"] = None if isinstance(e, ImportError) else f"error: {e}"
time.sleep(3)  # overlap with the other run, so both hold a lease at once
print("GPUCHECK " + json.dumps(out), flush=True)
PY

FAILS="$WORK/fails.txt"
: >"$FAILS"

# --- 1. Plain nvidia-smi ----------------------------------------------------------------
section "plain nvidia-smi"
timeout 20 nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 |
    sed 's/^/driver: /'
echo "$LISTING"
QUERY="index,uuid,name,memory.total,memory.used,memory.free,temperature.gpu,utilization.gpu,compute_mode,mig.mode.current"
if ! timeout 20 nvidia-smi --query-gpu="$QUERY" --format=csv,noheader,nounits >"$WORK/plain.csv" 2>&1; then
    # Drivers before R450 do not know mig.mode.current: the reference goes without it.
    timeout 20 nvidia-smi --query-gpu="${QUERY%,mig.mode.current}" --format=csv,noheader,nounits |
        sed 's/$/, [N\/A]/' >"$WORK/plain.csv"
fi
echo "$QUERY"
cat "$WORK/plain.csv"

# --- 2. backprop's probes ---------------------------------------------------------------
ARGS=()
for probe in nvml nvidia-smi; do
    section "backprop status, gpu.probe = $probe"
    out="$WORK/status-$probe.json"
    if BACKPROP_GPU_PROBE=$probe timeout 60 "$BIN" status --json >"$out" 2>"$WORK/status-$probe.err"; then
        python3 "$WORK/report.py" table "$out"
        ARGS+=("$probe" "$out")
    else
        echo "backprop status failed (exit $?):"
        cat "$WORK/status-$probe.err"
        echo "FAIL $probe: backprop status failed" >>"$FAILS"
    fi
done
if [ "${#ARGS[@]}" -gt 0 ]; then
    python3 "$WORK/report.py" compare "$WORK/plain.csv" "${ARGS[@]}" >>"$FAILS"
fi

# --- 3. Two runs placed at once ---------------------------------------------------------
section "two runs placed at once (gpu.probe auto)"
BACKPROP_GPU_PROBE=auto timeout 60 "$BIN" status --json >"$WORK/status-auto.json" 2>/dev/null ||
    echo '{"gpus": []}' >"$WORK/status-auto.json"
log "placing runs a and b"
PIDS=()
for id in a b; do
    timeout 90 "$BIN" run "$WORK/which_device.py" -q --no-wait --run-id "gpucheck-$id" \
        >"$WORK/run-$id.out" 2>"$WORK/run-$id.err" &
    PIDS+=($!)
done
for i in 0 1; do
    id=$([ "$i" = 0 ] && echo a || echo b)
    wait "${PIDS[$i]}"
    code=$?
    [ "$code" -ne 0 ] && sed "s/^/  gpucheck-$id stderr: /" "$WORK/run-$id.err"
    python3 "$WORK/report.py" run "gpucheck-$id" "$code" \
        "$BACKPROP_HOME/runs/gpucheck-$id/stdout.log" "$WORK/plain.csv" "$WORK/status-auto.json" |
        tee -a "$FAILS" | grep -v '^FAIL' || true
done
if ! python3 -c 'import torch' 2>/dev/null; then
    echo "  (PyTorch is not installed for python3: the device uuid was not checked from inside)"
fi

# --- Verdict ----------------------------------------------------------------------------
section "result ($((SECONDS - STARTED)) s)"
if grep -q '^FAIL' "$FAILS"; then
    grep '^FAIL' "$FAILS"
    exit 1
fi
echo "OK: both probes agree with nvidia-smi and each run got the device it was placed on"
exit 0
