"""Identity status (RNIV) of a person for a DUI, derived from the INSi exchanges recorded in the journal.

The Référentiel national d'identitovigilance (RNIV, volet 1 « principes communs ») gives each identity one of
four statuses: *provisoire* (default), *récupérée* (the INS was returned by the INSi teleservice), *validée*
(the traits were checked) and *qualifiée* (validated identity whose INS was retrieved **and** verified through
INSi). Only a qualified identity's INS may be used in exchanges (MSSanté, DMP...).

The harness sees INSi calls only, so it derives the status from them — per DUI (the establishment named in the
calls' contexts, journal column ``essms``) and per INS, within one run, with no state of its own:

- ``PROVISIONAL`` — no INSi answer returned this INS to this DUI, or only as a provisional NIA
  (OID 1.2.250.1.213.1.4.9, which never goes further);
- ``RECOVERED`` — an answer (CR 00) returned it as the active INS (``INSACTIF``);
- ``VALIDATED`` — an answer returned it to a call carrying the identity's *complete* reference traits (birth
  name, the whole first-name list, sex, birth date and, when the base has one, birth place: the traits of the
  ``TIQ``), i.e. the DUI's record matches the reference identity — the harness's observable stand-in for the
  check the DUI user does against an identity document;
- ``QUALIFIED`` — such a complete-traits call (the *verification*) came after an earlier answer had already
  returned the same INS: the INS was retrieved, then verified.

Which INSi exchanges count: ``service == "insi"``, outcome accepted, CR 00, same run, same ``essms``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from harness.core.journal import Exchange, Journal, JournalFilter, Outcome
from harness.fields.identity import OID_INS_NIA
from harness.validators import Finding, Severity
from harness.validators.insi import normalise_trait

__all__ = [
    "INSI_SERVICE",
    "IdentityStatus",
    "ins_status",
    "is_verification",
    "status_from_exchanges",
    "unqualified_ins_finding",
]

INSI_SERVICE = "insi"


class IdentityStatus(IntEnum):
    """RNIV identity statuses, ordered (a status only ever rises)."""

    PROVISIONAL = 0
    RECOVERED = 1
    VALIDATED = 2
    QUALIFIED = 3

    @property
    def label(self) -> str:
        """The French RNIV name."""
        return _LABELS[self]

    @classmethod
    def from_label(cls, label: str) -> IdentityStatus:
        wanted = normalise_trait(label)
        for status, text in _LABELS.items():
            if normalise_trait(text) == wanted or status.name == wanted:
                return status
        raise ValueError(f"statut d'identité inconnu : {label!r} (provisoire, récupérée, validée, qualifiée)")


_LABELS = {
    IdentityStatus.PROVISIONAL: "provisoire",
    IdentityStatus.RECOVERED: "récupérée",
    IdentityStatus.VALIDATED: "validée",
    IdentityStatus.QUALIFIED: "qualifiée",
}


def is_verification(exchange: Exchange) -> bool:
    """Whether an accepted CR 00 INSi exchange was asked with the complete reference traits it returned."""
    details = exchange.details
    request, tiq = details.get("request") or {}, details.get("tiq") or {}
    if details.get("cr") != "00" or not request or not tiq:
        return False
    pairs = (
        (request.get("nom_naissance"), tiq.get("nom_naissance")),
        (" ".join(request.get("prenoms") or []), tiq.get("liste_prenoms")),
        (request.get("sexe"), tiq.get("sexe")),
        (request.get("date_naissance"), tiq.get("date_naissance")),
    )
    if any(a is None or b is None or normalise_trait(str(a)) != normalise_trait(str(b)) for a, b in pairs):
        return False
    place = tiq.get("lieu_naissance")
    return place is None or normalise_trait(str(request.get("lieu_naissance") or "")) == normalise_trait(str(place))


def _returned(exchange: Exchange) -> tuple[str, str] | None:
    ins = exchange.details.get("ins") or {}
    if exchange.outcome is not Outcome.ACCEPTED or exchange.details.get("cr") != "00" or not ins.get("value"):
        return None
    return str(ins["value"]), str(ins.get("oid") or "")


def status_from_exchanges(exchanges: Iterable[Exchange], ins_value: str) -> IdentityStatus:
    """The status of ``ins_value`` given one DUI's INSi exchanges in recording order (pure function)."""
    status = IdentityStatus.PROVISIONAL
    seen = False
    for exchange in exchanges:
        returned = _returned(exchange)
        if returned is None or returned[0] != ins_value:
            continue
        if returned[1] == OID_INS_NIA:
            return IdentityStatus.PROVISIONAL
        if is_verification(exchange):
            status = max(status, IdentityStatus.QUALIFIED if seen else IdentityStatus.VALIDATED)
        else:
            status = max(status, IdentityStatus.RECOVERED)
        seen = True
    return status


def ins_status(journal: Journal, *, run_id: str | None, essms: str | None, ins_value: str) -> IdentityStatus:
    """The status of ``ins_value`` for the DUI of establishment ``essms`` in run ``run_id`` (journal query)."""
    if essms is None:
        return IdentityStatus.PROVISIONAL
    exchanges = journal.query(
        JournalFilter(service=INSI_SERVICE, run_id=run_id, essms=essms, person=ins_value, outcome=Outcome.ACCEPTED)
    )
    return status_from_exchanges(exchanges, ins_value)


def unqualified_ins_finding(
    journal: Journal, *, run_id: str | None, essms: str | None, ins_value: str | None
) -> Finding | None:
    """A WARNING ``INS-NON-QUALIFIE`` when a message uses an INS this DUI never qualified in this run."""
    if not ins_value:
        return None
    status = ins_status(journal, run_id=run_id, essms=essms, ins_value=ins_value)
    if status is IdentityStatus.QUALIFIED:
        return None
    return Finding(
        "INS-NON-QUALIFIE",
        f"l'INS {ins_value} est utilisé alors que l'identité n'a pas été qualifiée par le DUI dans cette campagne "
        f"(statut {status.label} : recherche puis vérification auprès du téléservice INSi attendues ; RNIV)",
        Severity.WARNING,
        "X-MSS-INS / CDA recordTarget",
    )
