#!/usr/bin/env python3
# Fixture: N progress lines (NaN loss first, then falling), a real checkpoint file every 10 steps, exit 0.
import argparse
import json
import os
import tempfile
import time

p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("--steps", type=int, default=50)
p.add_argument("--delay", type=float, default=0.02)
args, _ = p.parse_known_args()  # tolerate extra args such as --resume-from
run_dir = os.environ.get("BACKPROP_RUN_DIR") or tempfile.mkdtemp(prefix="progress-")

print("starting %d steps" % args.steps, flush=True)  # plain text passes through
print(json.dumps({"step": 0, "loss": float("nan"), "total_steps": args.steps}), flush=True)
for step in range(1, args.steps):
    time.sleep(args.delay)
    print(json.dumps({"step": step, "loss": 1.0 / (1 + step), "lr": 0.01, "total_steps": args.steps}), flush=True)
    if (step + 1) % 10 == 0:  # steps 9, 19, 29, ...
        path = os.path.join(run_dir, "ckpt-%d.txt" % step)
        with open(path, "w") as f:
            f.write("step %d\n" % step)
        print(json.dumps({"event": "checkpoint_saved", "path": path}), flush=True)
