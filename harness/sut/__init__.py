"""SUT drivers: how the harness makes the DUI under test act (see :mod:`harness.sut.base`)."""

from __future__ import annotations

import importlib
from typing import Any

#: Imported when first read (PEP 562): a simulator process imports ``harness.sut.plugins`` (the service plugins'
#: declarations) without the drivers and without the DUI's action types (``socle-harness serve``, issue 18).
_LAZY = {
    "ActionResult": "harness.sut.contract",
    "ActionStatus": "harness.sut.contract",
    "MssanteSend": "harness.sut.base",
    "SutDriver": "harness.sut.base",
    "SutEnvironment": "harness.sut.contract",
    "HttpDriver": "harness.sut.http_driver",
    "ManualDriver": "harness.sut.manual",
    "ReferenceDUI": "harness.sut.reference",
    "FaultyDUI": "harness.sut.reference",
    "DEFECTS": "harness.sut.reference",
}

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
    """The drivers, imported when first read; ``ReferenceDUI``, ``FaultyDUI`` and ``DEFECTS`` are assembled from
    the service plugins then."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
