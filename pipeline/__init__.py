"""The command-line entry points: pipeline.train, .tune, .evaluate, .bench, .loadtest.

The top stage: it may import every other package; no other package imports it.
"""
