#!/usr/bin/env python3
# Fixture for rounds: each attempt does one chunk of work, checkpoints, then waits for the
# timebox (SIGINT); after --chunks chunks it completes. So a run needs exactly --chunks
# attempts whatever the machine's speed.
import argparse
import json
import os
import signal
import sys
import time

p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("--chunks", type=int, default=3)
p.add_argument("--steps-per-chunk", type=int, default=5)
p.add_argument("--resume-from", default=os.environ.get("BACKPROP_RESUME_FROM") or None)
args, _ = p.parse_known_args()
signal.signal(signal.SIGINT, signal.default_int_handler)
run_dir = os.environ["BACKPROP_RUN_DIR"]

state = {"chunks_done": 0, "step": 0}
if args.resume_from:
    with open(args.resume_from) as f:
        state = json.load(f)
    print("resumed from %s at step %d" % (args.resume_from, state["step"]), flush=True)

for _ in range(args.steps_per_chunk):
    state["step"] += 1
    print(json.dumps({"step": state["step"], "loss": 1.0 / state["step"]}), flush=True)
    time.sleep(0.01)
state["chunks_done"] += 1
path = os.path.join(run_dir, "ckpt-%d.json" % state["step"])
with open(path + ".tmp", "w") as f:
    json.dump(state, f)
os.replace(path + ".tmp", path)
print(json.dumps({"event": "checkpoint_saved", "path": path}), flush=True)
if state["chunks_done"] >= args.chunks:
    sys.exit(0)
try:
    while True:
        time.sleep(0.05)
except KeyboardInterrupt:
    sys.exit(130)
