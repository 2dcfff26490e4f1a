#!/usr/bin/env python3
# Fixture: a daemon that double-forks out of the process group (setsid), ignores signals and
# writes its pid to $BACKPROP_RUN_DIR/daemon.pid; the script itself then exits at once.
import json
import os
import signal
import sys
import time

run_dir = os.environ["BACKPROP_RUN_DIR"]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        with open(os.path.join(run_dir, "daemon.pid.tmp"), "w") as f:
            f.write(str(os.getpid()))
        os.replace(os.path.join(run_dir, "daemon.pid.tmp"), os.path.join(run_dir, "daemon.pid"))
        while True:
            time.sleep(1)
    os._exit(0)
os.wait()
while not os.path.exists(os.path.join(run_dir, "daemon.pid")):
    time.sleep(0.01)
print(json.dumps({"step": 1, "loss": 0.5}), flush=True)
