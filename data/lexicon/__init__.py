"""The lexicon: word lists and jieba's dictionary (words.py), hash tables (hashing.py), the
per-character features the network reads (features.py), training entities (train_entities.py)."""
