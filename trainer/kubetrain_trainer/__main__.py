"""`python -m kubetrain_trainer`: the program of every replica."""

import logging
import os
import sys

from kubetrain_trainer import tpu
from kubetrain_trainer.config import EXIT_OK
from kubetrain_trainer.main import main

code = main()
if code != EXIT_OK or tpu.HUNG:
    # A failed run exits mid-epoch, while tf.data threads may still be running
    # Python (a copy-ahead download, a generator): interpreter shutdown would
    # kill them mid-call, which aborts TensorFlow ("FATAL: exception not
    # rethrown") or hangs. An abandoned TPU connection thread would also hold
    # interpreter exit for a long time. So skip the shutdown, cleaning up first.
    copyahead = sys.modules.get("kubetrain_trainer.data.copyahead")
    if copyahead is not None:
        copyahead.remove_scratch()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
raise SystemExit(code)
