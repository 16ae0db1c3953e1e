"""XDS.b submission metadata (ITI-41 / ITI-57 ``SubmitObjectsRequest``) read and checked against the French rules.

Specifications followed: IHE ITI TF-3 Rev. 19.0 §4.2 (ebRIM metadata, attribute cardinalities of the XDS
Document Source), §4.2.4 (error codes); IHE ITI DSG (Document Digital Signature) for the signature document
(typeCode ``E1762``, classCode ``urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1``, formatCode
``http://www.w3.org/2000/09/xmldsig#`` and the ``signs`` association to the SubmissionSet); the ANS CI-SIS
"Volet Partage de documents de santé" as applied by the DMP (patientId = INS ``valeur^^^&OID&ISO^NH`` with an
INS OID; author person ``IDNPS`` under 1.2.250.1.71.4.2.1, author institution ``IDNST`` under
1.2.250.1.71.4.2.2; classCode 1.2.250.1.213.1.1.4.1, typeCode LOINC or 1.2.250.1.213.1.1.4.12,
confidentialityCode HL7 2.16.840.1.113883.5.25 plus the DMP codes of 1.2.250.1.213.1.1.4.13,
healthcareFacilityTypeCode 1.2.250.1.71.4.2.4, practiceSettingCode 1.2.250.1.213.1.1.4.9). The values seen in the
ANS DRIM-M ITI-41 samples were used to confirm formats. When a folder of ANS value sets (SVS ``JDV_*.xml``) is
configured, codes are also checked against JDV J02 / J04 / J07 / J08.

Every finding's ``code`` is the XDS ``errorCode`` the registry answers with (``XDSRegistryMetadataError``,
``XDSPatientIdDoesNotMatch``, ``XDSUnknownPatientId``...); the message says which rule in French.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from lxml import etree

from harness.fields.identity import INS, InsError, parse_xds_patient_id
from harness.fields.xmlsafe import XMLSafetyError, parse_xml
from harness.validators import Finding, Severity
from harness.validators import ebrim as E

META = "XDSRegistryMetadataError"
PATIENT_MISMATCH = "XDSPatientIdDoesNotMatch"
UNKNOWN_PATIENT = "XDSUnknownPatientId"

OID_CLASS_CODE = "1.2.250.1.213.1.1.4.1"
OID_TYPE_CODE_ANS = "1.2.250.1.213.1.1.4.12"
OID_LOINC = "2.16.840.1.113883.6.1"
OID_HL7_CONFIDENTIALITY = "2.16.840.1.113883.5.25"
OID_DMP_CONFIDENTIALITY = "1.2.250.1.213.1.1.4.13"
OID_FACILITY = "1.2.250.1.71.4.2.4"
OID_PRACTICE = "1.2.250.1.213.1.1.4.9"
OID_IDNPS = "1.2.250.1.71.4.2.1"
OID_IDNST = "1.2.250.1.71.4.2.2"
DMP_CONFIDENTIALITY_CODES = frozenset(
    {"MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX", "CONNEXION_SECRETE"}
)
SIGNATURE_TYPE = "E1762"
SIGNATURE_CLASS = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
SIGNATURE_FORMAT = "http://www.w3.org/2000/09/xmldsig#"
# DMP value sets not in the TestContenuCDA jeuxDeValeurs folder, encoded from the ANS "Terminologies de Santé" guide
# (ansforge/IG-terminologie-de-sante): codes as published, codingScheme = the OID of the TRE that defines each code.
OID_TRE_A03 = OID_CLASS_CODE  # TRE_A03-ClasseDocument
OID_TRE_A06 = "1.2.250.1.213.1.1.4.2.282"  # TRE_A06-FormatCodeComplementaire
OID_TRE_A09 = "1.2.840.10008.2.6.1"  # TRE_A09-DICOMuidRegistry
OID_TRE_A11 = "1.3.6.1.4.1.19376.1.2.3"  # TRE_A11-IheFormatCode
#: JDV_J57_ClassCode_DMP (OID 1.2.250.1.213.1.1.5.6, version 20230922120000)
JDV_J57_CLASS_CODE_DMP = frozenset(
    {(code, OID_TRE_A03) for code in ("10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95")}
    | {(SIGNATURE_CLASS, "URN")}
)
#: JDV_J60_FormatCode_DMP (OID 1.2.250.1.213.1.1.5.8, version 20240927120000)
JDV_J60_FORMAT_CODE_DMP = frozenset(
    {
        (code, OID_TRE_A06)
        for code in (
            "urn:ans:ci-sis:bio-ep-bio:2022",
            "urn:ans:ci-sis:img-da:2022",
            "urn:asip:ci-sis:aunv:2013",
            "urn:asip:ci-sis:avk:2009",
            "urn:asip:ci-sis:crgm:2018",
            "urn:asip:ci-sis:crrtn:2013",
            "urn:asip:ci-sis:cse-cs24:2017",
            "urn:asip:ci-sis:cse-cs8:2017",
            "urn:asip:ci-sis:cse-cs9:2017",
            "urn:asip:ci-sis:d2lm-fidd:2017",
            "urn:asip:ci-sis:d2lm-fin:2017",
            "urn:asip:ci-sis:dci:2009",
            "urn:asip:ci-sis:dlu:2015",
            "urn:ans:ci-sis:cse-mde:2023",
            "urn:asip:ci-sis:eunv:2013",
            "urn:asip:ci-sis:fludr:2017",
            "urn:asip:ci-sis:fludt:2017",
            "urn:asip:ci-sis:frcp:2011",
            "urn:asip:ci-sis:hr:2019",
            "urn:asip:ci-sis:idap:2011",
            "urn:asip:ci-sis:ldl-ees:2017",
            "urn:asip:ci-sis:ldl-ses:2017",
            "urn:asip:ci-sis:pavc:2016",
            "urn:asip:ci-sis:pps-cancer:2017",
            "urn:asip:ci-sis:pps-paerpa:2017",
            "urn:asip:ci-sis:ppv:2009",
            "urn:asip:ci-sis:psc:2009",
            "urn:asip:ci-sis:sdm-mr:2017",
            "urn:asip:ci-sis:sunv:2013",
            "urn:asip:ci-sis:tap:2009",
            "urn:asip:ci-sis:vac:2019",
            "urn:asip:ci-sis:vsm:2012",
            "urn:asipSante:modelesHorsProfils:2011",
            "urn:asip:ci-sis:cr-cpa:2020",
            "urn:asip:ci-sis:cr-anest:2020",
            "urn:asip:ci-sis:tlm-da:2020",
            "urn:asip:ci-sis:vac-note:2021",
            "urn:asip:ci-sis:obp-sap:2023",
            "urn:asip:ci-sis:obp-snm:2023",
            "urn:asip:ci-sis:obp-sne:2023",
            "urn:asip:ci-sis:obp-scm:2023",
            "urn:asip:ci-sis:obp-sem:2023",
            "urn:asip:ci-sis:ppp:2023",
            "urn:asip:ci-sis:dlu:2024",
            "urn:asip:ci-sis:ft-su:2024",
            "urn:asip:ci-sis:fr-su:2024",
            "urn:ans:ci-sis:trod:2024",
        )
    }
    | {
        (code, OID_TRE_A11)
        for code in (
            "urn:ihe:iti:dsg:detached:2014",
            "urn:ihe:iti:xds-sd:pdf:2008",
            "urn:ihe:iti:xds-sd:text:2008",
            "urn:ihe:pharm:dis:2010",
            "urn:ihe:iti-fr:xds-sd:jpeg:2010",
            "urn:ihe:iti-fr:xds-sd:rtf:2010",
            "urn:ihe:iti-fr:xds-sd:tiff:2010",
            "urn:ihe:lab:xd-lab:2008",
            "urn:ihe:palm:apsr:2016",
            "urn:ihe:pcc:ips:2020",
            "urn:ihe:pharm:pre:2010",
            "urn:ihe:eyecare:geneyeevalcn:2014",
            "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
        )
    }
    | {("1.2.840.10008.5.1.4.1.1.88.59", OID_TRE_A09), (SIGNATURE_FORMAT, "URN")}
)
#: ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS (OID 1.2.250.1.213.1.1.4.331, version 20260629120000, ANS Terminologies
#: de Santé): for a structured CDA, the formatCode follows from the document's templateId. CI-SIS and IHE entries.
ASS_A11_FORMAT_CODE = MappingProxyType(
    {
        **{
            f"1.2.250.1.213.1.1.1.{suffix}": (code, OID_TRE_A06)
            for suffix, code in (
                ("5.1", "urn:asip:ci-sis:cse-cs8:2017"),
                ("5.2", "urn:asip:ci-sis:cse-cs9:2017"),
                ("5.3", "urn:asip:ci-sis:cse-cs24:2017"),
                ("5.4", "urn:ans:ci-sis:cse-mde:2023"),
                ("8", "urn:asip:ci-sis:frcp:2011"),
                ("9", "urn:asip:ci-sis:idap:2011"),
                ("12.1", "urn:asip:ci-sis:obp-sap:2023"),
                ("12.2", "urn:asip:ci-sis:obp-snm:2023"),
                ("12.3", "urn:asip:ci-sis:obp-sne:2023"),
                ("12.4", "urn:asip:ci-sis:obp-scm:2023"),
                ("12.5", "urn:asip:ci-sis:obp-sem:2023"),
                ("13", "urn:asip:ci-sis:vsm:2012"),
                ("15", "urn:asip:ci-sis:aunv:2013"),
                ("16", "urn:asip:ci-sis:eunv:2013"),
                ("17", "urn:asip:ci-sis:sunv:2013"),
                ("18", "urn:asip:ci-sis:crrtn:2013"),
                ("2.1.1", "urn:asip:ci-sis:avk:2009"),
                ("2.1.2", "urn:asip:ci-sis:tap:2009"),
                ("2.1.3", "urn:asip:ci-sis:dci:2009"),
                ("2.1.4", "urn:asip:ci-sis:psc:2009"),
                ("2.1.5", "urn:asip:ci-sis:ppv:2009"),
                ("20", "urn:asip:ci-sis:pps-paerpa:2017"),
                ("21", "urn:asip:ci-sis:ldl-ees:2017"),
                ("22", "urn:asip:ci-sis:dlu:2015"),
                ("23", "urn:asip:ci-sis:fludt:2017"),
                ("24", "urn:asip:ci-sis:fludr:2017"),
                ("25", "urn:asip:ci-sis:pavc:2016"),
                ("26", "urn:asip:ci-sis:pps-cancer:2017"),
                ("27", "urn:asip:ci-sis:d2lm-fin:2017"),
                ("28", "urn:asip:ci-sis:d2lm-fidd:2017"),
                ("29", "urn:asip:ci-sis:ldl-ses:2017"),
                ("30", "urn:asip:ci-sis:sdm-mr:2017"),
                ("32", "urn:asip:ci-sis:crgm:2018"),
                ("36", "urn:asip:ci-sis:hr:2019"),
                ("37", "urn:asip:ci-sis:vac:2019"),
                ("38", "urn:asip:ci-sis:tlm-da:2020"),
                ("40", "urn:asip:ci-sis:cr-anest:2020"),
                ("41", "urn:asip:ci-sis:cr-cpa:2020"),
                ("46", "urn:asip:ci-sis:vac-note:2021"),
                ("47", "urn:ans:ci-sis:img-da:2022"),
                ("52", "urn:ans:ci-sis:bio-ep-bio:2022"),
                ("56", "urn:asip:ci-sis:ppp:2023"),
            )
        },
        **{
            template: (code, OID_TRE_A11)
            for template, code in (
                ("1.2.250.1.213.1.1.1.39", "urn:ihe:pharm:pre:2010"),
                ("1.2.250.1.213.1.1.1.54", "urn:ihe:pharm:dis:2010"),
                ("1.2.250.1.213.1.1.1.42", "urn:ihe:eyecare:geneyeevalcn:2014"),
                ("1.2.250.1.213.1.1.1.45", "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013"),
                ("1.2.250.1.213.1.1.1.55", "urn:ihe:lab:xd-lab:2008"),
                ("1.3.6.1.4.1.19376.1.3.3", "urn:ihe:lab:xd-lab:2008"),
                ("1.2.250.1.213.1.1.1.51", "urn:ihe:pcc:ips:2020"),
            )
        },
    }
)


def format_code_finding(template_ids: tuple[str, ...], format_code: Coded | None, where: str) -> Finding | None:
    """ASS_A11: the formatCode a structured CDA's templateIds call for; a finding when the DocumentEntry declares
    another one (``None`` when the templates name no formatCode or they agree)."""
    expected = {ASS_A11_FORMAT_CODE[t] for t in template_ids if t in ASS_A11_FORMAT_CODE}
    if not expected or format_code is None or (format_code.code, format_code.scheme) in expected:
        return None
    wanted = " ou ".join(f"{code} ({scheme})" for code, scheme in sorted(expected))
    return Finding(
        META,
        f"formatCode {format_code.code!r} ({format_code.scheme}) incohérent avec le modèle du document CDA : "
        f"{wanted} attendu (ASS_A11-CorresModeleCDA-XdsFormatCode)",
        location=where,
    )


_TIME_RE = re.compile(r"[0-9]{4}(?:[0-9]{2}){0,5}")
_OID_RE = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")


@dataclass(frozen=True)
class Coded:
    code: str
    scheme: str


@dataclass(frozen=True)
class XdsAuthor:
    persons: tuple[str, ...]
    institutions: tuple[str, ...]

    @property
    def finess(self) -> str | None:
        """The FINESS of the first IDNST institution (``1`` + FINESS), else the raw IDNST identifier."""
        for xon in self.institutions:
            ident = idnst_of(xon)
            if ident:
                return ident[1:] if len(ident) == 10 and ident.startswith("1") else ident
        return None


@dataclass
class XdsDocumentEntry:
    """One DocumentEntry (``rim:ExtrinsicObject``) of a submission."""

    id: str
    element: etree._Element = field(repr=False)
    mime_type: str = ""
    unique_id: str | None = None
    patient_cx: str | None = None
    patient: INS | None = None
    type_code: Coded | None = None
    class_code: Coded | None = None
    format_code: Coded | None = None
    confidentiality: tuple[Coded, ...] = ()
    facility_type: Coded | None = None
    practice_setting: Coded | None = None
    authors: tuple[XdsAuthor, ...] = ()
    creation_time: str | None = None
    title: str | None = None
    hash: str | None = None
    size: str | None = None
    logical_id: str | None = None
    version: str | None = None

    @property
    def is_signature(self) -> bool:
        return self.type_code is not None and self.type_code.code == SIGNATURE_TYPE


@dataclass
class XdsSubmissionSet:
    id: str
    unique_id: str | None = None
    source_id: str | None = None
    patient_cx: str | None = None
    patient: INS | None = None
    submission_time: str | None = None
    authors: tuple[XdsAuthor, ...] = ()
    content_type: Coded | None = None


@dataclass(frozen=True)
class XdsAssociation:
    id: str
    type: str
    source: str
    target: str
    slots: dict[str, tuple[str, ...]]


@dataclass
class XdsSubmission:
    """A parsed ``SubmitObjectsRequest`` and what the French rules found in it."""

    submission_set: XdsSubmissionSet | None
    entries: list[XdsDocumentEntry]
    associations: list[XdsAssociation]
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def documents(self) -> list[XdsDocumentEntry]:
        """The entries that are not the signature document."""
        return [e for e in self.entries if not e.is_signature]

    @property
    def patient(self) -> INS | None:
        return self.submission_set.patient if self.submission_set else None

    @property
    def essms(self) -> str | None:
        for author in (
            *(self.submission_set.authors if self.submission_set else ()),
            *(a for e in self.entries for a in e.authors),
        ):
            if author.finess:
                return author.finess
        return None


def idnst_of(xon: str) -> str | None:
    """The identifier of an XON ``Name^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^<id>`` (``None`` if not IDNST)."""
    parts = xon.split("^")
    if len(parts) >= 10 and f"&{OID_IDNST}&ISO" in parts[5] and parts[6] == "IDNST":
        return parts[9] or None
    return None


def _person_ok(xcn: str) -> bool:
    parts = xcn.split("^")
    return (
        bool(parts[0])
        and len(parts) >= 13
        and f"&{OID_IDNPS}&ISO" in parts[8]
        and parts[12] in {"IDNPS", "EI", "RPPS", "ADELI"}
    )


class ValueSets:
    """ANS value sets (SVS ``RetrieveValueSetResponse`` files, ``JDV_*.xml``) of a configured folder, loaded lazily."""

    FILES = {
        "facility": "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml",
        "practice": "JDV_J04_XdsPracticeSettingCode_CISIS.xml",
        "type": "JDV_J07_XdsTypeCode_CISIS.xml",
        "confidentiality": "JDV_J08_XdsConfidentialityCode_CISIS.xml",
    }

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._sets: dict[str, frozenset[tuple[str, str]] | None] = {}

    def _load(self, name: str) -> frozenset[tuple[str, str]] | None:
        path = self.folder / self.FILES[name]
        if not path.is_file():
            return None
        try:
            root = parse_xml(path.read_bytes())
        except XMLSafetyError:
            return None
        return frozenset(
            (c.get("code", ""), c.get("codeSystem", "")) for c in root.iter("{urn:ihe:iti:svs:2008}Concept")
        )

    def contains(self, name: str, coded: Coded) -> bool | None:
        """Whether ``coded`` is in the value set (``None``: value set not available)."""
        with self._lock:
            if name not in self._sets:
                self._sets[name] = self._load(name)
            values = self._sets[name]
        return None if values is None else (coded.code, coded.scheme) in values


def _coded(element: etree._Element, scheme: str) -> Coded | None:
    values = E.coded_values(element, scheme)
    return Coded(*values[0]) if values else None


def _authors(element: etree._Element, scheme: str) -> tuple[XdsAuthor, ...]:
    return tuple(
        XdsAuthor(tuple(E.slot(cl, "authorPerson")), tuple(E.slot(cl, "authorInstitution")))
        for cl in E.classifications(element, scheme)
    )


def _patient(cx: str | None, what: str, findings: list[Finding]) -> INS | None:
    if cx is None:
        findings.append(Finding(META, f"{what}: patientId absent", location=what))
        return None
    try:
        return parse_xds_patient_id(cx)
    except InsError as exc:
        findings.append(
            Finding(
                UNKNOWN_PATIENT,
                f"{what}: patientId {cx!r} n'est pas un INS valide ({exc.code}: {exc.message})",
                location=what,
            )
        )
        return None


def _check_coded(
    findings: list[Finding],
    where: str,
    label: str,
    coded: Coded | None,
    schemes: tuple[str, ...],
    value_sets: ValueSets | None = None,
    value_set: str | None = None,
    required: bool = True,
) -> None:
    if coded is None:
        if required:
            findings.append(Finding(META, f"{label} absent", location=where))
        return
    if not coded.code:
        findings.append(Finding(META, f"{label}: nodeRepresentation vide", location=where))
    if schemes and coded.scheme not in schemes:
        findings.append(
            Finding(
                META,
                f"{label} {coded.code!r}: codingScheme {coded.scheme!r}, attendu {' ou '.join(schemes)}",
                location=where,
            )
        )
    elif value_sets is not None and value_set is not None and value_sets.contains(value_set, coded) is False:
        findings.append(
            Finding(
                META,
                f"{label} {coded.code!r} ({coded.scheme}) absent du jeu de valeurs {ValueSets.FILES[value_set]}",
                location=where,
            )
        )


def _check_dmp_set(
    findings: list[Finding], where: str, label: str, coded: Coded | None, values: frozenset[tuple[str, str]], name: str
) -> None:
    """A DMP value set encoded here (J57, J60): the (code, codingScheme) pair must be one of its concepts."""
    if coded is None or not coded.code or (coded.code, coded.scheme) in values:
        return
    findings.append(
        Finding(META, f"{label} {coded.code!r} ({coded.scheme}) absent du jeu de valeurs {name}", location=where)
    )


def _check_authors(
    findings: list[Finding], where: str, authors: tuple[XdsAuthor, ...], *, person_required: bool
) -> None:
    if not authors:
        findings.append(Finding(META, "author absent", location=where))
        return
    for author in authors:
        if person_required and not any(_person_ok(p) for p in author.persons):
            findings.append(
                Finding(
                    META,
                    f"authorPerson {list(author.persons)!r}: identifiant national de PS attendu "
                    f"(...^^^&{OID_IDNPS}&ISO^D^^^IDNPS)",
                    location=where,
                )
            )
        if not any(idnst_of(i) for i in author.institutions):
            findings.append(
                Finding(
                    META,
                    f"authorInstitution {list(author.institutions)!r}: identifiant de structure IDNST attendu "
                    f"(Nom^^^^^&{OID_IDNST}&ISO^IDNST^^^1<FINESS>)",
                    location=where,
                )
            )


def _read_entry(element: etree._Element) -> XdsDocumentEntry:
    entry = XdsDocumentEntry(id=element.get("id", ""), element=element, mime_type=element.get("mimeType", ""))
    entry.unique_id = E.external_id(element, E.DOC_UNIQUE_ID)
    entry.patient_cx = E.external_id(element, E.DOC_PATIENT_ID)
    entry.type_code = _coded(element, E.TYPE_CODE)
    entry.class_code = _coded(element, E.CLASS_CODE)
    entry.format_code = _coded(element, E.FORMAT_CODE)
    entry.confidentiality = tuple(Coded(c, s) for c, s in E.coded_values(element, E.CONFIDENTIALITY_CODE))
    entry.facility_type = _coded(element, E.HEALTHCARE_FACILITY_TYPE)
    entry.practice_setting = _coded(element, E.PRACTICE_SETTING)
    entry.authors = _authors(element, E.DOC_AUTHOR)
    entry.creation_time = next(iter(E.slot(element, "creationTime")), None)
    entry.hash = next(iter(E.slot(element, "hash")), None)
    entry.size = next(iter(E.slot(element, "size")), None)
    entry.title = E.localized_name(element)
    entry.logical_id = element.get("lid")
    version = element.find("rim:VersionInfo", E.NS)
    entry.version = version.get("versionName") if version is not None else None
    return entry


def _check_entry(
    entry: XdsDocumentEntry,
    submission_set: XdsSubmissionSet | None,
    findings: list[Finding],
    value_sets: ValueSets | None,
) -> None:
    where = f"DocumentEntry {entry.id}"
    entry.patient = _patient(entry.patient_cx, where, findings)
    if (
        entry.patient is not None
        and submission_set is not None
        and submission_set.patient is not None
        and entry.patient != submission_set.patient
    ):
        findings.append(
            Finding(
                PATIENT_MISMATCH,
                f"patientId {entry.patient.value} différent de celui du lot {submission_set.patient.value}",
                location=where,
            )
        )
    if not entry.unique_id:
        findings.append(Finding(META, "uniqueId absent", location=where))
    if not entry.mime_type:
        findings.append(Finding(META, "mimeType absent", location=where))
    if not entry.creation_time or not _TIME_RE.fullmatch(entry.creation_time):
        findings.append(Finding(META, f"creationTime absent ou mal formé ({entry.creation_time!r})", location=where))
    if entry.is_signature:
        _check_coded(findings, where, "classCode", entry.class_code, ("URN",), required=True)
        if entry.class_code is not None and entry.class_code.code != SIGNATURE_CLASS:
            findings.append(
                Finding(META, f"document de signature: classCode {SIGNATURE_CLASS} attendu", location=where)
            )
        if entry.format_code is None or entry.format_code.code != SIGNATURE_FORMAT:
            findings.append(
                Finding(META, f"document de signature: formatCode {SIGNATURE_FORMAT} attendu", location=where)
            )
        _check_authors(findings, where, entry.authors, person_required=False)
        return
    _check_coded(findings, where, "classCode", entry.class_code, (OID_CLASS_CODE,))
    _check_dmp_set(findings, where, "classCode", entry.class_code, JDV_J57_CLASS_CODE_DMP, "JDV_J57-ClassCode-DMP")
    _check_coded(findings, where, "typeCode", entry.type_code, (OID_LOINC, OID_TYPE_CODE_ANS), value_sets, "type")
    _check_coded(findings, where, "formatCode", entry.format_code, ())
    _check_dmp_set(findings, where, "formatCode", entry.format_code, JDV_J60_FORMAT_CODE_DMP, "JDV_J60-FormatCode-DMP")
    if not entry.confidentiality:
        findings.append(Finding(META, "confidentialityCode absent", location=where))
    for coded in entry.confidentiality:
        if value_sets is not None and value_sets.contains("confidentiality", coded) is False:
            findings.append(
                Finding(
                    META,
                    f"confidentialityCode {coded.code!r} ({coded.scheme}) absent du jeu de valeurs "
                    f"{ValueSets.FILES['confidentiality']}",
                    location=where,
                )
            )
            continue
        if coded.scheme == OID_HL7_CONFIDENTIALITY and coded.code in {"N", "R", "V"}:
            continue
        if coded.scheme == OID_DMP_CONFIDENTIALITY and coded.code in DMP_CONFIDENTIALITY_CODES:
            continue
        findings.append(
            Finding(
                META,
                f"confidentialityCode {coded.code!r} ({coded.scheme!r}) hors des codes N/R/V "
                f"({OID_HL7_CONFIDENTIALITY}) et {', '.join(sorted(DMP_CONFIDENTIALITY_CODES))} ({OID_DMP_CONFIDENTIALITY})",
                location=where,
            )
        )
    if entry.confidentiality and not any(c.scheme == OID_HL7_CONFIDENTIALITY for c in entry.confidentiality):
        findings.append(Finding(META, "confidentialityCode HL7 (N, R ou V) absent", location=where))
    _check_coded(
        findings, where, "healthcareFacilityTypeCode", entry.facility_type, (OID_FACILITY,), value_sets, "facility"
    )
    _check_coded(
        findings, where, "practiceSettingCode", entry.practice_setting, (OID_PRACTICE,), value_sets, "practice"
    )
    _check_authors(findings, where, entry.authors, person_required=True)
    if not E.slot(entry.element, "languageCode"):
        findings.append(Finding(META, "languageCode absent", location=where))
    if not E.slot(entry.element, "sourcePatientId"):
        findings.append(Finding(META, "sourcePatientId absent", Severity.WARNING, where))


def read_submission(
    request: etree._Element, *, value_sets: ValueSets | None = None, require_signature: bool = True
) -> XdsSubmission:
    """Read and check a ``lcm:SubmitObjectsRequest`` of an ITI-41 (or ITI-57) request. Never raises."""
    findings: list[Finding] = []
    if request.tag != f"{{{E.LCM}}}SubmitObjectsRequest":
        return XdsSubmission(None, [], [], [Finding(META, f"lcm:SubmitObjectsRequest attendu, reçu {request.tag}")])
    objects = request.find("rim:RegistryObjectList", E.NS)
    if objects is None:
        return XdsSubmission(None, [], [], [Finding(META, "rim:RegistryObjectList absent")])
    packages = [
        p
        for p in objects.findall("rim:RegistryPackage", E.NS)
        if p.xpath("rim:Classification[@classificationNode=$n]", namespaces=E.NS, n=E.SUBMISSION_SET_NODE)
        or objects.xpath(
            "rim:Classification[@classificationNode=$n][@classifiedObject=$o]",
            namespaces=E.NS,
            n=E.SUBMISSION_SET_NODE,
            o=p.get("id", ""),
        )
    ]
    submission_set: XdsSubmissionSet | None = None
    if len(packages) != 1:
        findings.append(Finding(META, f"{len(packages)} lot(s) de soumission (SubmissionSet), attendu 1"))
    else:
        package = packages[0]
        submission_set = XdsSubmissionSet(id=package.get("id", ""))
        where = f"SubmissionSet {submission_set.id}"
        submission_set.unique_id = E.external_id(package, E.SS_UNIQUE_ID)
        submission_set.source_id = E.external_id(package, E.SS_SOURCE_ID)
        submission_set.patient_cx = E.external_id(package, E.SS_PATIENT_ID)
        submission_set.patient = _patient(submission_set.patient_cx, where, findings)
        submission_set.submission_time = next(iter(E.slot(package, "submissionTime")), None)
        submission_set.authors = _authors(package, E.SS_AUTHOR)
        submission_set.content_type = _coded(package, E.SS_CONTENT_TYPE)
        for value, label in ((submission_set.unique_id, "uniqueId"), (submission_set.source_id, "sourceId")):
            if not value or not _OID_RE.fullmatch(value):
                findings.append(Finding(META, f"{label} absent ou pas un OID ({value!r})", location=where))
        if not submission_set.submission_time or not _TIME_RE.fullmatch(submission_set.submission_time):
            findings.append(Finding(META, "submissionTime absent ou mal formé", location=where))
        _check_coded(findings, where, "contentTypeCode", submission_set.content_type, ())
        _check_authors(findings, where, submission_set.authors, person_required=False)
    entries = [
        _read_entry(e)
        for e in objects.findall("rim:ExtrinsicObject", E.NS)
        if e.get("objectType") == E.DOC_ENTRY_OBJECT_TYPE
    ]
    others = [e for e in objects.findall("rim:ExtrinsicObject", E.NS) if e.get("objectType") != E.DOC_ENTRY_OBJECT_TYPE]
    for other in others:
        findings.append(
            Finding(META, f"ExtrinsicObject {other.get('id')}: objectType {other.get('objectType')!r} inconnu")
        )
    associations = [
        XdsAssociation(
            id=a.get("id", ""),
            type=a.get("associationType", ""),
            source=a.get("sourceObject", ""),
            target=a.get("targetObject", ""),
            slots={
                s.get("name", ""): tuple(v.text or "" for v in s.findall("rim:ValueList/rim:Value", E.NS))
                for s in a.findall("rim:Slot", E.NS)
            },
        )
        for a in objects.findall("rim:Association", E.NS)
    ]
    submission = XdsSubmission(submission_set, entries, associations, findings)
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        findings.append(Finding(META, "identifiants de DocumentEntry en double"))
    unique_ids = [e.unique_id for e in entries if e.unique_id]
    if len(set(unique_ids)) != len(unique_ids):
        findings.append(Finding("XDSDocumentUniqueIdError", "uniqueId en double dans la soumission"))
    for entry in entries:
        _check_entry(entry, submission_set, findings, value_sets)
    if submission_set is not None:
        members = {a.target for a in associations if a.type == E.HAS_MEMBER and a.source == submission_set.id}
        for entry in entries:
            if entry.id not in members:
                findings.append(
                    Finding(
                        META,
                        "DocumentEntry non rattaché au lot (association HasMember absente)",
                        location=f"DocumentEntry {entry.id}",
                    )
                )
    known = {e.id for e in entries} | ({submission_set.id} if submission_set else set())
    for assoc in associations:
        if (
            assoc.type == E.HAS_MEMBER
            and assoc.target in {e.id for e in entries}
            and assoc.slots.get("SubmissionSetStatus") != ("Original",)
        ):
            findings.append(
                Finding(
                    META, "association HasMember sans SubmissionSetStatus=Original", location=f"Association {assoc.id}"
                )
            )
        if assoc.source not in known and assoc.type != E.HAS_MEMBER:
            findings.append(
                Finding(
                    META,
                    f"association {assoc.type}: sourceObject {assoc.source!r} inconnu",
                    location=f"Association {assoc.id}",
                )
            )
    if require_signature and entries:
        _check_signature(submission, findings)
    if not [e for e in entries if not e.is_signature] and require_signature:
        findings.append(Finding(META, "aucun document (DocumentEntry hors signature) dans la soumission"))
    return submission


def _check_signature(submission: XdsSubmission, findings: list[Finding]) -> None:
    signatures = [e for e in submission.entries if e.is_signature]
    if not signatures:
        findings.append(
            Finding(
                META,
                "document de signature absent: le lot doit contenir une signature XAdES (typeCode E1762, "
                "IHE DSG) reliée au lot par une association signs",
            )
        )
        return
    ss_id = submission.submission_set.id if submission.submission_set else None
    for signature in signatures:
        if not any(
            a.type == E.SIGNS and a.source == signature.id and a.target == ss_id for a in submission.associations
        ):
            findings.append(
                Finding(
                    META,
                    f"association {E.SIGNS} de la signature {signature.id} vers le lot {ss_id} absente",
                    location=f"DocumentEntry {signature.id}",
                )
            )
