"""Who calls a FHIR service of the harness: the establishment of the client certificate, and what it may act for.

The FHIR services an ESSMS's DUI calls (e-Parcours cahier de liaison, e-Prescription, TDDUI) authenticate the
establishment by mutual TLS with its organisation certificate of the test PKI: ``ESSMS-<FINESS>``, an
IGC-Santé-like certificate whose subject OU is ``1`` + FINESS géographique (the ``idNatSt`` of an FINESS
structure, ANS « Référentiel d'identification des acteurs sanitaires et médico-sociaux »). The TLS layer
(:mod:`harness.host.asgi_tls`) has already verified it against the test CA; :class:`EstablishmentAccess` decides:

- no certificate: HTTP 403, issue ``login``, ``FHIR-CERTIFICAT-ABSENT`` (a 401 would need a ``WWW-Authenticate``
  challenge, RFC 9110 §15.5.2, and mutual TLS has none);
- a certificate that is not an establishment's (another name, CN and OU that disagree): 403 ``forbidden``,
  ``FHIR-CERTIFICAT-NON-ESSMS``;
- the certificate of an establishment the grappe does not declare: 403 ``forbidden``, ``FHIR-ESSMS-INCONNU``;
- a FINESS in the payload (a note's author organisation, a TDDUI Bundle's organisation, an e-Prescription
  confirmation's owner) that is not the authenticated establishment's: 403 ``forbidden``, ``FHIR-FINESS-AUTRE-ESSMS``
  — unless the grappe declares that the establishments of one organisme gestionnaire act for each other
  (``"og_mutualise": true`` in the grappe of ``essms.json``), and both share the FINESS juridique.

The FINESS the journal records (``essms``) is always the authenticated one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from harness.fhir.outcome import FhirError, IssueCode, fail
from harness.fhir.store import Version, reference_targets
from harness.fields.testdata import Establishment
from harness.validators.frcore import FINESS_SYSTEMS, INS_SYSTEMS, OID_IDNST

CERTIFICATE_PREFIX = "ESSMS-"
ABSENT = "FHIR-CERTIFICAT-ABSENT"
NOT_ESSMS = "FHIR-CERTIFICAT-NON-ESSMS"
UNKNOWN = "FHIR-ESSMS-INCONNU"
OTHER_ESSMS = "FHIR-FINESS-AUTRE-ESSMS"
OTHER_SESSION = "FHIR-AUTRE-SESSION"  # the resource belongs to another open test session (harness.core.sessions)


def identified_owners(resource: Any) -> list[tuple[str, str]]:
    """Whose a resource is, as session members (:mod:`harness.core.sessions`): every patient INS (FR Core INS
    identifier systems) and every establishment FINESS (``http://finess.esante.gouv.fr``, or the structure id
    ``urn:oid:1.2.250.1.71.4.2.2`` = ``1`` + FINESS) its Identifiers name, contained resources and logical
    references included. A resource that names its patient only by a literal reference names no one here
    (:func:`referenced_patients` reads those in the store)."""
    found: list[tuple[str, str]] = []
    pending = [resource]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            system, value = node.get("system"), node.get("value")
            if isinstance(system, str) and isinstance(value, str):
                if system in INS_SYSTEMS:
                    found.append(("patient", value))
                elif system in FINESS_SYSTEMS:
                    found.append(("essms", value))
                elif system == f"urn:oid:{OID_IDNST}" and len(value) == 10 and value.startswith("1"):
                    found.append(("essms", value[1:]))
            pending.extend(v for v in node.values() if isinstance(v, dict | list))
    return sorted(set(found))


def referenced_patients(resource: Any, current: Callable[[str, str], Version | None]) -> list[tuple[str, str]]:
    """The patients (``("patient", INS)``) a resource names only by a literal reference (``Patient/123``, absolute
    or ``/_history/n``; FHIR R4 §2.3.0 Resource references), read in the store with ``current(type, id)``: an
    e-Prescription ``MedicationRequest.subject`` belongs to the session of the Patient it points at. A reference
    to an unknown or deleted Patient, or to one without an INS identifier, names no one."""
    found: list[tuple[str, str]] = []
    for target in sorted(reference_targets(resource)):
        resource_type, _, resource_id = target.partition("/")
        if resource_type != "Patient":
            continue
        patient = current(resource_type, resource_id)
        if patient is not None and patient.resource is not None:
            found.extend(o for o in identified_owners(patient.resource) if o[0] == "patient")
    return sorted(set(found))


def establishment_certificate(finess: str) -> str:
    """Name of the test-PKI organisation certificate of an ESSMS (``ESSMS-<FINESS>``, OU ``1`` + FINESS)."""
    return f"{CERTIFICATE_PREFIX}{finess}"


def _attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def certificate_finess(cert: x509.Certificate | None) -> str | None:
    """The FINESS an organisation certificate names in its OU (``1`` + 9 digits), else ``None``."""
    if cert is None:
        return None
    unit = _attribute(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) or ""
    return unit[1:] if len(unit) == 10 and unit.startswith("1") and unit[1:].isdigit() else None


@dataclass(frozen=True)
class EstablishmentAccess:
    """The establishments of the grappe that may call a service, and who may act for whom."""

    establishments: Sequence[Establishment]
    og_shared: bool = False  # the grappe declares that one organisme gestionnaire's ESSMS act for each other

    def authenticate(self, cert: x509.Certificate | None) -> str:
        """The FINESS of the calling establishment, or :class:`FhirError` 403 (see the module)."""
        if cert is None:
            raise fail(
                403,
                IssueCode.LOGIN,
                "certificat client absent : présentez le certificat d'organisation de l'établissement (ESSMS-<FINESS>)",
                error_code=ABSENT,
            )
        finess = certificate_finess(cert)
        name = _attribute(cert, NameOID.COMMON_NAME) or ""
        if finess is None or name != establishment_certificate(finess):
            raise fail(
                403,
                IssueCode.FORBIDDEN,
                f"le certificat {name or '(sans CN)'} n'est pas un certificat d'établissement ESSMS-<FINESS>",
                error_code=NOT_ESSMS,
            )
        if not any(e.finess == finess for e in self.establishments):
            raise fail(403, IssueCode.FORBIDDEN, f"ESSMS {finess} inconnu de la grappe", error_code=UNKNOWN)
        return finess

    def may_act_for(self, caller: str | None, finess: str) -> bool:
        """Whether the authenticated ``caller`` may send or see data of the establishment ``finess``."""
        if caller is None:
            return False
        if caller == finess:
            return True
        if not self.og_shared:
            return False
        og = {e.finess: e.finess_juridique for e in self.establishments}
        return og.get(caller) is not None and og.get(caller) == og.get(finess)

    def require(self, caller: str | None, finess: str | None, *, expression: str = "", what: str = "") -> None:
        """HTTP 403 when a payload's FINESS is not one ``caller`` may act for (nothing to check when absent)."""
        if finess is None or self.may_act_for(caller, finess):
            return
        raise denied(caller, finess, expression=expression, what=what)


def denied(caller: str | None, finess: str, *, expression: str = "", what: str = "") -> FhirError:
    subject = f"{what} " if what else ""
    return fail(
        403,
        IssueCode.FORBIDDEN,
        f"{subject}FINESS {finess} : l'établissement authentifié ({caller}) ne peut pas agir pour cet établissement",
        expression=expression,
        error_code=OTHER_ESSMS,
    )


def ensure_establishment_certificates(pki: Any, finesses: Sequence[str]) -> None:
    """Issue the missing organisation certificates of the establishments (what a DUI presents to the FHIR services,
    so that they know which ESSMS calls)."""
    for finess in finesses:
        name = establishment_certificate(finess)
        current = pki.clients.get(name)
        if current is None or current.organisational_unit != f"1{finess}":
            pki.issue_client(name, structure_id=f"1{finess}")
