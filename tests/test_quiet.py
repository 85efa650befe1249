"""helpers.quiet: native writes to fd 2 are silenced, Python errors are not."""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import os, sys
from helpers.quiet import quiet_native_stderr
os.write(2, b"before\n")
with quiet_native_stderr():
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
os.write(2, b"after\n")
try:
    with quiet_native_stderr():
        raise KeyError("still raised")
except KeyError as err:
    print("caught", err)
os.write(2, b"restored\n")
"""


def test_fd2_is_silenced_inside_and_restored_after():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    assert done.stderr == "before\nafter\nrestored\n"
    assert "caught 'still raised'" in done.stdout
