"""Training and tuning orchestration."""
import os

# Quiet TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) before it loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import warnings

# Keras warns that tf.data input is not reshuffled by fit(): ours is shuffled per epoch already.
warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
