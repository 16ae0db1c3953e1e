"""FR Core (HL7 France, ``hl7.fhir.fr.core`` 2.x) rules the harness checks on FHIR resources: the INS identifier of a
patient, the national identifiers of professionals (RPPS) and structures (FINESS).

- FR Core Patient INS (``fr-core-patient-ins``): the INS is an ``identifier`` whose ``system`` is the URN of an INS
  assigning authority OID (``urn:oid:1.2.250.1.213.1.4.8`` NIR, ``.9`` NIA, ``.10`` test NIR, ``.11`` demo NIR) and
  whose ``value`` is the 15-character INS with a valid key (Référentiel INS); ``use`` = ``official``. A patient
  with an INS carries its identity traits (official name with family and given names, gender, birth date) —
  checked as warnings: the harness knows these constraints second-hand.
- Professionals: ``Practitioner.identifier`` IDNPS (``urn:oid:1.2.250.1.71.4.2.1``, ``8`` + RPPS);
  structures: FINESS (``http://finess.esante.gouv.fr`` or ``urn:oid:1.2.250.1.71.4.2.2`` with ``1`` + FINESS).

Functions take the resource as a FHIR JSON dict and return :class:`~harness.validators.Finding` objects.
"""

from __future__ import annotations

import re
from typing import Any

from harness.fields.identity import INS, INS_OIDS, OID_INS_NIA, InsError, parse_ins
from harness.validators import Finding, Severity

OID_IDNPS = "1.2.250.1.71.4.2.1"
OID_IDNST = "1.2.250.1.71.4.2.2"
FINESS_SYSTEMS = ("http://finess.esante.gouv.fr", "https://finess.esante.gouv.fr")
IDNST_SYSTEM = f"urn:oid:{OID_IDNST}"
IDNPS_SYSTEM = f"urn:oid:{OID_IDNPS}"
INS_SYSTEMS = {f"urn:oid:{oid}": oid for oid in INS_OIDS}
_FINESS_RE = re.compile(r"^\d[\dAB]\d{7}$")


def ins_identifiers(patient: dict[str, Any]) -> list[dict[str, Any]]:
    """The identifiers of a Patient whose system is an INS authority."""
    return [i for i in patient.get("identifier") or [] if isinstance(i, dict) and i.get("system") in INS_SYSTEMS]


def patient_ins(patient: dict[str, Any] | None) -> INS | None:
    """The valid INS of a Patient (NIR before NIA), or ``None``."""
    if not isinstance(patient, dict):
        return None
    found: list[INS] = []
    for identifier in ins_identifiers(patient):
        try:
            found.append(parse_ins(str(identifier.get("value", "")), INS_SYSTEMS[identifier["system"]]))
        except InsError:
            continue
    found.sort(key=lambda ins: ins.oid == OID_INS_NIA)
    return found[0] if found else None


def check_patient(patient: dict[str, Any], *, where: str = "Patient", require_ins: bool = False) -> list[Finding]:
    """FR Core Patient / Patient INS checks."""
    out: list[Finding] = []
    identifiers = ins_identifiers(patient)
    if not identifiers:
        severity = Severity.ERROR if require_ins else Severity.WARNING
        out.append(
            Finding(
                "FRCORE-INS-ABSENT",
                "le patient n'a pas d'identifiant INS (système urn:oid:1.2.250.1.213.1.4.x)",
                severity,
                f"{where}.identifier",
            )
        )
        if not patient.get("identifier"):
            out.append(
                Finding(
                    "FRCORE-IDENTIFIER-ABSENT",
                    "le patient n'a aucun identifiant",
                    Severity.WARNING,
                    f"{where}.identifier",
                )
            )
        return out
    for index, identifier in enumerate(patient.get("identifier") or []):
        if not (isinstance(identifier, dict) and identifier.get("system") in INS_SYSTEMS):
            continue  # the location is the identifier's own index in Patient.identifier (FHIRPath)
        at = f"{where}.identifier[{index}]"
        value = str(identifier.get("value", ""))
        try:
            parse_ins(value, INS_SYSTEMS[identifier["system"]])
        except InsError as exc:
            out.append(
                Finding(f"FRCORE-{exc.code}", f"INS invalide {value!r} : {exc.message}", Severity.ERROR, f"{at}.value")
            )
        if identifier.get("use") not in (None, "official"):
            out.append(
                Finding(
                    "FRCORE-INS-USE",
                    f"identifier.use de l'INS : {identifier.get('use')!r} (attendu official)",
                    Severity.WARNING,
                    f"{at}.use",
                )
            )
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    if not any(n.get("family") and n.get("given") for n in names):
        out.append(
            Finding(
                "FRCORE-INS-TRAITS", "patient avec INS sans nom de famille et prénom", Severity.WARNING, f"{where}.name"
            )
        )
    if not patient.get("birthDate"):
        out.append(
            Finding(
                "FRCORE-INS-TRAITS", "patient avec INS sans date de naissance", Severity.WARNING, f"{where}.birthDate"
            )
        )
    if patient.get("gender") not in ("male", "female", "other", "unknown"):
        out.append(
            Finding("FRCORE-INS-TRAITS", "patient avec INS sans sexe (gender)", Severity.WARNING, f"{where}.gender")
        )
    return out


def organization_finess(organization: dict[str, Any] | None) -> str | None:
    """The FINESS of an Organization (FINESS system, or idNat_Struct ``1`` + FINESS)."""
    if not isinstance(organization, dict):
        return None
    for identifier in organization.get("identifier") or []:
        if not isinstance(identifier, dict):
            continue
        value = str(identifier.get("value", ""))
        if identifier.get("system") in FINESS_SYSTEMS and _FINESS_RE.match(value):
            return value
        if identifier.get("system") == IDNST_SYSTEM and value.startswith("1") and _FINESS_RE.match(value[1:]):
            return value[1:]
    return None


def identifier_finess(identifier: Any) -> str | None:
    """The FINESS carried by a bare ``Identifier`` (``Reference.identifier``)."""
    if not isinstance(identifier, dict):
        return None
    return organization_finess({"identifier": [identifier]})


def check_organization(organization: dict[str, Any], *, where: str = "Organization") -> list[Finding]:
    if organization_finess(organization) is None:
        return [
            Finding(
                "FRCORE-FINESS-ABSENT",
                "organisation sans identifiant FINESS (finess.esante.gouv.fr ou idNat_Struct 1+FINESS)",
                Severity.WARNING,
                f"{where}.identifier",
            )
        ]
    return []


def practitioner_idnps(practitioner: dict[str, Any] | None) -> str | None:
    """The national identifier IDNPS of a Practitioner (``8`` + RPPS, or ``3`` + FINESS + ``/`` + local id)."""
    if not isinstance(practitioner, dict):
        return None
    for identifier in practitioner.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == IDNPS_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    return None


def check_practitioner(practitioner: dict[str, Any], *, where: str = "Practitioner") -> list[Finding]:
    if practitioner_idnps(practitioner) is None:
        return [
            Finding(
                "FRCORE-IDNPS-ABSENT",
                "professionnel sans identifiant national IDNPS (urn:oid:1.2.250.1.71.4.2.1 : "
                "8 + RPPS, ou 3 + FINESS + / + identifiant local)",
                Severity.WARNING,
                f"{where}.identifier",
            )
        ]
    return []
