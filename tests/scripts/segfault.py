#!/usr/bin/env python3
# Fixture: one progress line, then dies by SIGSEGV (signal 11; no core file is written).
import json
import os
import resource
import signal

resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
print(json.dumps({"step": 1, "loss": 0.9}), flush=True)
os.kill(os.getpid(), signal.SIGSEGV)
