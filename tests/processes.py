"""Child processes of the tests that are interrupted with SIGINT (Ctrl+C)."""

from __future__ import annotations

import signal


def interruptible() -> None:
    """``preexec_fn`` of a child the test stops with SIGINT: its SIGINT disposition back to the default.

    A shell without job control starts its background commands with SIGINT ignored (POSIX, « Asynchronous
    Lists »), and the ignored disposition is inherited across ``exec``: a test suite launched that way (``.ci/run &``,
    a ``nohup`` wrapper) would hand the harness an ignored SIGINT, and Python then installs no KeyboardInterrupt
    handler — the test would time out instead of checking what Ctrl+C does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
