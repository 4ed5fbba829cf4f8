"""Filter a library's start-up chatter out of stderr (fd 2, so C++ writers are caught too),
passing every other line through: shared by training (TensorFlow) and serve.distributed (Ray).
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager


@contextmanager
def stderr_filtered(chatter: re.Pattern):
    """Lines matching `chatter` written to fd 2 inside the block are dropped; the rest are
    written to stderr when the block ends."""
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if not chatter.search(line):
                    print(line, file=sys.stderr)
