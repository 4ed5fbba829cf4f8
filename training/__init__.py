"""Training: the tf.data pipeline (tf_input.py), the loop and its checkpoints (loop.py), run
folders (run_files.py), distillation, `--init-from` transfer (warm_start.py), the weight
average, and Keras-side prediction for dev and test scores (predict.py)."""
