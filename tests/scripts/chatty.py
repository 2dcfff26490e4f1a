#!/usr/bin/env python3
# Fixture: many plain lines (far more than a pipe holds), then one progress line, exit 0.
import json
import sys

lines = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
write = sys.stdout.write
for i in range(lines):
    write("plain output line %d of a chatty script\n" % i)
print(json.dumps({"step": lines, "loss": 0.25}), flush=True)
