"""Observe-only mode: the DUI works on its own against ``socle-harness serve`` (or replays a day of activity),
and the scenarios judge what the journal recorded in a time window.

``socle-harness run --from 2026-11-23T08:00 --to 2026-11-23T18:00`` (or ``--sut observe:<from>/<to>``) runs the
scenarios tagged ``@observable`` (those whose checks rest on the exchanges alone: no injected fault, no stimulus
from the harness, nothing that only the DUI's screen shows). Each ``Quand`` step becomes an :class:`Expectation`
(person, ESSMS, recipients, document types of the action); the ``Alors`` steps judge the exchanges of the window
that meet it. Rules (README, « Mode observation »):

- every field an expectation sets must be present and equal in the exchange: a message with no establishment,
  or whose documents could not be read, is not the action of an establishment's scenario;
- exchanges a harness run produced (``socle-harness run``: they carry its run id and a scenario id;
  ``socle-harness simulate``: run ids ``sim-…``) are set aside and counted, never judged as the DUI's activity;
- a refusal that names no person or no establishment cannot be tied to a scenario: it is reported beside the
  verdicts as « refus non attribuable », not counted against any scenario;
- a refusal followed by an accepted retry of the same action: :data:`RETRY_RULES` (option ``observe_retry``);
- a scenario whose exchange was not observed is *skipped* with « non observé » — never passed — and a check that
  needs what the DUI showed its user is skipped as « non vérifiable en observation »;
- window bounds without an offset are Paris local times; a local time that does not exist or exists twice (the
  daylight-saving changes) is refused, with a request for an explicit offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from harness.core.journal import Direction, Exchange, Journal, JournalFilter, Outcome
from harness.sut import control_api
from harness.sut.base import ActionResult, ActionStatus, SutEnvironment
from harness.sut.mssante_messages import UNSTRUCTURED, document_type

PARIS = ZoneInfo("Europe/Paris")
OBSERVABLE_TAG = "observable"

#: templateId of a CDA R2 level 1 document (IHE PCC TF-2 XDS-SD, « Scanned Documents »; CI-SIS « documents non
#: structurés »): the body is a PDF in ``nonXMLBody``.
XDS_SD_TEMPLATE = "1.3.6.1.4.1.19376.1.2.20"
#: run ids of ``socle-harness simulate`` (harness.analytics.simulate): synthetic activity, never the DUI's.
SIMULATION_RUN_PREFIX = "sim-"

#: Exit code of an observe-only run in which no scenario passed and none failed (« rien d'observé »).
EXIT_NOTHING_OBSERVED = 4

#: What a refusal followed by an accepted retry of the same action does to the scenario (option ``observe_retry``,
#: ``--relance``). The default follows the wording of the steps: « Alors la messagerie MSSanté accepte le
#: message », « Alors le DMP accepte le document », « la plateforme e-Parcours enregistre la note » ask that the
#: message, the document, the note be accepted in the end — they are, by the retry; the refusal is shown as a
#: warning. ``echec`` is for a grappe that wants every exchange accepted the first time.
RETRY_RULES = {
    "avertissement": "une relance acceptée fait réussir le scénario, avec un avertissement montrant le(s) refus",
    "echec": "tout refus fait échouer le scénario, même suivi d'une relance acceptée",
}
DEFAULT_RETRY_RULE = "avertissement"


def check_retry_rule(rule: str) -> str:
    """``rule`` when it is one of :data:`RETRY_RULES`, else a French error naming the choices."""
    if rule not in RETRY_RULES:
        raise ValueError(f"règle de relance inconnue {rule!r} : {' ou '.join(RETRY_RULES)} (observe_retry / --relance)")
    return rule


@dataclass(frozen=True)
class ObservationWindow:
    """Half-open interval ``[start, end)`` of recording times (UTC)."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, start: str, end: str) -> ObservationWindow:
        """ISO 8601 dates or date-times; without an offset they are Paris local time (the users' clock), which
        must then name one instant: the hour skipped in spring and the hour repeated in autumn are refused."""
        first, last = _parse_instant(start, "début / --from"), _parse_instant(end, "fin / --to")
        if last <= first:
            raise ValueError(f"fenêtre d'observation vide: {start} → {end} (la fin doit suivre le début)")
        return cls(first, last)

    def describe(self) -> str:
        return f"{_local(self.start)} → {_local(self.end)} (heure de Paris)"


def _local(instant: datetime) -> str:
    local = instant.astimezone(PARIS)
    offset = local.strftime("%z")
    return f"{local:%d/%m/%Y %H:%M} ({offset[:3]}:{offset[3:]})"


