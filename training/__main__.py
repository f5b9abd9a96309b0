"""`python -m training`: TensorFlow's C++ start-up chatter is silenced unless --log-level DEBUG.

The variable must be set before TensorFlow is imported, so this happens before `training.train`
is; it is TensorFlow's own setting for this process only.
"""

import os
import sys

if "DEBUG" not in (arg.upper() for arg in sys.argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from training.train import main  # after the environment is set

sys.exit(main())
