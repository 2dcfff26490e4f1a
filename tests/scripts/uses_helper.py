#!/usr/bin/env python3
# Fixture: imports backprop_helper as any script may (backprop puts it on PYTHONPATH) and
# records the PYTHONPATH it got in $BACKPROP_RUN_DIR/pythonpath.txt.
import os

with open(os.path.join(os.environ["BACKPROP_RUN_DIR"], "pythonpath.txt"), "w") as f:
    f.write(os.environ.get("PYTHONPATH", ""))

import backprop_helper  # noqa: E402

backprop_helper.report(step=1, loss=0.5)
