"""e-Prescription (ordonnance numérique) rules: the FHIR lines, the DUI's integration confirmation, the CDA document.

Specifications followed:

- ANS/Interop'Santé *Guide d'implémentation de la ePrescription* (``ans.fhir.fr.eprescription`` 1.1.0-ballot,
  FHIR R4 4.0.1): a prescription is not a resource but the set of its lines, ``MedicationRequest`` (profile
  ``fr-medicationrequest``) sharing one ``groupIdentifier``; each line has ``authoredOn`` 1..1, ``requester`` 1..1
  (Practitioner), ``subject`` (Patient), ``dosageInstruction`` 1..* without ``patientInstruction``, and its
  medication as a coded concept or a reference to a ``Medication`` (``fr-medication-noncompound``: ``code`` 1..1).
- The prescription's unique identifier is the CNAM "EPU" identifier the 2D code carries: OID
  ``1.2.250.1.215.500.1.1`` and an 18-character extension (as in the ANS eP-MED-DM example
  ``documentationOf/serviceEvent/id``); the CNAM computation rule is not public: the harness checks the shape only.
- CI-SIS *eP-MED-DM* 2024.01 (CDA R2): templateId ``1.2.250.1.213.1.1.1.39`` ext ``2024.01``, LOINC ``57833-6``,
  EPU in ``documentationOf/serviceEvent/id``, FR-Code-a-barres section (``1.2.250.1.213.1.1.2.223``), lines
  ``substanceAdministration`` (FR-Traitement-prescrit ``1.2.250.1.213.1.1.3.83``) in the FR-Prescription-medicaments
  section (``1.2.250.1.213.1.1.2.171``).
- The confirmation of integration is the harness's own contract (the CNAM teleservice API is not public): a FHIR
  ``Task`` (:func:`check_confirmation`), documented in :mod:`mock_services.eprescription`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from harness.fields.identity import INS
from harness.fields.xmlsafe import XMLSafetyError, parse_xml
from harness.validators import Finding, Severity
from harness.validators.frcore import INS_SYSTEMS, identifier_finess

OID_EPU = "1.2.250.1.215.500.1.1"
EPU_SYSTEM = f"urn:oid:{OID_EPU}"
EPU_RE = re.compile(r"[0-9A-Z]{18}")  # the whole value (fullmatch): "$" would also let a trailing newline through
PROFILE_MEDICATION_REQUEST = (
    "https://interop.esante.gouv.fr/ig/fhir/eprescription/StructureDefinition/fr-medicationrequest"
)
PROFILE_MEDICATION = (
    "https://interop.esante.gouv.fr/ig/fhir/eprescription/StructureDefinition/fr-medication-noncompound"
)
IMPLEMENTATION_GUIDE = (
    "https://interop.esante.gouv.fr/ig/fhir/eprescription/ImplementationGuide/ans.fhir.fr.eprescription"
)
TASK_CODE_SYSTEM = "https://socle-harness.test/fhir/CodeSystem/eprescription-task"
TASK_CODE_INTEGRATION = "integration"
TASK_STATUSES = {"completed": "intégrée", "rejected": "refusée par le DUI"}
CDA_TEMPLATE = "1.2.250.1.213.1.1.1.39"
CDA_TEMPLATE_VERSION = "2024.01"
CDA_CODE = "57833-6"
SECTION_PRESCRIPTION = "1.2.250.1.213.1.1.2.171"
SECTION_BARCODE = "1.2.250.1.213.1.1.2.223"
ENTRY_TRAITEMENT = "1.2.250.1.213.1.1.3.83"
HL7 = "urn:hl7-org:v3"
NS = {"hl7": HL7}


def is_epu(value: str | None) -> bool:
    """An EPU's shape: exactly 18 digits or capital letters (the eP-MED-DM example's extension), nothing after."""
    return bool(value and EPU_RE.fullmatch(value))


def check_medication_request(line: dict[str, Any], *, where: str = "MedicationRequest") -> list[Finding]:
    """FRMedicationRequest rules plus the e-prescription grouping (``groupIdentifier`` = EPU)."""
    out: list[Finding] = []

    def need(ok: bool, code: str, message: str, location: str, severity: Severity = Severity.ERROR) -> None:
        if not ok:
            out.append(Finding(code, message, severity, f"{where}.{location}"))

    need(bool(line.get("authoredOn")), "EP-AUTHOREDON", "authoredOn absent (1..1)", "authoredOn")
    requester = line.get("requester") or {}
    need(
        isinstance(requester, dict) and str(requester.get("reference", "")).startswith(("Practitioner/", "#")),
        "EP-REQUESTER",
        "requester absent ou pas un Practitioner (1..1)",
        "requester",
    )
    need(
        str((line.get("subject") or {}).get("reference", "")).startswith("Patient/"),
        "EP-SUBJECT",
        "subject doit viser un Patient",
        "subject",
    )
    dosages = line.get("dosageInstruction") or []
    need(bool(dosages), "EP-DOSAGE", "dosageInstruction absent (1..*)", "dosageInstruction")
    for index, dosage in enumerate(dosages):
        need(
            "patientInstruction" not in (dosage or {}),
            "EP-PATIENTINSTRUCTION",
            "patientInstruction interdit (0..0)",
            f"dosageInstruction[{index}].patientInstruction",
        )
    need(
        "medicationCodeableConcept" in line or "medicationReference" in line,
        "EP-MEDICATION",
        "médicament absent (medication[x] 1..1)",
        "medication[x]",
    )
    group = line.get("groupIdentifier") or {}
    need(
        group.get("system") == EPU_SYSTEM and is_epu(group.get("value")),
        "EP-GROUPIDENTIFIER",
        f"groupIdentifier doit porter l'identifiant de l'ordonnance ({EPU_SYSTEM}, 18 caractères)",
        "groupIdentifier",
    )
    return out


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation ``Task`` says: which prescription, for whom, by which ESSMS, integrated or refused."""

    epu: str | None
    ins: str | None
    ins_oid: str | None
    finess: str | None
    status: str | None
    reason: str | None = None

    @property
    def integrated(self) -> bool:
        return self.status == "completed"


