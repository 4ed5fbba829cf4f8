"""Training and tuning orchestration."""
import logging
import os
import re
import sys
import warnings

# Quiet TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) before it loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Keras warns that tf.data input is not reshuffled by fit(): ours is shuffled per epoch already.
warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
# tf.function's retracing advice fires when each trial or epoch compiles a new model: expected.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

# Lines TensorFlow 2.21 writes to stderr while loading, whatever TF_CPP_MIN_LOG_LEVEL says
# (absl logs before its logging is initialised): they would open every command's output.
_STARTUP_CHATTER = re.compile(r"absl::InitializeLog\(\) is called|cudart_stub\.cc.*"
                              r"Could not find cuda drivers|oneDNN custom operations are on")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its start-up chatter filtered out; any other line it writes
    (a real warning or error) still reaches stderr. Call before the first TF import."""
    from data.quiet import stderr_filtered

    if "tensorflow" in sys.modules:
        return
    with stderr_filtered(_STARTUP_CHATTER):
        import tensorflow  # noqa: F401
