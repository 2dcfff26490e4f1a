#!/usr/bin/env python3
# Fixture: odd output that must pass through untouched (non-object JSON, bad UTF-8, huge lines, \r on stderr).
import json
import sys
import time

out = sys.stdout
print("plain text line", flush=True)
print("[1,2,3]", flush=True)
out.buffer.write(b"invalid utf-8: \xff\xfe \xc3\x28 end\n")
out.buffer.write(b"x" * (2 << 20) + b"\n")  # 2 MiB line, no JSON
# A JSON object over 1 MiB is output, not progress: its step must never show up as the run's step.
out.buffer.write(json.dumps({"step": 999999, "loss": 0.0, "pad": "y" * (3 << 19)}).encode() + b"\n")
out.buffer.flush()
for i in range(11):  # tqdm-like progress bar, redrawn with \r
    bar = "\u2588" * i + " " * (10 - i)
    sys.stderr.write("\r%3d%%|%s| %d/10 [00:00<00:00, 99.0it/s]" % (i * 10, bar, i))
    sys.stderr.flush()
    time.sleep(0.01)
sys.stderr.write("\n")
print(json.dumps({"step": 1, "loss": 0.25}), flush=True)
