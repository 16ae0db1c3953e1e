"""SUT drivers: how the harness makes the DUI under test act (see :mod:`harness.sut.base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.core.messages import bilingual
from harness.sut import reference
from harness.sut.base import ActionResult, ActionStatus, MssanteSend, SutDriver, SutEnvironment
from harness.sut.http_driver import HttpDriver
from harness.sut.manual import ManualDriver

if TYPE_CHECKING:
    from harness.runtime.guided import OperatorChannel

__all__ = [
    "DEFECTS",
    "ActionResult",
    "ActionStatus",
    "FaultyDUI",
    "HttpDriver",
    "MssanteSend",
    "ReferenceDUI",
    "SutDriver",
    "SutEnvironment",
    "make_driver",
]


def make_driver(
    spec: str, *, timeout: float = 30.0, retries: int = 2, channel: OperatorChannel | None = None
) -> SutDriver:
    """Build a driver from its command-line form: ``reference``, ``faulty:<defect>[,<defect>...]``,
    ``http:<base URL>`` (``timeout`` and ``retries`` apply), ``manual`` (guided recette through ``channel``) or
    ``observe:<from>/<to>`` (judge what the journal recorded in that window, :mod:`harness.runtime.observe`)."""
    kind, _, args = spec.partition(":")
    if kind == "observe" and args:
        from harness.runtime.observe import ObservationWindow, ObserveDriver

        start, sep, end = args.partition("/")
        if not sep:
            raise ValueError(
                "--sut observe:<début>/<fin>, ex. observe:2026-11-23T08:00/2026-11-23T18:00 (ou --from/--to)"
            )
        return ObserveDriver(ObservationWindow.parse(start, end))
    if kind == "manual" and not args:
        return ManualDriver(channel)
    if kind == "reference" and not args:
        return reference.drivers().reference()
    if kind == "http" and args:
        return HttpDriver(args, timeout=timeout, retries=retries)
    if kind == "faulty":
        assembled = reference.drivers()
        defects = frozenset(a.strip() for a in args.split(",") if a.strip())
        if not defects:
            known = assembled.defects
            raise ValueError(
                f"--sut faulty needs defects, e.g. faulty:{next(iter(known))} (available: {', '.join(known)})"
            )
        return assembled.faulty(defects)
    raise ValueError(
        bilingual("SUT inconnu", "unknown SUT") + f" {spec!r}: use 'reference', 'faulty:<defect>[,...]', 'manual', "
        "'observe:<from>/<to>' or "
        "'http:<base URL of the DUI control API>' (contract: docs/control-api.openapi.json)"
    )


def __getattr__(name: str) -> Any:
    """``ReferenceDUI``, ``FaultyDUI`` and ``DEFECTS``, assembled from the service plugins when first read."""
    if name in ("ReferenceDUI", "FaultyDUI", "DEFECTS"):
        return getattr(reference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
