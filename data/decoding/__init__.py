"""Numpy CRF decoding: Viterbi (viterbi.py) and forward-backward marginals and span
probabilities (marginals.py)."""
