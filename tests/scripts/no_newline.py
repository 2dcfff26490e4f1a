#!/usr/bin/env python3
# Fixture: 10 MB on stdout without a single newline, then a progress line.
import sys

chunk = b"x" * (1 << 20)
for _ in range(10):
    sys.stdout.buffer.write(chunk)
sys.stdout.buffer.write(b'\n{"step": 7, "loss": 0.25}\n')
sys.stdout.flush()
