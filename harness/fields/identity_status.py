"""Identity status (RNIV) of a person for a DUI: the DUI's identity-document check combined with the INSi evidence
of the journal.

Référentiel national d'identitovigilance (RNIV), volet 1 « Principes d'identification des usagers communs à tous
les acteurs de santé » (version 2024, volets 0 and 1 merged), statuts de confiance de l'identité numérique:

- *identité provisoire*: the default;
- *identité récupérée*: the INS was retrieved or verified through the INSi teleservice, **without** the traits
  having been checked against a high-trust identity document;
- *identité validée*: the traits were checked against a high-trust identity document (passeport, carte nationale
  d'identité...; the RNIV's « dispositif d'identification à haut niveau de confiance »), without INSi;
- *identité qualifiée*: validée **and** the INS retrieved or verified through INSi — the only status whose INS may
  be shared (MSSanté, DMP...).

Récupérée and validée are parallel states, not rungs of a ladder: neither implies the other, both make qualifiée.

What the harness can see: the INSi answers (journal, service ``insi``) and the document check, a fact only the DUI
knows, which it reports — through the control API or the built-in drivers (``data["piece_identite"]`` of an INSi
action: the kind of document checked, with the status it records), from the operator in guided recette, or from the
TDDUI export in observe-only mode (FR Core ``identityReliability.validationMode``). The INSi steps journal each
reported check as one exchange (:data:`DOCUMENT_SERVICE` / :data:`DOCUMENT_OPERATION`, ``essms``, ``person`` = INS)
so that every service reads one status from the journal, per DUI (establishment) and per INS, within one run.

The kinds of document are the codes of the FR Core value set ``fr-core-vs-mode-validation-identity-ins`` (modes of
validation allowed for an INS identity: PA, CN, AN, LE); another code is not a high-trust document here.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.core.journal import Direction, Exchange, Journal, JournalFilter, Outcome
from harness.fields.identity import OID_INS_NIA
from harness.validators import Finding, Severity
from harness.validators.insi import normalise_trait

__all__ = [
    "DOCUMENT_OPERATION",
    "DOCUMENT_SERVICE",
    "HIGH_TRUST_DOCUMENTS",
    "INSI_SERVICE",
    "IdentityEvidence",
    "IdentityStatusBook",
    "IdentityTally",
    "IdentityStatus",
    "document_check_exchange",
    "document_kind",
    "evidence_from_exchanges",
    "identity_evidence",
    "ins_status",
    "insi_returned",
    "status_from_exchanges",
    "tddui_document",
    "tddui_validation_mode",
    "unqualified_ins_finding",
]

INSI_SERVICE = "insi"
#: Where the DUI-reported document checks are journaled (a DUI-side fact: no simulator sees it).
DOCUMENT_SERVICE = "dui"
DOCUMENT_OPERATION = "rniv.controle-piece-identite"

#: FR Core ValueSet ``fr-core-vs-mode-validation-identity-ins`` (CodeSystem ``fr-core-cs-mode-validation-identity``):
#: the high-trust identity documents an INS identity may be validated with.
HIGH_TRUST_DOCUMENTS: Mapping[str, str] = {
    "PA": "passeport",
    "CN": "carte nationale d'identité",
    "AN": "extrait d'acte de naissance",
    "LE": "livret de famille",
}
FR_CORE_IDENTITY_RELIABILITY = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"


class IdentityStatus(StrEnum):
    """The four RNIV statuses; :meth:`combine` derives one from its two independent components."""

    PROVISIONAL = "provisoire"
    RECOVERED = "récupérée"
    VALIDATED = "validée"
    QUALIFIED = "qualifiée"

    @property
    def label(self) -> str:
        """The French RNIV name."""
        return self.value

    @property
    def insi(self) -> bool:
        """The INS was retrieved or verified through INSi."""
        return self in (IdentityStatus.RECOVERED, IdentityStatus.QUALIFIED)

    @property
    def document(self) -> bool:
        """The traits were checked against a high-trust identity document."""
        return self in (IdentityStatus.VALIDATED, IdentityStatus.QUALIFIED)

    @classmethod
    def combine(cls, *, insi: bool, document: bool) -> IdentityStatus:
        if insi and document:
            return cls.QUALIFIED
        if insi:
            return cls.RECOVERED
        return cls.VALIDATED if document else cls.PROVISIONAL

    def includes(self, other: IdentityStatus) -> bool:
        """Whether this status has every component of ``other`` (qualifiée includes récupérée and validée)."""
        return (self.insi or not other.insi) and (self.document or not other.document)

    @classmethod
    def from_label(cls, label: str) -> IdentityStatus:
        wanted = normalise_trait(label)
        for status in cls:
            if normalise_trait(status.value) == wanted or status.name == wanted:
                return status
        raise ValueError(f"statut d'identité inconnu : {label!r} (provisoire, récupérée, validée, qualifiée)")


def document_kind(value: str | None) -> str | None:
    """The FR Core code of a high-trust document named by its code or its French label, else ``None``."""
    if not value:
        return None
    wanted = normalise_trait(value)
    for code, label in HIGH_TRUST_DOCUMENTS.items():
        if wanted in (code, normalise_trait(label)):
            return code
    return None


@dataclass(frozen=True)
class IdentityTally:
    """What decides a status, in short: how many INSi answers returned the INS, whether one returned it as a NIA,
    the kind of the last high-trust document checked."""

    insi: int = 0
    nia: bool = False
    document: str | None = None

    @property
    def status(self) -> IdentityStatus:
        if self.nia:
            return IdentityStatus.PROVISIONAL
        return IdentityStatus.combine(insi=self.insi > 0, document=self.document is not None)

    def describe(self) -> str:
        insi = f"{self.insi} réponse(s) INSi renvoyant l'INS" if self.insi else "aucun appel INSi"
        document = HIGH_TRUST_DOCUMENTS.get(self.document or "", "")
        checked = f"pièce contrôlée : {document}" if document else "aucun contrôle de pièce d'identité déclaré"
        return f"{self.status.label} ({insi} ; {checked})"

    def add(self, exchanges: Iterable[Exchange], ins_value: str) -> IdentityTally:
        """This tally followed by ``exchanges`` (journaled after the ones it counts, in journal order)."""
        more = evidence_from_exchanges(exchanges, ins_value)
        return IdentityTally(self.insi + len(more.insi_exchanges), self.nia or more.nia, more.document or self.document)


@dataclass(frozen=True)
class IdentityEvidence:
    """What the journal holds about one INS for one DUI: the INSi answers that returned it, the document checks."""

    insi_exchanges: tuple[Exchange, ...] = ()
    document_checks: tuple[Exchange, ...] = ()
    nia: bool = False  # INSi returned this number as a provisional NIA: never an INS

    @property
    def document(self) -> str | None:
        """The kind of the last high-trust document the DUI reported checking."""
        for exchange in reversed(self.document_checks):
            kind = document_kind(str(exchange.details.get("document") or ""))
            if kind:
                return kind
        return None

    @property
    def tally(self) -> IdentityTally:
        return IdentityTally(len(self.insi_exchanges), self.nia, self.document)

    @property
    def status(self) -> IdentityStatus:
        return self.tally.status

    def describe(self) -> str:
        return self.tally.describe()


def insi_returned(exchange: Exchange) -> tuple[str, str] | None:
    """(INS, OID) an accepted CR 00 INSi answer returned as the active INS, else ``None``."""
    ins = exchange.details.get("ins") or {}
    if exchange.outcome is not Outcome.ACCEPTED or exchange.details.get("cr") != "00" or not ins.get("value"):
        return None
    return str(ins["value"]), str(ins.get("oid") or "")


def evidence_from_exchanges(exchanges: Iterable[Exchange], ins_value: str) -> IdentityEvidence:
    """The evidence about ``ins_value`` in one DUI's INSi answers and document checks (pure function)."""
    insi: list[Exchange] = []
    documents: list[Exchange] = []
    nia = False
    for exchange in exchanges:
        if exchange.service == DOCUMENT_SERVICE and exchange.operation == DOCUMENT_OPERATION:
            if exchange.person == ins_value and exchange.outcome is Outcome.ACCEPTED:
                documents.append(exchange)
            continue
        returned = insi_returned(exchange)
        if returned is None or returned[0] != ins_value:
            continue
        if returned[1] == OID_INS_NIA:
            nia = True
        else:
            insi.append(exchange)
    return IdentityEvidence(tuple(insi), tuple(documents), nia)


