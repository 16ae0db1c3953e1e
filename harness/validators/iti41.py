"""ITI-41 Provide and Register Document Set-b as the DMP receives it: the XDS metadata against each document.

Specifications: IHE ITI TF-2b §3.41 (Provide and Register Document Set-b; §3.41.4.1.3 and ITI TF-2x Appendix V:
documents travel as MTOM/XOP parts), ITI TF-3 §4.2.3.2 (DocumentEntry ``size``, ``hash`` SHA-1, ``mimeType``,
``patientId``, ``typeCode``, ``formatCode``, ``uniqueId``), §4.2.4 (error codes); IHE DSG (the signature document
of the submission); ANS CI-SIS « Volet Partage de documents de santé » (patientId = the CDA's INS, formatCode of
the CDA model, ASS_A11); the DMP's reading of it (second-hand, see ``docs/specs/dmp.md``).

Library code (bytes and elements in, findings out), called by the DMP simulator on every ITI-41 it receives
(:mod:`mock_services.dmp.transactions`) and by ``socle-harness validate`` on a saved request
(:func:`validate_request`): one implementation, the same finding codes (the XDS ``errorCode`` the registry answers
with). What needs the DMP's state (DMP open, authorisation, documents already registered, replaced documents) and
the TLS client certificate stays in the simulator.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from lxml import etree

from harness.fields.identity import ProductionInsPolicy
from harness.fields.soap12 import SoapFault, SoapLimits, SoapRequest, addressing_fault, parse_soap_request, resolve_xop
from harness.validators import Finding, Severity, production_ins_findings
from harness.validators import ebrim as E
from harness.validators.cda import CdaSchema, validate_cda
from harness.validators.dsg import verify_submission_signature
from harness.validators.schematron import SchematronEngine
from harness.validators.vihf import (
    SignatureCache,
    Strictness,
    VihfPolicy,
    VihfReport,
    check_vihf,
    structure_finding,
    structure_mismatch,
)
from harness.validators.xds_metadata import (
    ValueSets,
    XdsDocumentEntry,
    XdsSubmission,
    format_code_finding,
    read_submission,
)

ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
PROVIDE_AND_REGISTER = f"{{{E.XDSB}}}ProvideAndRegisterDocumentSetRequest"
CDA_MIME_TYPES = frozenset({"text/xml", "application/xml", "application/hl7-v3+xml"})
MTOM_REQUIRED = "MTOM-REQUIRED"
_BOUNDARY_LINE = re.compile(rb"--([^\r\n]{1,200})\r?\n")


@dataclass(frozen=True)
class Iti41Policy:
    """What the checks need besides the request: the CDA XSD and CI-SIS schematrons, the ANS value sets, the MTOM
    strictness (``strict``: refused, ``lenient``: a warning, ``off``), the production-INS policy and the trust
    anchors the signature document must chain to."""

    cda_schema: CdaSchema | None = None
    schematron: SchematronEngine | None = None
    value_sets: ValueSets | None = None
    mtom: Strictness = Strictness.STRICT
    production_ins: ProductionInsPolicy = ProductionInsPolicy.WARN
    anchors: Sequence[x509.Certificate] = ()


def is_provide_and_register(payload: etree._Element | None) -> bool:
    return payload is not None and payload.tag == PROVIDE_AND_REGISTER


def structure_finess(raw: str | None) -> str | None:
    """The FINESS of a structure identifier ``1`` + FINESS (certificate OU, VIHF ``Identifiant_Structure``)."""
    if raw and len(raw) == 10 and raw.startswith("1"):
        return raw[1:]
    return raw


def read_provide_and_register(
    payload: etree._Element, vihf: VihfReport, policy: Iti41Policy
) -> tuple[XdsSubmission, list[Finding]]:
    """The submission of a ``ProvideAndRegisterDocumentSetRequest`` and the findings about who it is for: the VIHF
    findings, the XDS metadata (French rules, value sets), the VIHF ``resource-id`` against the patientId, the
    production-INS policy."""
    sor = payload.find("lcm:SubmitObjectsRequest", E.NS)
    findings: list[Finding] = list(vihf.findings)
    if sor is None:
        findings.append(Finding("XDSRegistryMetadataError", "lcm:SubmitObjectsRequest absent"))
        submission = XdsSubmission(None, [], [], [])
    else:
        submission = read_submission(sor, value_sets=policy.value_sets)
        findings.extend(submission.findings)
    patient = submission.patient
    if vihf.resource_ins is not None and patient is not None and vihf.resource_ins != patient:
        findings.append(
            Finding(
                "XDSPatientIdDoesNotMatch",
                f"resource-id du VIHF ({vihf.resource_ins.to_xds()}) différent du patientId du lot "
                f"({patient.to_xds()})",
                location="VIHF",
            )
        )
    findings.extend(production_ins_findings(patient, policy.production_ins, "SubmissionSet patientId"))
    return submission, findings


def mtom_findings(mtom: bool, strictness: Strictness) -> list[Finding]:
    """IHE ITI TF-2b §3.41.4.1.3 / TF-2x Appendix V: Provide and Register uses MTOM/XOP (``strict``: refused;
    ``lenient``: a warning)."""
    if mtom or strictness is Strictness.OFF:
        return []
    severity = Severity.ERROR if strictness is Strictness.STRICT else Severity.WARNING
    return [
        Finding(
            MTOM_REQUIRED,
            "ITI-41 reçu sans MTOM/XOP (application/soap+xml) : IHE ITI TF-2b §3.41 impose multipart/related MTOM",
            severity,
            "HTTP Content-Type",
        )
    ]


@dataclass
class ContentCheck:
    """The documents of a submission (DocumentEntry id -> bytes), what each one was checked as, the findings."""

    contents: dict[str, bytes] = field(default_factory=dict)
    checked: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def check_contents(
    payload: etree._Element,
    submission: XdsSubmission,
    attachments: Mapping[str, bytes],
    *,
    mtom: bool,
    structure: str | None,
    policy: Iti41Policy,
    cache: SignatureCache | None = None,
) -> ContentCheck:
    """Transport and documents of a ``ProvideAndRegisterDocumentSetRequest``: MTOM, the declared author institution
    against the authenticated ``structure`` (``1`` + FINESS), each ``xdsb:Document`` against its DocumentEntry and
    as a CDA, the signature document. Raises :class:`~harness.fields.soap12.SoapFault` on an unusable
    ``xop:Include`` or base64 (as the DMP answers). ``cache``: the certificates already found issued by the trust
    anchors (:class:`~harness.validators.vihf.SignatureCache`, one per receiver)."""
    result = ContentCheck()
    findings = result.findings
    findings.extend(mtom_findings(mtom, policy.mtom))
    declared = submission.essms
    authenticated = structure_finess(structure)
    if declared and authenticated and declared != authenticated:
        findings.append(
            Finding(
                "DMP-AUTEUR-STRUCTURE",
                f"authorInstitution déclare la structure {declared}, la structure authentifiée (certificat TLS, "
                f"signataire et Identifiant_Structure du VIHF) est {authenticated} : le versement est compté "
                f"pour {authenticated}",
                Severity.WARNING,
                "SubmissionSet author",
            )
        )
    result.contents = read_documents(payload, submission, attachments, findings)
    for entry in submission.entries:
        data = result.contents.get(entry.id)
        if data is not None:
            document_findings, summary = check_document(entry, data, policy)
            findings.extend(document_findings)
            result.checked.append(summary)
    findings.extend(signature_findings(submission, result.contents, structure, policy.anchors, cache))
    return result


def read_documents(
    payload: etree._Element, submission: XdsSubmission, attachments: Mapping[str, bytes], findings: list[Finding]
) -> dict[str, bytes]:
    """The bytes of each ``xdsb:Document`` (an MTOM part or inline base64), by DocumentEntry id; a document without
    entry or an entry without document is a finding."""
    contents: dict[str, bytes] = {}
    entry_ids = {e.id for e in submission.entries}
    for document in payload.findall("xdsb:Document", E.NS):
        doc_id = document.get("id", "")
        try:
            contents[doc_id] = resolve_xop(document, attachments)
        except KeyError as exc:
            findings.append(
                Finding(
                    "XDSMissingDocument",
                    f"xdsb:Document {doc_id!r}: pièce MTOM <{exc.args[0]}> absente du message (Content-ID)",
                    location=f"Document {doc_id}",
                )
            )
            continue
        if doc_id not in entry_ids:
            findings.append(
                Finding(
                    "XDSMissingDocumentMetadata",
                    f"xdsb:Document {doc_id!r} sans DocumentEntry",
                    location=f"Document {doc_id}",
                )
            )
    for entry in submission.entries:
        if entry.id not in contents and not any(f.location == f"Document {entry.id}" for f in findings):
            findings.append(
                Finding(
                    "XDSMissingDocument",
                    f"DocumentEntry {entry.id}: aucun xdsb:Document ne porte ce document",
                    location=f"DocumentEntry {entry.id}",
                )
            )
    return contents


def check_document(entry: XdsDocumentEntry, data: bytes, policy: Iti41Policy) -> tuple[list[Finding], dict[str, Any]]:
    """One document against its DocumentEntry: size and SHA-1 hash, mimeType, the CDA itself (XSD, French header,
    CI-SIS schematron) and the metadata the CDA header fixes (patientId = INS, typeCode = code, formatCode of the
    model, uniqueId = id). Returns the findings and what the document was checked as."""
    findings: list[Finding] = []
    where = f"DocumentEntry {entry.id}"
    if entry.size is not None and entry.size.strip() != str(len(data)):
        findings.append(
            Finding(
                "XDSRepositoryMetadataError",
                f"size={entry.size} mais le document fait {len(data)} octets",
                location=where,
            )
        )
    if entry.hash is not None and entry.hash.strip().lower() != hashlib.sha1(data).hexdigest():  # noqa: S324 - XDS hash is SHA-1
        findings.append(
            Finding("XDSRepositoryMetadataError", "hash SHA-1 déclaré différent de celui du document", location=where)
        )
    if entry.is_signature:  # verified with the whole submission: signature_findings (IHE DSG)
        return findings, {"entry": entry.id, "kind": "signature"}
    if entry.mime_type not in CDA_MIME_TYPES:
        # The DMP stores CDA R2 documents (a PDF travels inside a CDA nonXMLBody): the declared mimeType never
        # decides which checks run; the content is checked as a CDA whatever it is declared to be.
        findings.append(
            Finding(
                "XDSRegistryMetadataError",
                f"mimeType {entry.mime_type!r} : le DMP n'accepte que des documents CDA R2 (text/xml) ; le "
                "contenu est vérifié comme un document CDA",
                location=where,
            )
        )
    report = validate_cda(data, xsd=policy.cda_schema, schematron=policy.schematron, location=where)
    findings.extend(report.findings)
    header = report.header
    if header.ins is not None and entry.patient is not None and header.ins != entry.patient:
        findings.append(
            Finding(
                "XDSPatientIdDoesNotMatch",
                f"INS du document CDA ({header.ins.to_xds()}) différent du patientId ({entry.patient.to_xds()})",
                location=where,
            )
        )
    if header.code and entry.type_code and header.code != entry.type_code.code:
        findings.append(
            Finding(
                "XDSRegistryMetadataError",
                f"typeCode {entry.type_code.code!r} incohérent avec le code du document CDA {header.code!r}",
                location=where,
            )
        )
    format_finding = format_code_finding(header.template_ids, entry.format_code, where)
    if format_finding is not None:
        findings.append(format_finding)
    if report.document_id and entry.unique_id and report.document_id != entry.unique_id:
        findings.append(
            Finding(
                "XDSRegistryMetadataError",
                f"uniqueId {entry.unique_id!r} différent de l'identifiant du document CDA {report.document_id!r}",
                location=where,
            )
        )
    summary = {"entry": entry.id, "kind": "cda", "ok": report.ok, "layers": report.layers, "volet": report.volet}
    return findings, summary


def signature_findings(
    submission: XdsSubmission,
    contents: Mapping[str, bytes],
    structure: str | None,
    anchors: Sequence[x509.Certificate],
    cache: SignatureCache | None = None,
) -> list[Finding]:
    """IHE DSG: each signature document verified against ``anchors``, signed by the authenticated ``structure``
    (``1`` + FINESS), with the digests of the submission's documents; ``cache`` as for :func:`check_contents`."""
    documents = {e.unique_id: contents[e.id] for e in submission.documents if e.unique_id and e.id in contents}
    findings: list[Finding] = []
    for entry in submission.entries:
        if entry.is_signature and entry.id in contents:
            findings.extend(
                verify_submission_signature(
                    contents[entry.id],
                    documents,
                    anchors=anchors,
                    structure=structure,
                    location=f"DocumentEntry {entry.id}",
                    cache=cache,
                )
            )
    return findings


