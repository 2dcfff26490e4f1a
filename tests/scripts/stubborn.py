#!/usr/bin/env python3
# Fixture: ignores SIGINT/SIGTERM and forks a grandchild that does too; only SIGKILL ends them.
import json
import os
import signal
import sys
import tempfile
import time

for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, signal.SIG_IGN)
run_dir = os.environ.get("BACKPROP_RUN_DIR") or tempfile.mkdtemp(prefix="stubborn-")
sys.stdout.flush()
pid = os.fork()
if pid == 0:  # grandchild: ignores both signals (inherited; set again to be explicit), sleeps forever
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        time.sleep(3600)

path = os.path.join(run_dir, "pids.json")
with open(path + ".tmp", "w") as f:
    json.dump({"child": os.getpid(), "grandchild": pid}, f)
os.replace(path + ".tmp", path)
step = 0
while True:
    step += 1
    print(json.dumps({"step": step, "loss": 1.0}), flush=True)
    time.sleep(0.2)
