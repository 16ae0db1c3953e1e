"""CDA R2 header reading and the French header checks that matter for exchange routing.

Follows HL7 CDA R2 (2005) with the ANS CI-SIS "Structuration minimale des documents de santé" header rules:
the person is identified by an INS in ``recordTarget/patientRole/id`` (root = an INS OID, extension = the
15-character INS), the document type is a LOINC ``code``, and the volet's ``templateId`` is declared.
This module reads the header and reports findings; the full XSD and schematron validation of each volet is the
DMP issue's work and will sit beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from harness.identity import INS, INS_OIDS, InsError, parse_ins
from harness.validators import Finding, Severity
from harness.xmlsafe import XMLSafetyError, parse_xml

HL7 = "urn:hl7-org:v3"
NS = {"hl7": HL7}
LOINC = "2.16.840.1.113883.6.1"


@dataclass(frozen=True)
class DocumentType:
    """A CI-SIS document model: its LOINC code and the volet's templateId."""

    kind: str
    code: str
    code_system: str
    display: str
    template_id: str  # the templateId a producer declares
    template_version: str | None
    title: str
    alternatives: tuple[str, ...] = ()  # other templateIds of models sharing this code (FLUDT, FLUDR, IPS...)

    @property
    def accepted_templates(self) -> tuple[str, ...]:
        return (self.template_id, *self.alternatives)


#: The document models the harness knows (CI-SIS volets; codes and templateIds from the ANS examples).
DOCUMENT_TYPES = MappingProxyType(
    {
        "DLU": DocumentType(
            "DLU", "74207-2", LOINC, "Dossier de liaison d'urgence", "1.2.250.1.213.1.1.1.22", "2022.01",
            "DOCUMENT DE LIAISON D'URGENCE",
            alternatives=("1.2.250.1.213.1.1.1.23", "1.2.250.1.213.1.1.1.24", "1.2.250.1.213.1.1.1.51"),
        ),
        "VSM": DocumentType(
            "VSM", "SYNTH", "1.2.250.1.213.1.1.4.12", "Synthèse", "1.2.250.1.213.1.1.1.13", "201310",
            "VOLET DE SYNTHESE MEDICALE",
        ),
    }
)


@dataclass(frozen=True)
class CdaHeader:
    code: str | None = None
    code_system: str | None = None
    display: str | None = None
    title: str | None = None
    template_ids: tuple[str, ...] = ()
    ins: INS | None = None
    other_ids: tuple[tuple[str, str], ...] = ()  # (root, extension) of non-INS patient ids
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)


def read_cda_header(data: bytes, *, location: str = "") -> CdaHeader:
    """Parse a CDA document and check the header rules used for routing (INS, document code)."""
    findings: list[Finding] = []
    try:
        root = parse_xml(data)
    except XMLSafetyError as exc:
        return CdaHeader(findings=[Finding(exc.code, str(exc), location=location)])
    if root.tag != f"{{{HL7}}}ClinicalDocument":
        return CdaHeader(
            findings=[Finding("CDA-NOT-CDA", f"l'élément racine est {root.tag}, pas hl7:ClinicalDocument", location=location)]
        )
    code_el = root.find("hl7:code", NS)
    code = code_el.get("code") if code_el is not None else None
    code_system = code_el.get("codeSystem") if code_el is not None else None
    if code is None:
        findings.append(Finding("CDA-NO-CODE", "le document n'a pas d'élément code (type de document)", location=location))
    elif not code_system:
        findings.append(Finding("CDA-CODE-SYSTEM", "le code du document n'a pas de codeSystem", location=location))
    template_ids = tuple(t.get("root", "") for t in root.findall("hl7:templateId", NS))
    ins: INS | None = None
    others: list[tuple[str, str]] = []
    ids = root.findall("hl7:recordTarget/hl7:patientRole/hl7:id", NS)
    if not ids:
        findings.append(Finding("CDA-NO-PATIENT-ID", "recordTarget/patientRole/id absent", location=location))
    for id_el in ids:
        oid, ext = id_el.get("root", ""), id_el.get("extension", "")
        if oid in INS_OIDS:
            try:
                ins = parse_ins(ext, oid)
            except InsError as exc:
                findings.append(Finding(f"CDA-{exc.code}", f"INS du patientRole invalide: {exc}", location=location))
        else:
            others.append((oid, ext))
    if ins is None and not any(f.code.startswith("CDA-INS") for f in findings):
        roots = ", ".join(r for r, _ in others) or "aucun"
        findings.append(
            Finding(
                "CDA-NO-INS",
                f"aucun INS dans recordTarget/patientRole/id (OID trouvés: {roots}; attendu un OID INS "
                f"{', '.join(sorted(INS_OIDS))})",
                location=location,
            )
        )
    kind = next((t for t in DOCUMENT_TYPES.values() if (t.code, t.code_system) == (code, code_system)), None)
    if kind is not None and not set(kind.accepted_templates) & set(template_ids):
        findings.append(
            Finding(
                "CDA-TEMPLATE-MISSING",
                f"document {kind.kind} ({code}) sans templateId de volet ({', '.join(kind.accepted_templates)})",
                location=location,
            )
        )
    title_el = root.find("hl7:title", NS)
    return CdaHeader(
        code=code,
        code_system=code_system,
        display=code_el.get("displayName") if code_el is not None else None,
        title=(title_el.text or "").strip() if title_el is not None else None,
        template_ids=template_ids,
        ins=ins,
        other_ids=tuple(others),
        findings=findings,
    )