# ------------------------------------------------------------------------------------------------ a saved request
@dataclass
class Iti41Report:
    """The verdict on a saved ITI-41 request."""

    findings: list[Finding] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


def split_request(data: bytes) -> tuple[str, bytes]:
    """The Content-Type and body of a saved request: a SOAP envelope alone (``application/soap+xml``), an MTOM
    body as the journal keeps it (starting with its ``--boundary`` line), or a MIME entity / HTTP request whose
    headers give the ``multipart/related`` Content-Type. Raises ``ValueError`` when none of these."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    stripped = data.lstrip()
    if stripped.startswith(b"<"):
        return "application/soap+xml", stripped
    boundary = _BOUNDARY_LINE.match(stripped)
    if boundary:
        value = boundary.group(1).strip().decode("latin-1")
        return f'multipart/related; type="application/xop+xml"; boundary="{value}"', stripped
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    if not sep:
        raise ValueError("ni enveloppe SOAP, ni corps MTOM (--boundary), ni en-têtes MIME")
    content_type = None
    for line in re.sub(rb"\r?\n[ \t]+", b" ", head).splitlines():
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"content-type":
            content_type = value.strip().decode("latin-1")
    if not content_type:
        raise ValueError("en-têtes MIME sans Content-Type")
    return content_type, body


def looks_like_request(data: bytes) -> bool:
    """Whether a saved text is an MTOM ITI-41 body or MIME entity (the envelope case is read by its root)."""
    head = data.removeprefix(b"\xef\xbb\xbf").lstrip()[:8192]
    if b"application/xop+xml" not in head.lower():
        return False
    return head.startswith(b"--") or b"multipart/related" in head.lower()


def validate_request(
    data: bytes, policy: Iti41Policy, *, vihf_policy: VihfPolicy, limits: SoapLimits = SoapLimits()
) -> Iti41Report:
    """A saved ITI-41 request judged as the DMP judges it, minus what needs the DMP's state and the TLS client
    certificate: SOAP 1.2 envelope and MTOM (:mod:`harness.fields.soap12`), WS-Addressing, the VIHF assertion
    (its signer and ``Identifiant_Structure`` name one structure, which stands for the TLS certificate), XDS metadata, each document and its CDA, the
    signature document. Never raises."""
    report = Iti41Report()
    findings = report.findings
    try:
        content_type, body = split_request(data)
        soap = parse_soap_request(content_type, body, limits)
    except ValueError as exc:
        findings.append(Finding("ITI41-ILLISIBLE", f"requête ITI-41 illisible : {exc}"))
        return report
    except SoapFault as fault:
        findings.append(Finding(fault.error_code, fault.reason, location="env:Envelope"))
        return report
    fault = addressing_fault(soap, (ITI41,), "repository")
    if fault is not None:
        findings.append(Finding(fault.error_code, fault.reason, location="env:Header"))
    payload = soap.payload
    if not is_provide_and_register(payload):
        findings.append(
            Finding("XDS-BODY", "xdsb:ProvideAndRegisterDocumentSetRequest attendu dans env:Body", location="env:Body")
        )
        return report
    assert payload is not None  # noqa: S101 - is_provide_and_register
    vihf = check_vihf(soap.security, anchors=list(policy.anchors), policy=vihf_policy)
    chain = structure_mismatch(vihf, vihf_policy, certificate_structure=None, tls=False)
    if chain is not None:
        findings.append(structure_finding(chain))
    submission, metadata = read_provide_and_register(payload, vihf, policy)
    findings.extend(metadata)
    try:
        checked = check_contents(
            payload,
            submission,
            soap.attachments,
            mtom=soap.mtom,
            structure=vihf.first("Identifiant_Structure"),
            policy=policy,
        )
    except SoapFault as fault:
        findings.append(Finding(fault.error_code, fault.reason, location="xdsb:Document"))
        return report
    findings.extend(checked.findings)
    report.detail = _detail(soap, submission, checked, vihf)
    return report


def _detail(soap: SoapRequest, submission: XdsSubmission, checked: ContentCheck, vihf: VihfReport) -> dict[str, Any]:
    return {
        "message_id": soap.message_id,
        "mtom": soap.mtom,
        "vihf": vihf.present,
        "signed": vihf.present or any(c["kind"] == "signature" for c in checked.checked),
        "patient": submission.patient.to_xds() if submission.patient else None,
        "documents": [
            {"uniqueId": e.unique_id, "typeCode": e.type_code.code if e.type_code else None, "id": e.id}
            for e in submission.entries
        ],
        "validation": checked.checked,
    }
