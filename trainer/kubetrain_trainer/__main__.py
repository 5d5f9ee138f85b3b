"""`python -m kubetrain_trainer`: the program of every replica."""

import logging
import os
import sys

from kubetrain_trainer import tpu
from kubetrain_trainer.main import main

code = main()
if tpu.HUNG:
    # An abandoned TPU connection thread would hold interpreter exit for a long time.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
raise SystemExit(code)
