#!/usr/bin/env python3
# Fixture for adaptive search: trains --steps steps (--sleep s each), reporting
# {"step", "val_loss"} every step with val_loss = --quality + 1/step (so a lower --quality
# is better at every rung). On the stop signal (SIGTERM/SIGINT) it saves a checkpoint of its
# step and exits 0; resumed from one (BACKPROP_RESUME_FROM) it continues from that step.
# --no-metric: reports only "step"; --fail-at N: exits 3 at step N.
import argparse
import json
import os
import signal
import tempfile
import time

p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("--quality", type=float, default=1.0)
p.add_argument("--steps", type=int, default=90)
p.add_argument("--sleep", type=float, default=0.01)
p.add_argument("--no-metric", action="store_true")
p.add_argument("--fail-at", type=int, default=0)
args, _ = p.parse_known_args()
run_dir = os.environ.get("BACKPROP_RUN_DIR") or tempfile.mkdtemp(prefix="asha-")
resume = os.environ.get("BACKPROP_RESUME_FROM")

stopping = False


def on_stop(signum, frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, on_stop)
signal.signal(signal.SIGINT, on_stop)

step = 0
if resume:
    with open(resume) as f:
        step = json.load(f)["step"]


def checkpoint():
    path = os.path.join(run_dir, "ckpt-%d.json" % step)
    with open(path, "w") as f:
        json.dump({"step": step}, f)
    print(json.dumps({"event": "checkpoint_saved", "path": path}), flush=True)


while step < args.steps and not stopping:
    step += 1
    if args.fail_at and step == args.fail_at:
        raise SystemExit(3)
    line = {"step": step}
    if not args.no_metric:
        line["val_loss"] = args.quality + 1.0 / step
    print(json.dumps(line), flush=True)
    time.sleep(args.sleep)
checkpoint()
