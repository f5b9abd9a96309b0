"""`python -m training`: TensorFlow's C++ start-up chatter is hidden unless --log-level DEBUG.

TensorFlow's shared libraries print their oneDNN / absl / CPU-feature lines while they load,
before TF_CPP_MIN_LOG_LEVEL is consulted, so the import runs with file descriptor 2 pointed at
/dev/null (Python exceptions still propagate and are reported after it), and the variable keeps
TensorFlow's later C++ logging quiet. Both are TensorFlow's own settings, for this process only.
"""

import os
import sys

if "DEBUG" not in (arg.upper() for arg in sys.argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401  (loaded here, quietly, for training.cli)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)

from training.cli import main  # after the environment is set

sys.exit(main())
