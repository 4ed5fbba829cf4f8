"""Training and tuning orchestration."""
import logging
import os
import warnings

# Quiet TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) before it loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Keras warns that tf.data input is not reshuffled by fit(): ours is shuffled per epoch already.
warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
# tf.function's retracing advice fires when each trial or epoch compiles a new model: expected.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
