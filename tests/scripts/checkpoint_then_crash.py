#!/usr/bin/env python3
# Fixture: attempt 1 writes a checkpoint then exits 1; resumed (--resume-from / BACKPROP_RESUME_FROM) it finishes, exit 0.
import argparse
import json
import os
import sys
import tempfile
import time

p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("--resume-from", default=os.environ.get("BACKPROP_RESUME_FROM") or None)
args, _ = p.parse_known_args()
run_dir = os.environ.get("BACKPROP_RUN_DIR") or tempfile.mkdtemp(prefix="crash-")

def progress(step):
    print(json.dumps({"step": step, "loss": 1.0 / step}), flush=True)
    time.sleep(0.02)

if not args.resume_from:
    for step in range(1, 6):
        progress(step)
    path = os.path.join(run_dir, "ckpt-step5.json")
    with open(path, "w") as f:
        json.dump({"step": 5}, f)
    print(json.dumps({"event": "checkpoint_saved", "path": path}), flush=True)
    print("crashing on purpose", file=sys.stderr, flush=True)
    sys.exit(1)

try:
    with open(args.resume_from) as f:
        start = json.load(f)["step"]
except (OSError, ValueError, KeyError) as e:
    print("cannot resume from %s: %s" % (args.resume_from, e), file=sys.stderr, flush=True)
    sys.exit(2)
print("resumed from %s at step %d" % (args.resume_from, start), flush=True)
for step in range(start + 1, start + 6):
    progress(step)
