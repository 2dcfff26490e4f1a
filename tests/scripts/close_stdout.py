#!/usr/bin/env python3
# Fixture: prints one progress line, closes stdout, keeps working (on stderr), exits 0.
import json
import os
import sys
import time

print(json.dumps({"step": 1, "loss": 0.9}), flush=True)
sys.stdout.close()
os.close(1)
for i in range(5):
    print("still working %d" % i, file=sys.stderr, flush=True)
    time.sleep(0.05)
