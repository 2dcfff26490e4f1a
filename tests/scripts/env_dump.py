#!/usr/bin/env python3
# Fixture: dumps argv and the backprop-relevant environment to $BACKPROP_RUN_DIR/env-attempt<N>.json.
import argparse
import json
import os
import sys
import tempfile
import time

PREFIXES = ("BACKPROP_", "CUDA_", "XLA_", "TF_")
p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("--sleep", type=float, default=0.0)
args, _ = p.parse_known_args()  # everything else (--lr, --resume-from, ...) is only recorded

run_dir = os.environ.get("BACKPROP_RUN_DIR") or tempfile.mkdtemp(prefix="env-dump-")
env = {k: v for k, v in os.environ.items() if k.startswith(PREFIXES) or k == "PYTHONUNBUFFERED"}
path = os.path.join(run_dir, "env-attempt%s.json" % os.environ.get("BACKPROP_ATTEMPT", "0"))
with open(path + ".tmp", "w") as f:
    json.dump({"argv": sys.argv[1:], "env": env}, f, indent=2, sort_keys=True)
os.replace(path + ".tmp", path)
print(json.dumps({"step": 1, "loss": 0.5}), flush=True)
time.sleep(args.sleep)
