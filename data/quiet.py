"""Filter a library's start-up chatter out of stderr (fd 2, so C++ writers are caught too),
passing every other line through: shared by training and export (TensorFlow) and
serve.distributed (Ray). Imports neither library unless asked to.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager

# Lines TensorFlow 2.21 writes to stderr while loading, whatever TF_CPP_MIN_LOG_LEVEL says
# (absl logs before its logging is initialised): they would open every command's output.
_TF_STARTUP_CHATTER = re.compile(r"absl::InitializeLog\(\) is called|cudart_stub\.cc.*"
                                 r"Could not find cuda drivers|oneDNN custom operations are on")


@contextmanager
def stderr_filtered(chatter: re.Pattern):
    """Lines matching `chatter` written to fd 2 inside the block are dropped; the rest are
    written to stderr when the block ends."""
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if not chatter.search(line):
                    print(line, file=sys.stderr)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its start-up chatter filtered out; any other line it writes
    (a real warning or error) still reaches stderr. Call before the first TF import."""
    # Quiet TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) before it loads.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Keras warns that tf.data input is not reshuffled by fit(): ours is shuffled per epoch.
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    # tf.function's retracing advice fires when each trial or epoch compiles a new model.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    with stderr_filtered(_TF_STARTUP_CHATTER):
        import tensorflow  # noqa: F401
