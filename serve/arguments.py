"""Argument types shared by the serve commands (argparse reports a bad value with exit 2)."""
from __future__ import annotations

import argparse


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a positive number")
    return value
