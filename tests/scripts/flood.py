#!/usr/bin/env python3
# Fixture: 100,000 progress lines as fast as Python can print them.
import sys

write = sys.stdout.write
for step in range(100_000):
    write('{"step": %d, "loss": %f, "lr": 0.01}\n' % (step, 1.0 / (step + 1)))
sys.stdout.flush()