def read_confirmation(task: dict[str, Any]) -> Confirmation:
    focus = ((task.get("focus") or {}).get("identifier")) or {}
    subject = ((task.get("for") or {}).get("identifier")) or {}
    owner = ((task.get("owner") or {}).get("identifier")) or ((task.get("requester") or {}).get("identifier"))
    reason = (task.get("statusReason") or {}).get("text")
    return Confirmation(
        epu=focus.get("value") if focus.get("system") == EPU_SYSTEM else None,
        ins=subject.get("value") if subject.get("system") in INS_SYSTEMS else None,
        ins_oid=INS_SYSTEMS.get(subject.get("system", "")),
        finess=identifier_finess(owner),
        status=task.get("status"),
        reason=reason if isinstance(reason, str) else None,
    )


def check_confirmation(task: dict[str, Any], *, where: str = "Task") -> list[Finding]:
    """The integration confirmation ``Task`` (harness contract, see :mod:`mock_services.eprescription`)."""
    out: list[Finding] = []

    def need(ok: bool, code: str, message: str, location: str, severity: Severity = Severity.ERROR) -> None:
        if not ok:
            out.append(Finding(code, message, severity, f"{where}.{location}"))

    codings = (task.get("code") or {}).get("coding") or []
    need(
        any(
            isinstance(c, dict) and c.get("system") == TASK_CODE_SYSTEM and c.get("code") == TASK_CODE_INTEGRATION
            for c in codings
        ),
        "EP-TASK-CODE",
        f"Task.code doit être {TASK_CODE_SYSTEM}|{TASK_CODE_INTEGRATION}",
        "code",
    )
    need(
        task.get("status") in TASK_STATUSES,
        "EP-TASK-STATUS",
        f"Task.status {task.get('status')!r} : completed (intégrée) ou rejected (refusée) attendu",
        "status",
    )
    need(task.get("intent") == "order", "EP-TASK-INTENT", "Task.intent doit valoir order", "intent")
    confirmation = read_confirmation(task)
    focus = ((task.get("focus") or {}).get("identifier")) or {}
    need(
        focus.get("system") == EPU_SYSTEM and is_epu(focus.get("value")),
        "EP-TASK-FOCUS",
        f"Task.focus.identifier doit porter l'identifiant de l'ordonnance ({EPU_SYSTEM}, 18 caractères)",
        "focus",
    )
    need(
        confirmation.ins is not None,
        "EP-TASK-INS",
        "Task.for.identifier doit porter l'INS de la personne (urn:oid:1.2.250.1.213.1.4.x)",
        "for",
    )
    if confirmation.ins is not None:
        from harness.fields.identity import InsError, parse_ins

        try:
            parse_ins(confirmation.ins, confirmation.ins_oid or "")
        except InsError as exc:
            out.append(
                Finding(
                    f"EP-TASK-{exc.code}", f"INS invalide dans Task.for : {exc.message}", Severity.ERROR, f"{where}.for"
                )
            )
    need(
        confirmation.finess is not None,
        "EP-TASK-FINESS",
        "Task.owner.identifier sans FINESS de l'ESSMS",
        "owner",
        Severity.WARNING,
    )
    if task.get("status") == "rejected":
        need(
            bool(confirmation.reason),
            "EP-TASK-REASON",
            "un refus devrait porter statusReason.text",
            "statusReason",
            Severity.WARNING,
        )
    return out


