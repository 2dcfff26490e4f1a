#!/usr/bin/env python3
# Fixture: ignores every catchable signal and sleeps; only SIGKILL ends it. Writes its pid.
import json
import os
import signal
import time

for s in signal.valid_signals():
    if s in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
        continue
    try:
        signal.signal(s, signal.SIG_IGN)
    except (OSError, ValueError, RuntimeError):
        pass
with open(os.path.join(os.environ["BACKPROP_RUN_DIR"], "pid"), "w") as f:
    f.write(str(os.getpid()))
print(json.dumps({"step": 1, "loss": 1.0}), flush=True)
while True:
    time.sleep(0.1)
