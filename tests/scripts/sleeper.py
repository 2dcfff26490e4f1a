#!/usr/bin/env python3
# Fixture: long-running script; writes its pid to $BACKPROP_RUN_DIR/pid, progress every 0.1 s, exits 130 on SIGINT.
import argparse
import json
import os
import signal
import sys
import tempfile
import time

p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("--seconds", type=float, default=600)
args, _ = p.parse_known_args()
# SIGINT may arrive ignored (e.g. `cmd &` in a shell script); make it raise KeyboardInterrupt again.
signal.signal(signal.SIGINT, signal.default_int_handler)
run_dir = os.environ.get("BACKPROP_RUN_DIR") or tempfile.mkdtemp(prefix="sleeper-")
with open(os.path.join(run_dir, "pid.tmp"), "w") as f:
    f.write("%d\n" % os.getpid())
os.replace(os.path.join(run_dir, "pid.tmp"), os.path.join(run_dir, "pid"))

step, end = 0, time.monotonic() + args.seconds
try:
    while time.monotonic() < end:
        step += 1
        print(json.dumps({"step": step, "loss": 1.0 / step}), flush=True)
        time.sleep(0.1)
except KeyboardInterrupt:
    print(json.dumps({"event": "interrupted", "step": step}), flush=True)
    sys.exit(130)