def status_from_exchanges(exchanges: Iterable[Exchange], ins_value: str) -> IdentityStatus:
    """The status of ``ins_value`` given one DUI's exchanges (pure function)."""
    return evidence_from_exchanges(exchanges, ins_value).status


def identity_evidence(journal: Journal, *, run_id: str | None, essms: str | None, ins_value: str) -> IdentityEvidence:
    """The evidence about ``ins_value`` for the DUI of establishment ``essms`` in run ``run_id`` (journal query)."""
    if essms is None:
        return IdentityEvidence()
    return evidence_from_exchanges(_evidence_exchanges(journal, run_id, essms, ins_value), ins_value)


def _evidence_exchanges(
    journal: Journal, run_id: str | None, essms: str, ins_value: str, since: int | None = None, until: int | None = None
) -> list[Exchange]:
    """The accepted INSi answers and document checks of ``ins_value`` for ``essms`` in ``run_id``, journaled after
    seq ``since`` up to seq ``until``, in journal order: one query on the journal's person index (a few rows whatever
    the size of the run)."""
    return journal.query(
        JournalFilter(
            services=(INSI_SERVICE, DOCUMENT_SERVICE),
            run_id=run_id,
            essms=essms,
            person=ins_value,
            outcome=Outcome.ACCEPTED,
            since_seq=since,
            until_seq=until,
        )
    )


