"""Capture what a toolchain prints, including what its child processes print.

Horizon's ``check_model`` / ``compile_model`` / ``perf_model`` report through ``print`` *and* through
the hbdk command-line tools they start (``hbdk-model-check``, ``hbdk-cc``, ``hbdk-perf``), which write to
file descriptors 1 and 2 directly. :func:`capture_output` therefore redirects the descriptors
themselves (``os.dup2``) into a temporary file, and ``sys.stdout``/``sys.stderr`` with them, then restores
everything and returns the text. Run it where fd 1 is not a terminal another thread is drawing on
(the pipeline's worker process, or a headless run).
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from typing import Iterator


class Captured:
    """Holds the captured text after the ``with`` block ends (``.text``)."""

    def __init__(self) -> None:
        self.text = ""


@contextlib.contextmanager
def capture_output() -> Iterator[Captured]:
    """Redirect fds 1 and 2 (and sys.stdout/sys.stderr) into one temp file for the block.

    Yields a :class:`Captured` whose ``text`` (UTF-8, errors replaced) is set on exit, also when the
    block raises.
    """
    result = Captured()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    tmp = tempfile.TemporaryFile(mode="w+b")
    saved = []
    fds_ok = True
    try:
        for fd in (1, 2):
            saved.append(os.dup(fd))
    except OSError:
        fds_ok = False
    old_out, old_err = sys.stdout, sys.stderr
    writer = io.TextIOWrapper(io.FileIO(os.dup(tmp.fileno()), "wb"), encoding="utf-8", errors="replace", line_buffering=True)
    try:
        if fds_ok:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
        sys.stdout = sys.stderr = writer
        yield result
    finally:
        try:
            writer.flush()
        except Exception:
            pass
        sys.stdout, sys.stderr = old_out, old_err
        if fds_ok:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        writer.close()
        tmp.seek(0)
        result.text = tmp.read().decode("utf-8", "replace")
        tmp.close()
