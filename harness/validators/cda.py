"""CDA R2 header reading and the French header checks that matter for exchange routing.

Follows HL7 CDA R2 (2005) with the ANS CI-SIS "Structuration minimale des documents de santé" header rules:
the person is identified by an INS in ``recordTarget/patientRole/id`` (root = an INS OID, extension = the
15-character INS), the document type is a LOINC ``code``, and the volet's ``templateId`` is declared.
This module reads the header and reports findings. :func:`validate_cda` is the full validation of an uploaded
document, in two layers: (1) always on, the CDA R2 XSD with the French extensions (``CDA_extended.xsd``, loaded
from a folder the user configures: the harness cannot ship it) plus the French header rules of the CI-SIS
"Volet Structuration minimale" (realm FR, typeId, CI-SIS header templateIds, INS with a valid key and OID, the
volet's templateId, author, custodian, legal authenticator, confidentiality, healthcare facility); (2) when a
CI-SIS schematron folder is configured, the schematron of the volet and version the document declares
(:mod:`harness.validators.schematron`); a document no schematron checks is reported, never silently passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from lxml import etree

from harness.fields.identity import INS, INS_OIDS, InsError, parse_ins
from harness.fields.xmlsafe import XMLSafetyError, parse_xml
from harness.validators import Finding, Severity

if TYPE_CHECKING:  # pragma: no cover
    from harness.validators.schematron import SchematronEngine

HL7 = "urn:hl7-org:v3"
NS = {"hl7": HL7}
LOINC = "2.16.840.1.113883.6.1"
TRE_A05 = "1.2.250.1.213.1.1.4.12"  # ANS "types de documents" code system (SYNTH...)
HL7_CONFIDENTIALITY = "2.16.840.1.113883.5.25"
CDA_TYPE_ID = ("2.16.840.1.113883.1.3", "POCD_HD000040")
HEADER_TEMPLATES = ("2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1")  # HL7 France + CI-SIS header model
MAX_CDA_BYTES = 30 * 1024 * 1024
SCH_NOT_VERIFIED = "SCH-NON-VERIFIE"  # the content could not be checked by a CI-SIS schematron (warning)


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
            "DLU",
            "74207-2",
            LOINC,
            "Dossier de liaison d'urgence",
            "1.2.250.1.213.1.1.1.22",
            "2022.01",
            "DOCUMENT DE LIAISON D'URGENCE",
            alternatives=("1.2.250.1.213.1.1.1.23", "1.2.250.1.213.1.1.1.24", "1.2.250.1.213.1.1.1.51"),
        ),
        "VSM": DocumentType(
            "VSM",
            "SYNTH",
            TRE_A05,
            "Synthèse",
            "1.2.250.1.213.1.1.1.13",
            "201310",
            "VOLET DE SYNTHESE MEDICALE",
        ),
        "LDL-SES": DocumentType(
            "LDL-SES",
            "11490-0",
            LOINC,
            "Lettre de liaison à la sortie d'un établissement de soins",
            "1.2.250.1.213.1.1.1.29",
            "2022.01",
            "LETTRE DE LIAISON A LA SORTIE",
        ),
        "LDL-EES": DocumentType(
            "LDL-EES",
            "18761-7",
            LOINC,
            "Note de transfert",
            "1.2.250.1.213.1.1.1.21",
            "2022.01",
            "LETTRE DE LIAISON A L'ENTREE",
        ),
        "VAC": DocumentType(
            "VAC",
            "11369-6",
            LOINC,
            "Historique de vaccinations",
            "1.2.250.1.213.1.1.1.37",
            "2023.01",
            "HISTORIQUE DE VACCINATIONS",
        ),
        "CR-BIO": DocumentType(
            "CR-BIO",
            "11502-2",
            LOINC,
            "CR d'examens biologiques",
            "1.2.250.1.213.1.1.1.55",
            None,
            "COMPTE RENDU D'EXAMENS BIOLOGIQUES",
            alternatives=("1.3.6.1.4.1.19376.1.2.20",),
        ),
        "EP-MED-DM": DocumentType(
            "EP-MED-DM",
            "57833-6",
            LOINC,
            "Prescription de produits de santé",
            "1.2.250.1.213.1.1.1.39",
            "2024.01",
            "PRESCRIPTION",
        ),
        "EDISP-MED": DocumentType(
            "EDISP-MED",
            "60593-1",
            LOINC,
            "Dispensation médicamenteuse",
            "1.2.250.1.213.1.1.1.54",
            "2024.01",
            "DISPENSATION",
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
    try:
        root = parse_xml(data)
    except XMLSafetyError as exc:
        return CdaHeader(findings=[Finding(exc.code, str(exc), location=location)])
    return header_of(root, location=location)


def header_of(root: etree._Element, *, location: str = "") -> CdaHeader:
    """The routing header of an already parsed CDA document (INS, document code, templateIds)."""
    findings: list[Finding] = []
    if root.tag != f"{{{HL7}}}ClinicalDocument":
        return CdaHeader(
            findings=[
                Finding("CDA-NOT-CDA", f"l'élément racine est {root.tag}, pas hl7:ClinicalDocument", location=location)
            ]
        )
    code_el = root.find("hl7:code", NS)
    code = code_el.get("code") if code_el is not None else None
    code_system = code_el.get("codeSystem") if code_el is not None else None
    if code is None:
        findings.append(
            Finding("CDA-NO-CODE", "le document n'a pas d'élément code (type de document)", location=location)
        )
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


# ---------------------------------------------------------------------------------------------------------------
# Full validation of an uploaded document: XSD + French header rules (+ the volet's schematron when configured).


class CdaSchema:
    """The CDA R2 XSD with the French extensions, loaded once from the folder the user configures.

    ``folder`` must hold ``CDA_extended.xsd`` and the files it includes (the ANS ``infrastructure/cda`` folder).
    Loading never uses the network.
    """

    ENTRY = "CDA_extended.xsd"

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        entry = self.folder / self.ENTRY
        if not entry.is_file():
            raise FileNotFoundError(f"{self.ENTRY} introuvable dans {self.folder} (réglage cda_xsd_dir)")
        parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
        try:
            self.schema = etree.XMLSchema(etree.parse(str(entry), parser))
        except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
            raise ValueError(f"XSD CDA illisible dans {self.folder}: {exc}") from exc

    def validate(self, root: etree._Element, *, location: str = "", limit: int = 20) -> list[Finding]:
        """XSD errors of a parsed document, at most ``limit`` of them (then one summary finding)."""
        if self.schema.validate(root.getroottree()):
            return []
        errors = list(self.schema.error_log)
        findings = [
            Finding("CDA-XSD", f"ligne {e.line}: {e.message}", location=location or "CDA") for e in errors[:limit]
        ]
        if len(errors) > limit:
            findings.append(
                Finding("CDA-XSD", f"... et {len(errors) - limit} autre(s) erreur(s) XSD", location=location)
            )
        return findings


@dataclass
class CdaReport:
    """What :func:`validate_cda` found: the header, the findings, which layers ran and the volet."""

    header: CdaHeader
    findings: list[Finding] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)  # "xml", "xsd", "header", "schematron:<volet>"
    volet: str | None = None  # the schematron the document was judged with (CI-SIS_<volet>.sch stem)
    schematron_reason: str = ""  # why that schematron, or why none (French)
    document_id: str | None = None  # ClinicalDocument/id as root[^extension]

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)


def _roots(root: etree._Element, path: str) -> list[str]:
    """The ``@root`` of the ids at ``path`` ('' when absent)."""
    return [e.get("root", "") for e in root.findall(path, NS)]


def check_french_header(root: etree._Element, *, location: str = "") -> list[Finding]:
    """French header rules (CI-SIS Structuration minimale) beyond the routing ones of :func:`header_of`."""
    out: list[Finding] = []

    def need(condition: bool, code: str, message: str, severity: Severity = Severity.ERROR) -> None:
        if not condition:
            out.append(Finding(code, message, severity, location))

    need(
        any(r.get("code") == "FR" for r in root.findall("hl7:realmCode", NS)), "CDA-REALM", 'realmCode code="FR" absent'
    )
    type_id = root.find("hl7:typeId", NS)
    need(
        type_id is not None and (type_id.get("root"), type_id.get("extension")) == CDA_TYPE_ID,
        "CDA-TYPEID",
        f"typeId attendu root={CDA_TYPE_ID[0]} extension={CDA_TYPE_ID[1]}",
    )
    declared = {t.get("root", "") for t in root.findall("hl7:templateId", NS)}
    for template in HEADER_TEMPLATES:
        need(
            template in declared,
            "CDA-TEMPLATE-HEADER",
            f"templateId d'en-tête {template} absent (modèle d'en-tête CI-SIS)",
        )
    doc_id = root.find("hl7:id", NS)
    need(doc_id is not None and bool(doc_id.get("root")), "CDA-ID", "identifiant du document (id/@root) absent")
    need(root.find("hl7:effectiveTime[@value]", NS) is not None, "CDA-EFFECTIVE-TIME", "effectiveTime absent")
    conf = root.find("hl7:confidentialityCode", NS)
    need(
        conf is not None and conf.get("code") in {"N", "R", "V"} and conf.get("codeSystem") == HL7_CONFIDENTIALITY,
        "CDA-CONFIDENTIALITY",
        f"confidentialityCode attendu N, R ou V du système {HL7_CONFIDENTIALITY}"
        + (f", reçu {conf.get('code')!r} / {conf.get('codeSystem')!r}" if conf is not None else ""),
    )
    need(
        any(lc.get("code") == "fr-FR" for lc in root.findall("hl7:languageCode", NS)),
        "CDA-LANGUAGE",
        "languageCode fr-FR attendu",
        Severity.WARNING,
    )
    need(root.find("hl7:setId[@root]", NS) is not None, "CDA-SETID", "setId absent")
    need(root.find("hl7:versionNumber[@value]", NS) is not None, "CDA-VERSION", "versionNumber absent")
    authors = root.findall("hl7:author", NS)
    need(bool(authors), "CDA-AUTHOR", "aucun auteur (author)")
    for index, author in enumerate(authors, start=1):
        where = f"author[{index}]"
        need(author.find("hl7:time[@value]", NS) is not None, "CDA-AUTHOR", f"{where}: time absent")
        need(any(_roots(author, "hl7:assignedAuthor/hl7:id")), "CDA-AUTHOR", f"{where}: assignedAuthor/id absent")
        need(
            author.find("hl7:assignedAuthor/hl7:assignedPerson", NS) is not None
            or author.find("hl7:assignedAuthor/hl7:assignedAuthoringDevice", NS) is not None,
            "CDA-AUTHOR",
            f"{where}: ni assignedPerson ni assignedAuthoringDevice",
        )
    custodian = _roots(root, "hl7:custodian/hl7:assignedCustodian/hl7:representedCustodianOrganization/hl7:id")
    need(any(custodian), "CDA-CUSTODIAN", "custodian/.../representedCustodianOrganization/id absent")
    need(
        root.find("hl7:legalAuthenticator/hl7:assignedEntity/hl7:id", NS) is not None,
        "CDA-LEGAL-AUTHENTICATOR",
        "legalAuthenticator/assignedEntity/id absent",
    )
    facility = root.find("hl7:componentOf/hl7:encompassingEncounter/hl7:location/hl7:healthCareFacility/hl7:code", NS)
    need(
        facility is not None and bool(facility.get("code")),
        "CDA-HEALTHCARE-FACILITY",
        "componentOf/encompassingEncounter/location/healthCareFacility/code absent (source du healthcareFacilityTypeCode)",
    )
    need(
        root.find("hl7:documentationOf/hl7:serviceEvent", NS) is not None,
        "CDA-SERVICE-EVENT",
        "documentationOf/serviceEvent absent",
        Severity.WARNING,
    )
    body = root.find("hl7:component", NS)
    need(
        body is not None
        and (body.find("hl7:structuredBody", NS) is not None or body.find("hl7:nonXMLBody", NS) is not None),
        "CDA-BODY",
        "ni structuredBody ni nonXMLBody",
    )
    return out


def validate_cda(
    data: bytes,
    *,
    xsd: CdaSchema | None = None,
    schematron: SchematronEngine | None = None,
    location: str = "",
    max_bytes: int = MAX_CDA_BYTES,
    xsd_required: bool = True,
    schematron_required: bool = True,
) -> CdaReport:
    """Validate an uploaded CDA document: well-formed (hardened parser), XSD, French header, volet schematron.

    Without ``xsd`` the XSD layer is skipped and a ``CDA-XSD-NOT-CONFIGURED`` warning says so (``xsd_required``).
    The schematron is the one of the volet and version the document declares (:meth:`SchematronEngine.select`,
    never another version); a document no schematron checks gets a ``SCH-NON-VERIFIE`` warning « contenu non
    vérifié par schématron » saying why (also without ``schematron``, unless ``schematron_required`` is false).
    Never raises on bad input.
    """
    try:
        root = parse_xml(data, max_bytes=max_bytes)
    except XMLSafetyError as exc:
        header = CdaHeader(
            findings=[Finding(exc.code, f"le document n'est pas un XML lisible: {exc.message_fr}", location=location)]
        )
        return CdaReport(header=header, findings=list(header.findings), layers=["xml"])
    header = header_of(root, location=location)
    report = CdaReport(header=header, findings=list(header.findings), layers=["xml", "header"])
    if root.tag != f"{{{HL7}}}ClinicalDocument":
        return report
    doc_id = root.find("hl7:id", NS)
    if doc_id is not None and doc_id.get("root"):
        report.document_id = doc_id.get("root", "") + (f"^{doc_id.get('extension')}" if doc_id.get("extension") else "")
    if xsd is not None:
        report.findings.extend(xsd.validate(root, location=location))
        report.layers.append("xsd")
    elif xsd_required:
        report.findings.append(
            Finding(
                "CDA-XSD-NOT-CONFIGURED",
                "validation XSD non effectuée : le dossier du schéma CDA (CDA_extended.xsd) n'est pas configuré "
                "(réglage cda_xsd_dir)",
                Severity.WARNING,
                location,
            )
        )
    report.findings.extend(check_french_header(root, location=location))
    if schematron is None:
        if schematron_required:
            report.findings.append(
                Finding(
                    SCH_NOT_VERIFIED,
                    "contenu non vérifié par schématron : le dossier des schématrons CI-SIS n'est pas configuré "
                    "(réglage schematron_dir)",
                    Severity.WARNING,
                    location,
                )
            )
        return report
    choice = schematron.select(root)
    report.volet = choice.name
    report.schematron_reason = choice.reason
    if choice.name is None:
        report.findings.append(
            Finding(
                SCH_NOT_VERIFIED, f"contenu non vérifié par schématron : {choice.reason}", Severity.WARNING, location
            )
        )
        return report
    report.findings.extend(schematron.validate(root, choice.name, location=location))
    report.layers.append(f"schematron:{choice.name}")
    return report