def ins_status(journal: Journal, *, run_id: str | None, essms: str | None, ins_value: str) -> IdentityStatus:
    """The status of ``ins_value`` for the DUI of establishment ``essms`` in run ``run_id``."""
    return identity_evidence(journal, run_id=run_id, essms=essms, ins_value=ins_value).status


def document_check_exchange(
    *,
    essms: str,
    ins_value: str,
    document: str,
    reported_status: str | None,
    source: str,
    run_id: str | None = None,
    scenario_id: str | None = None,
) -> Exchange:
    """The journal record of a document check the DUI reported (``source``: ``pilote``, ``operateur``, ``tddui``)."""
    kind = document_kind(document)
    details: dict[str, Any] = {
        "document": kind or document[:40],
        "document_label": HIGH_TRUST_DOCUMENTS.get(kind or "", ""),
        "statut_declare": reported_status,
        "source": source,
    }
    return Exchange(
        service=DOCUMENT_SERVICE,
        operation=DOCUMENT_OPERATION,
        direction=Direction.FROM_DUI,
        outcome=Outcome.ACCEPTED if kind else Outcome.REJECTED,
        essms=essms,
        person=ins_value,
        run_id=run_id,
        scenario_id=scenario_id,
        error_code=None if kind else "RNIV-PIECE-NON-RECONNUE",
        error_message=None
        if kind
        else f"pièce {document[:40]!r} : pièce à haut niveau de confiance attendue ({', '.join(HIGH_TRUST_DOCUMENTS)})",
        details=details,
    )


def tddui_validation_mode(patient: Mapping[str, Any]) -> str | None:
    """The document kind of a TDDUI Patient's FR Core ``identityReliability`` extension (``validationMode``)."""
    for extension in patient.get("extension") or ():
        if not isinstance(extension, Mapping) or extension.get("url") != FR_CORE_IDENTITY_RELIABILITY:
            continue
        for part in extension.get("extension") or ():
            if isinstance(part, Mapping) and part.get("url") == "validationMode":
                coding = part.get("valueCoding") or {}
                return document_kind(str(coding.get("code") or "")) if isinstance(coding, Mapping) else None
    return None


