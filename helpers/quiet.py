"""Silence native (C/C++) log lines that bypass Python, such as LiteRT's
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``

Those lines are written straight to file descriptor 2, so ``contextlib.redirect_stderr``
cannot catch them. :func:`quiet_native_stderr` points fd 2 at ``/dev/null`` for the duration
of a block and restores it afterwards, also when the block raises.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_native_stderr():
    """Send everything written to fd 2 inside the block to /dev/null; exceptions propagate."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
