"""Text to model inputs: vocabularies (vocab.py), the input encoder (inputs.py), and cutting
long texts into pieces (pieces.py)."""
