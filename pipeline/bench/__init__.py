"""Benchmarks: the inference paths (paths.py), the report (report.py), the command
(command.py, run as `python -m pipeline.bench`)."""
