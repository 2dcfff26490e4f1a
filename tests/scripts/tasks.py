#!/usr/bin/env python3
# Fixture: one task of a multi-task Slurm job (srun). Each task writes started-<rank> to
# $BACKPROP_RUN_DIR, and stopped-<rank> when the stop signal (SIGINT or SIGTERM) reaches it;
# rank 0 reports progress.
import json
import os
import signal
import sys
import time

rank = os.environ.get("SLURM_PROCID", "x")
run_dir = os.environ["BACKPROP_RUN_DIR"]


def mark(name):
    with open(os.path.join(run_dir, "%s-%s" % (name, rank)), "w") as f:
        f.write("%d\n" % os.getpid())


def on_stop(signum, frame):
    mark("stopped")
    sys.exit(0)


signal.signal(signal.SIGTERM, on_stop)
signal.signal(signal.SIGINT, on_stop)
mark("started")
step = 0
while True:
    step += 1
    if rank == "0":
        print(json.dumps({"step": step, "loss": 1.0 / step}), flush=True)
    time.sleep(0.2)