def tddui_document(journal: Journal, *, essms: str, ins_value: str) -> str | None:
    """Observe-only mode: the document kind of the person's Patient in the last TDDUI export the journal holds for
    this establishment (the ``fhir.create.usager`` facts point to their Bundle by digest), else ``None``."""
    usagers = journal.query(JournalFilter(service="tddui", essms=essms, person=ins_value, outcome=Outcome.ACCEPTED))
    for exchange in reversed(usagers):
        body = journal.payload(exchange.digest) if exchange.digest else None
        try:
            bundle = json.loads(body) if body else None
        except ValueError:
            continue
        entries = bundle.get("entry") if isinstance(bundle, dict) else None
        for entry in entries or ():
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
                continue
            values = {str(i.get("value")) for i in resource.get("identifier") or () if isinstance(i, dict)}
            if ins_value in values and (kind := tddui_validation_mode(resource)):
                return kind
    return None


def unqualified_ins_finding(
    journal: Journal, *, run_id: str | None, essms: str | None, ins_value: str | None
) -> Finding | None:
    """A WARNING ``INS-NON-QUALIFIE`` when a message uses an INS whose identity this DUI has not qualified (RNIV)."""
    if not ins_value:
        return None
    return _unqualified(identity_evidence(journal, run_id=run_id, essms=essms, ins_value=ins_value).tally, ins_value)


def _unqualified(evidence: IdentityTally, ins_value: str) -> Finding | None:
    if evidence.status is IdentityStatus.QUALIFIED:
        return None
    return Finding(
        "INS-NON-QUALIFIE",
        f"l'INS {ins_value} est utilisé alors que l'identité n'est pas qualifiée pour ce DUI dans cette campagne : "
        f"statut {evidence.describe()} ; qualifiée = pièce d'identité à haut niveau de confiance contrôlée et INS "
        "récupéré ou vérifié par le téléservice INSi (RNIV)",
        Severity.WARNING,
        "X-MSS-INS / CDA recordTarget",
    )


class IdentityStatusBook:
    """The identity tally of each (run, establishment, INS) a simulator asked about, kept up to date incrementally.

    Each lookup reads only the INSi answers and document checks journaled since the previous lookup of the same key
    (``since_seq`` / ``until_seq`` bound it to what the journal held at that moment), so the cost of the RNIV check
    of a message stays flat however many exchanges — INSi answers for the same person included — the run holds
    (issue 18). The verdicts are those of :func:`unqualified_ins_finding`. At most ``max_entries`` keys are kept
    (the least recently used is forgotten, then tallied again from the journal). Thread-safe.
    """

    def __init__(self, journal: Journal, *, max_entries: int = 10_000) -> None:
        self.journal = journal
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._tallies: OrderedDict[tuple[str | None, str, str], tuple[int, IdentityTally]] = OrderedDict()

    def tally(self, *, run_id: str | None, essms: str | None, ins_value: str) -> IdentityTally:
        if essms is None:
            return IdentityTally()
        key = (run_id, essms, ins_value)
        with self._lock:
            seen, tally = self._tallies.pop(key, (0, IdentityTally()))
            mark = self.journal.last_seq()
            if mark > seen:
                tally = tally.add(_evidence_exchanges(self.journal, run_id, essms, ins_value, seen, mark), ins_value)
            self._tallies[key] = (mark, tally)
            while len(self._tallies) > self.max_entries:
                self._tallies.popitem(last=False)
            return tally

    def unqualified_ins_finding(
        self, *, run_id: str | None, essms: str | None, ins_value: str | None
    ) -> Finding | None:
        """:func:`unqualified_ins_finding`, from the kept tally."""
        if not ins_value:
            return None
        return _unqualified(self.tally(run_id=run_id, essms=essms, ins_value=ins_value), ins_value)
