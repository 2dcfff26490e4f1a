#!/usr/bin/env python3
# Fixture: announces a real checkpoint, then one whose file does not exist, then exits 0.
# Resumed, it records which path it was given.
import json
import os
import sys

run_dir = os.environ["BACKPROP_RUN_DIR"]
resume = os.environ.get("BACKPROP_RESUME_FROM")
if resume:
    with open(os.path.join(run_dir, "resumed-from.txt"), "w") as f:
        f.write(resume)
real = os.path.join(run_dir, "real.ckpt")
with open(real, "w") as f:
    f.write("weights")
print(json.dumps({"event": "checkpoint_saved", "path": real, "step": 1, "loss": 1.0}), flush=True)
print(json.dumps({"event": "checkpoint_saved", "path": os.path.join(run_dir, "never-written.ckpt")}), flush=True)
