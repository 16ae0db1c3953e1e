"""SUT drivers: how the harness makes the DUI under test act (see :mod:`harness.sut.base`)."""

from __future__ import annotations

from typing import Any

from harness.sut import reference
from harness.sut.base import ActionResult, ActionStatus, MssanteSend, SutDriver, SutEnvironment
from harness.sut.http_driver import HttpDriver
from harness.sut.manual import ManualDriver

__all__ = [
    "DEFECTS",
    "ActionResult",
    "ActionStatus",
    "FaultyDUI",
    "HttpDriver",
    "ManualDriver",
    "MssanteSend",
    "ReferenceDUI",
    "SutDriver",
    "SutEnvironment",
]


def __getattr__(name: str) -> Any:
    """``ReferenceDUI``, ``FaultyDUI`` and ``DEFECTS``, assembled from the service plugins when first read."""
    if name in ("ReferenceDUI", "FaultyDUI", "DEFECTS"):
        return getattr(reference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
