"""SUT drivers: how the harness makes the DUI under test act (see :mod:`harness.sut.base`)."""

from __future__ import annotations

from harness.sut.base import ActionResult, ActionStatus, MssanteSend, SutDriver, SutEnvironment
from harness.sut.reference import DEFECTS, FaultyDUI, ReferenceDUI

__all__ = [
    "DEFECTS", "ActionResult", "ActionStatus", "FaultyDUI", "MssanteSend", "ReferenceDUI", "SutDriver",
    "SutEnvironment", "make_driver",
]


def make_driver(spec: str) -> SutDriver:
    """Build a driver from its command-line form: ``reference`` or ``faulty:<defect>[,<defect>...]``."""
    kind, _, args = spec.partition(":")
    if kind == "reference" and not args:
        return ReferenceDUI()
    if kind == "faulty":
        defects = frozenset(a.strip() for a in args.split(",") if a.strip())
        if not defects:
            raise ValueError(f"--sut faulty needs defects, e.g. faulty:{next(iter(DEFECTS))} (available: {', '.join(DEFECTS)})")
        return FaultyDUI(defects)
    raise ValueError(
        f"SUT inconnu / unknown SUT {spec!r}: use 'reference' or 'faulty:<defect>' "
        "(the HTTP and manual drivers come with the 'Testing a real DUI' issue)"
    )