def _parse_instant(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{what}: date invalide {text!r} (ex. 2026-11-23T08:00 ou 2026-11-23)") from exc
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    first, second = value.replace(tzinfo=PARIS, fold=0), value.replace(tzinfo=PARIS, fold=1)
    if first.utcoffset() != second.utcoffset():  # a daylight-saving change: PEP 495 folds disagree
        shown = value.isoformat(timespec="minutes")
        if first.astimezone(UTC).astimezone(PARIS).replace(tzinfo=None) != value:
            raise ValueError(
                f"{what}: l'heure locale {shown} n'existe pas à Paris (passage à l'heure d'été : l'horloge saute de "
                f"02:00 à 03:00) ; précisez le décalage UTC, ex. {shown}+01:00 ou {shown}+02:00"
            )
        raise ValueError(
            f"{what}: l'heure locale {shown} existe deux fois à Paris (passage à l'heure d'hiver : 02:00-02:59 est "
            f"vécu deux fois) ; précisez le décalage UTC : {shown}+02:00 (la première) ou {shown}+01:00 (la seconde)"
        )
    return first.astimezone(UTC)


@dataclass(frozen=True)
class ExpectedDocument:
    """A document the action carries: its type code (``code/@code`` of the CDA, ``typeCode`` of the XDS
    DocumentEntry) and, for a CDA R2 level 1, the templateId the document must declare (IHE XDS-SD)."""

    kind: str
    code: str
    template: str | None = None

    def describe(self) -> str:
        level = ", CDA R2 niveau 1" if self.template == XDS_SD_TEMPLATE else ""
        return f"{self.kind} ({self.code}{level})"

    def found_in(self, document: dict[str, Any]) -> bool:
        code = document.get("code") or document.get("typeCode")  # MSSanté CDA headers / DMP DocumentEntries
        return code == self.code and (self.template is None or self.template in (document.get("templates") or ()))


def expected_document(kind: str) -> ExpectedDocument:
    """The document of ``kind`` (a key of the CI-SIS document table, or ``DOC-NS``: a CDA R2 level 1)."""
    try:
        code = document_type(kind).code
    except KeyError:
        code = f"type inconnu {kind}"  # no exchange carries it: the scenario is « non observé », never passed
    return ExpectedDocument(kind, code, XDS_SD_TEMPLATE if kind == UNSTRUCTURED else None)


def _documents(exchange: Exchange) -> list[dict[str, Any]]:
    return [d for d in (exchange.details or {}).get("documents") or [] if isinstance(d, dict)]


def _note_type(exchange: Exchange) -> str | None:
    note = (exchange.details or {}).get("note")
    return note.get("type") if isinstance(note, dict) else None


@dataclass(frozen=True)
class Expectation:
    """What an exchange must carry to be the result of an action. Every field the action sets must be present
    and equal in the exchange (an empty value never matches): ``person`` (INS), ``essms`` (FINESS géographique,
    as the simulator authenticated it), every one of ``recipients``, every one of ``documents`` (type code, and
    templateId for a CDA R2 level 1) and ``note_type`` (cahier de liaison, JDV_J23)."""

    action: str
    person: str | None = None
    essms: str | None = None
    recipients: tuple[str, ...] = ()
    documents: tuple[ExpectedDocument, ...] = ()
    note_type: str | None = None

    def mismatch(self, exchange: Exchange) -> str | None:
        """Why ``exchange`` is not this action's (French), or ``None`` when it is."""
        if self.person and exchange.person != self.person:
            return f"personne {exchange.person or 'absente'} au lieu de {self.person}"
        if self.essms and exchange.essms != self.essms:
            return f"ESSMS {exchange.essms or 'absent'} au lieu de {self.essms}"
        details = exchange.details or {}
        if self.recipients:
            seen = {str(r.get("address", "")).lower() for r in details.get("recipients") or [] if isinstance(r, dict)}
            missing = [r for r in self.recipients if r.lower() not in seen]
            if missing:
                return f"destinataire(s) absent(s) : {', '.join(missing)}"
        documents = _documents(exchange)
        for expected in self.documents:
            if not any(expected.found_in(d) for d in documents):
                carried = ", ".join(str(d.get("code") or d.get("typeCode")) for d in documents) or "aucun lisible"
                return f"document {expected.describe()} absent (documents : {carried})"
        if self.note_type and _note_type(exchange) != self.note_type:
            return f"note de type {_note_type(exchange) or 'absent'} au lieu de {self.note_type}"
        return None

    def matches(self, exchange: Exchange) -> bool:
        return self.mismatch(exchange) is None

    def describe(self) -> str:
        parts = [self.action]
        if self.person:
            parts.append(f"personne {self.person}")
        if self.essms:
            parts.append(f"ESSMS {self.essms}")
        if self.recipients:
            parts.append("destinataires " + ", ".join(self.recipients))
        if self.documents:
            parts.append("documents " + ", ".join(d.describe() for d in self.documents))
        if self.note_type:
            parts.append(f"note {self.note_type}")
        return " ; ".join(parts)


def expectation_of(method: str, action: Any) -> Expectation:
    """The exchange a driver action should produce, read from the action dataclass."""
    person = getattr(action, "person", None)
    establishment = getattr(action, "establishment", None)
    ins = person.ins.value if person is not None else None
    recipients: tuple[str, ...] = ()
    documents: tuple[ExpectedDocument, ...] = ()
    if method in ("send_mssante", "send_mssante_qualified") and person is not None:
        recipients = tuple(person.mailbox if r == "patient" else r for r in action.recipients)
        documents = tuple(expected_document(k) for k in (action.document_kind, *action.extra_kinds))
    elif method == "dmp_feed":
        documents = (expected_document(action.document_kind),)
    note_type = action.note_type if method == "cdl_post_note" else None
    essms = establishment.finess if establishment else None
    return Expectation(control_api.BY_METHOD[method].name, ins, essms, recipients, documents, note_type)


# -- the window's exchanges -------------------------------------------------------------------------------------
def harness_runs(exchanges: Iterable[Exchange]) -> set[str]:
    """Run ids of harness runs among ``exchanges``: a scenario run stamps its exchanges with its run id and the
    scenario id (harness.host.simulator), ``socle-harness simulate`` uses run ids ``sim-…``. ``socle-harness
    serve``, where the DUI works on its own, never sets a scenario id."""
    return {e.run_id for e in exchanges if e.run_id and (e.scenario_id or e.run_id.startswith(SIMULATION_RUN_PREFIX))}


def split_activity(exchanges: Sequence[Exchange]) -> tuple[list[Exchange], list[Exchange]]:
    """``(the DUI's activity, the exchanges harness runs produced)``, each in journal order."""
    runs = harness_runs(exchanges)
    activity: list[Exchange] = []
    produced: list[Exchange] = []
    for exchange in exchanges:
        (produced if exchange.scenario_id or exchange.run_id in runs else activity).append(exchange)
    return activity, produced


def apply_retry_rule(found: Sequence[Exchange], rule: str) -> tuple[list[Exchange], list[Exchange]]:
    """``(exchanges to judge, refusals forgiven)``: under ``avertissement`` a refusal followed (later in the
    journal) by an accepted exchange of the same action is forgiven — shown, not judged; under ``echec`` none."""
    check_retry_rule(rule)
    last_accepted = max((i for i, e in enumerate(found) if e.outcome is Outcome.ACCEPTED), default=-1)
    if rule == "echec" or last_accepted < 0:
        return list(found), []
    forgiven = [e for i, e in enumerate(found) if i < last_accepted and e.outcome is Outcome.REJECTED]
    return [e for e in found if e not in forgiven], forgiven


def unattributable(exchange: Exchange) -> bool:
    """A refusal of something the DUI sent that names no person or no establishment: no scenario can be tied
    to it (an unreadable archive, a request refused before its person was read)."""
    return (
        exchange.outcome is Outcome.REJECTED
        and exchange.direction is Direction.FROM_DUI
        and not (exchange.person and exchange.essms)
    )


def describe_exchange(exchange: Exchange) -> str:
    """One line for a report: when, what, who, why refused."""
    who = f"personne {exchange.person or '—'}, ESSMS {exchange.essms or '—'}"
    why = f" : {exchange.error_code or ''} {exchange.error_message or ''}".rstrip() if exchange.error_code else ""
    return f"{_local(exchange.ts)} {exchange.service}/{exchange.operation} ({who}){why} [échange {exchange.id}]"


@dataclass(frozen=True)
class WindowSurvey:
    """What the window holds besides the verdicts: how many exchanges, how many set aside as a harness run's,
    and the refusals no scenario can be tied to (« refus non attribuable »)."""

    window: ObservationWindow
    total: int
    set_aside: int
    runs_set_aside: tuple[str, ...] = ()
    unattributable: tuple[Exchange, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The ``observation.json`` report: the window, the counts, the refusals no scenario can be tied to."""
        return {
            "window": {"from": self.window.start.isoformat(), "to": self.window.end.isoformat()},
            "exchanges": self.total,
            "set_aside": self.set_aside,
            "runs_set_aside": list(self.runs_set_aside),
            "unattributable_refusals": [{**e.summary(), "summary": describe_exchange(e)} for e in self.unattributable],
        }

    def lines(self) -> list[str]:
        out = [f"Fenêtre {self.window.describe()} : {self.total} échange(s) au journal"]
        if self.set_aside:
            out.append(
                f"{self.set_aside} échange(s) produit(s) par une exécution du harnais écarté(s) "
                f"(exécution(s) {', '.join(self.runs_set_aside)}) : ce n'est pas l'activité du DUI"
            )
        for exchange in self.unattributable:
            out.append(f"refus non attribuable : {describe_exchange(exchange)}")
        return out


def survey(journal: Journal, window: ObservationWindow) -> WindowSurvey:
    """Read the window once for what the CLI shows after the verdicts (and writes to observation.json)."""
    exchanges = journal.query(JournalFilter(ts_from=window.start, ts_to=window.end))
    activity, produced = split_activity(exchanges)
    return WindowSurvey(
        window,
        len(exchanges),
        len(produced),
        tuple(sorted({e.run_id for e in produced if e.run_id})),
        tuple(e for e in activity if unattributable(e)),
    )


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
        if method not in control_api.BY_METHOD:
            raise AttributeError(method)

        def observe(action: Any = None) -> ActionResult:
            expectation = expectation_of(method, action)
            return ActionResult(
                ActionStatus.DELEGATED,
                f"observation : échange attendu dans le journal ({expectation.describe()})",
                {"expectation": expectation},
            )

        return observe
