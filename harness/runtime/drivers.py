"""Which driver plays the DUI under test, from its command-line form (``--sut``).

It sits in the runtime layer because one of the drivers, the observe-only one (:mod:`harness.runtime.observe`),
is runtime code; the others are the SUT layer's (:mod:`harness.sut`)."""

from __future__ import annotations

from harness.core.messages import bilingual
from harness.runtime.guided import OperatorChannel
from harness.runtime.observe import ObservationWindow, ObserveDriver
from harness.sut import HttpDriver, ManualDriver, SutDriver
from harness.sut.reference import drivers


def make_driver(
    spec: str, *, timeout: float = 30.0, retries: int = 2, channel: OperatorChannel | None = None
) -> SutDriver:
    """Build a driver from its command-line form: ``reference``, ``faulty:<defect>[,<defect>...]``,
    ``http:<base URL>`` (``timeout`` and ``retries`` apply), ``manual`` (guided recette through ``channel``) or
    ``observe:<from>/<to>`` (judge what the journal recorded in that window, :mod:`harness.runtime.observe`)."""
    kind, _, args = spec.partition(":")
    if kind == "observe" and args:
        start, sep, end = args.partition("/")
        if not sep:
            raise ValueError(
                "--sut observe:<début>/<fin>, ex. observe:2026-11-23T08:00/2026-11-23T18:00 (ou --from/--to)"
            )
        return ObserveDriver(ObservationWindow.parse(start, end))
    if kind == "manual" and not args:
        return ManualDriver(channel)
    if kind == "reference" and not args:
        return drivers().reference()
    if kind == "http" and args:
        return HttpDriver(args, timeout=timeout, retries=retries)
    if kind == "faulty":
        assembled = drivers()
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