# --------------------------------------------------------------------------------------------------- CDA
@dataclass(frozen=True)
class CdaLine:
    code: str | None
    code_system: str | None
    display: str | None
    route: str | None = None
    start: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class PrescriptionDocument:
    """What a DUI reads from an eP-MED-DM document."""

    epu: str | None = None
    ins: INS | None = None
    author_rpps: str | None = None
    lines: tuple[CdaLine, ...] = ()
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)


def read_prescription_cda(data: bytes) -> PrescriptionDocument:
    """Read (and check) an eP-MED-DM 2024.01 document: EPU, INS, prescriber, medication lines. Never raises."""
    from harness.validators.cda import check_french_header, header_of

    try:
        root = parse_xml(data)
    except XMLSafetyError as exc:
        return PrescriptionDocument(findings=[Finding(exc.code, exc.message_fr, Severity.ERROR, "ClinicalDocument")])
    header = header_of(root, location="ClinicalDocument")
    findings = list(header.findings)
    if root.tag != f"{{{HL7}}}ClinicalDocument":
        return PrescriptionDocument(findings=findings)
    findings.extend(check_french_header(root, location="ClinicalDocument"))
    templates = {(t.get("root"), t.get("extension")) for t in root.findall("hl7:templateId", NS)}
    if (CDA_TEMPLATE, CDA_TEMPLATE_VERSION) not in templates:
        findings.append(
            Finding(
                "EP-CDA-TEMPLATE",
                f"templateId {CDA_TEMPLATE} extension {CDA_TEMPLATE_VERSION} absent (eP-MED-DM)",
                Severity.ERROR,
                "ClinicalDocument.templateId",
            )
        )
    if header.code != CDA_CODE:
        findings.append(
            Finding(
                "EP-CDA-CODE",
                f"code du document {header.code!r} (attendu LOINC {CDA_CODE})",
                Severity.ERROR,
                "ClinicalDocument.code",
            )
        )
    epu = None
    for id_el in root.findall("hl7:documentationOf/hl7:serviceEvent/hl7:id", NS):
        if id_el.get("root") == OID_EPU:
            epu = id_el.get("extension")
    if not is_epu(epu):
        findings.append(
            Finding(
                "EP-CDA-EPU",
                f"identifiant de prescription EPU ({OID_EPU}) absent ou invalide : {epu!r}",
                Severity.ERROR,
                "ClinicalDocument.documentationOf.serviceEvent.id",
            )
        )
    rpps = None
    for id_el in root.findall("hl7:author/hl7:assignedAuthor/hl7:id", NS):
        if id_el.get("root") == "1.2.250.1.71.4.2.1":
            rpps = (
                (id_el.get("extension") or "")[1:]
                if (id_el.get("extension") or "").startswith("8")
                else id_el.get("extension")
            )
    lines: list[CdaLine] = []
    sections = [
        s
        for s in root.iter(f"{{{HL7}}}section")
        if any(t.get("root") == SECTION_PRESCRIPTION for t in s.findall("hl7:templateId", NS))
    ]
    if not sections:
        findings.append(
            Finding(
                "EP-CDA-SECTION",
                f"section FR-Prescription-medicaments ({SECTION_PRESCRIPTION}) absente",
                Severity.ERROR,
                "ClinicalDocument.component",
            )
        )
    for section in sections:
        for sa in section.findall("hl7:entry/hl7:substanceAdministration", NS):
            material = sa.find("hl7:consumable/hl7:manufacturedProduct/hl7:manufacturedMaterial", NS)
            code_el = material.find("hl7:code", NS) if material is not None else None
            name_el = material.find("hl7:name", NS) if material is not None else None
            route = sa.find("hl7:routeCode", NS)
            period = next((e for e in sa.findall("hl7:effectiveTime", NS) if e.find("hl7:low", NS) is not None), None)
            lines.append(
                CdaLine(
                    code=code_el.get("code") if code_el is not None else None,
                    code_system=code_el.get("codeSystem") if code_el is not None else None,
                    display=(code_el.get("displayName") if code_el is not None else None)
                    or (name_el.text.strip() if name_el is not None and name_el.text else None),
                    route=route.get("displayName") if route is not None else None,
                    start=period.find("hl7:low", NS).get("value") if period is not None else None,
                    end=(
                        period.find("hl7:high", NS).get("value")
                        if period is not None and period.find("hl7:high", NS) is not None
                        else None
                    ),
                )
            )
    if sections and not lines:
        findings.append(
            Finding(
                "EP-CDA-LIGNES",
                "aucune ligne de prescription (substanceAdministration)",
                Severity.ERROR,
                "ClinicalDocument.component",
            )
        )
    return PrescriptionDocument(epu=epu, ins=header.ins, author_rpps=rpps, lines=tuple(lines), findings=findings)
