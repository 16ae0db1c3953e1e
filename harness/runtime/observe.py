"""Observe-only mode: the DUI works on its own against ``socle-harness serve`` (or replays a day of activity),
and the scenarios judge what the journal recorded in a time window.

``socle-harness run --from 2026-11-23T08:00 --to 2026-11-23T18:00`` (or ``--sut observe:<from>/<to>``) runs the
scenarios tagged ``@observable`` (those whose checks rest on the exchanges alone: no injected fault, no stimulus
from the harness, nothing that only the DUI's screen shows). Each ``Quand`` step becomes an :class:`Expectation` (person, ESSMS,
recipients, document types of the action); the ``Alors`` steps judge the exchanges of the window that meet it.
A scenario whose exchange was not observed is *skipped* with « non observé » — never passed — and a check that
needs what the DUI showed its user is skipped as « non vérifiable en observation ».
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from harness.core.journal import Exchange
from harness.sut.base import ActionResult, ActionStatus, SutEnvironment
from harness.sut.control_api import BY_METHOD
from harness.validators.cda import DOCUMENT_TYPES

PARIS = ZoneInfo("Europe/Paris")
OBSERVABLE_TAG = "observable"


@dataclass(frozen=True)
class ObservationWindow:
    """Half-open interval ``[start, end)`` of recording times (UTC)."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, start: str, end: str) -> ObservationWindow:
        """ISO 8601 dates or date-times; without an offset they are Paris local time (the users' clock)."""
        first, last = _parse_instant(start, "début / --from"), _parse_instant(end, "fin / --to")
        if last <= first:
            raise ValueError(f"fenêtre d'observation vide: {start} → {end} (la fin doit suivre le début)")
        return cls(first, last)

    def describe(self) -> str:
        return f"{self.start.astimezone(PARIS):%d/%m/%Y %H:%M} → {self.end.astimezone(PARIS):%d/%m/%Y %H:%M} (heure de Paris)"


def _parse_instant(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{what}: date invalide {text!r} (ex. 2026-11-23T08:00 ou 2026-11-23)") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=PARIS)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Expectation:
    """What an exchange must carry to be the result of an action: fields left empty match anything.

    ``person`` and ``essms`` match exchanges that name the same person (INS) or ESSMS, or none (a refusal before
    the person is known); ``recipients`` must all be among the message's recipients; ``document_codes`` (LOINC)
    must all be among the CDA documents the exchange carried, when it was possible to read them."""

    action: str
    person: str | None = None
    essms: str | None = None
    recipients: tuple[str, ...] = ()
    document_codes: tuple[str, ...] = ()

    def matches(self, exchange: Exchange) -> bool:
        if self.person and exchange.person not in (None, self.person):
            return False
        if self.essms and exchange.essms not in (None, self.essms):
            return False
        details = exchange.details or {}
        if self.recipients:
            seen = {str(r.get("address", "")).lower() for r in details.get("recipients") or [] if isinstance(r, dict)}
            if not all(r.lower() in seen for r in self.recipients):
                return False
        codes = {d.get("code") for d in details.get("documents") or [] if isinstance(d, dict)}
        if self.document_codes and codes and not all(code in codes for code in self.document_codes):
            return False  # documents that could not be read (a refused archive) do not exclude the exchange
        return True

    def describe(self) -> str:
        parts = [self.action]
        if self.person:
            parts.append(f"personne {self.person}")
        if self.essms:
            parts.append(f"ESSMS {self.essms}")
        if self.recipients:
            parts.append("destinataires " + ", ".join(self.recipients))
        if self.document_codes:
            parts.append("documents " + ", ".join(self.document_codes))
        return " ; ".join(parts)


def expectation_of(method: str, action: Any) -> Expectation:
    """The exchange a driver action should produce, read from the action dataclass."""
    person = getattr(action, "person", None)
    establishment = getattr(action, "establishment", None)
    ins = person.ins.value if person is not None else None
    recipients: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    if method in ("send_mssante", "send_mssante_qualified") and person is not None:
        recipients = tuple(person.mailbox if r == "patient" else r for r in action.recipients)
        kinds = (action.document_kind, *action.extra_kinds)
        codes = tuple(DOCUMENT_TYPES[k].code for k in kinds if k in DOCUMENT_TYPES)
    return Expectation(BY_METHOD[method].name, ins, establishment.finess if establishment else None, recipients, codes)


class ObserveDriver:
    """A driver that asks nothing of the DUI: each action becomes the expectation the steps look for in the
    journal window. It has no operator channel: what only the DUI's screen shows cannot be judged."""

    def __init__(self, window: ObservationWindow) -> None:
        self.window = window
        self.name = f"observe:{window.start.isoformat()}/{window.end.isoformat()}"
        self.env: SutEnvironment | None = None

    def setup(self, env: SutEnvironment) -> None:
        self.env = env

    def close(self) -> None:
        self.env = None

    def __getattr__(self, method: str) -> Any:
        if method not in BY_METHOD:
            raise AttributeError(method)

        def observe(action: Any = None) -> ActionResult:
            expectation = expectation_of(method, action)
            return ActionResult(
                ActionStatus.DELEGATED,
                f"observation : échange attendu dans le journal ({expectation.describe()})",
                {"expectation": expectation},
            )

        return observe
