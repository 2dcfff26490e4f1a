#!/usr/bin/env python3
# Fixture: 1 MiB of random bytes (newlines included at random), then a progress line.
import os
import random
import sys

random.seed(7)
sys.stdout.buffer.write(bytes(random.getrandbits(8) for _ in range(1 << 20)))
sys.stdout.buffer.write(b'\n{"step": 3, "loss": 0.5}\n')
sys.stdout.flush()
