#!/usr/bin/env python3
# Fixture: one progress line, then exits with the code given as argv[1] (default 3).
import json
import sys

print(json.dumps({"step": 1, "loss": 0.9}), flush=True)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].lstrip("-").isdigit() else 3)
