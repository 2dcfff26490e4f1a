#!/usr/bin/env python3
# Fixture: a script written for the original backprop tool. argparse requires the --run-id and
# --max-minutes it passed; the arguments received go to $BACKPROP_RUN_DIR/argv.json.
import argparse
import json
import os
import sys

p = argparse.ArgumentParser()
p.add_argument("--run-id", required=True)
p.add_argument("--max-minutes", type=float, required=True)
p.add_argument("--lr", type=float, default=0.1)
args = p.parse_args()
with open(os.path.join(os.environ["BACKPROP_RUN_DIR"], "argv.json"), "w") as f:
    json.dump(sys.argv[1:], f)
print(json.dumps({"step": 1, "loss": args.lr}), flush=True)
