#!/usr/bin/env python3
# Fixture for crash tests: spawns a helper child, prints progress, checkpoints, exits after
# about a second. Writes its own and its child's pid to $BACKPROP_RUN_DIR/pids.
import json
import os
import subprocess
import time

run_dir = os.environ["BACKPROP_RUN_DIR"]
child = subprocess.Popen(["sleep", "30"])
with open(os.path.join(run_dir, "pids.tmp"), "w") as f:
    f.write("%d %d" % (os.getpid(), child.pid))
os.replace(os.path.join(run_dir, "pids.tmp"), os.path.join(run_dir, "pids"))
for step in range(1, 21):
    print(json.dumps({"step": step, "loss": 1.0 / step}), flush=True)
    if step % 5 == 0:
        path = os.path.join(run_dir, "ckpt-%d" % step)
        with open(path, "w") as f:
            f.write(str(step))
        print(json.dumps({"event": "checkpoint_saved", "path": path}), flush=True)
    time.sleep(0.05)
child.kill()
