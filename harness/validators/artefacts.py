"""One entry point for every artefact a DUI produces: detect what a file is, then run the validators the
simulators run on it (bytes in, findings out). Used by ``socle-harness validate`` and by editors' CI helpers.

Kinds and the validator each one goes through (the same functions as the simulators, never a second copy):

======================  =====================================================================================
``cda``                 :func:`harness.validators.cda.validate_cda` — XML, CDA XSD (``CDA_extended.xsd``),
                        French header rules, CI-SIS schematron of the document's volet (as the DMP simulator)
``xdm``                 :func:`harness.validators.xdm.validate_xdm` — IHE ITI TF-1 §16 / TF-3 §4.2 layout,
                        ``METADATA.XML``, each CDA inside (as the MSSanté simulator)
``eml``                 :func:`harness.validators.mssante_message.validate_message` — MSSanté message (SMTP DATA)
``mdn``                 :func:`harness.validators.mdn.validate_mdn` — RFC 8098 + volet read receipts 900–906
``fhir``                FHIR R4 structure (fhir.resources R4B) and the French profile rules of the simulators:
                        TDDUI transaction Bundle, cahier de liaison notes and Bundles, e-Prescription
                        confirmation Task and MedicationRequest, FR Core Patient / Organization / Practitioner
``vihf``                :func:`harness.validators.vihf.check_vihf` — VIHF 3.0 SAML assertion (signature checked
                        against the trust anchors given, else reported as not verified)
``insi-request``        :func:`harness.validators.insi.parse_request` — CNAM INSi SOAP 1.2 request
``insi-response``       :func:`harness.validators.insi.validate_result` — CNAM INSi response (``RESULTAT``)
``iti41``               :func:`harness.validators.iti41.validate_request` — ITI-41 Provide and Register request
                        as the DMP receives it (SOAP 1.2 envelope, MTOM or inline, WS-Addressing, VIHF, XDS
                        metadata, each document's CDA, metadata against the CDA, signature document); a
                        saved envelope, an MTOM body starting with its ``--boundary`` line, or a MIME entity
``hl7v2``               HL7 v2.5 structure of the volet « Transmission de documents CDA en HL7 v2 » (MSH,
                        PID, OBX), the relay's rules of :mod:`harness.validators.hl7v2_relay` (request, PID-3
                        INS = each CDA's INS, production INS, flag matrix, a document present) and the CDA
                        carried in OBX-5
======================  =====================================================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from lxml import etree

from harness.core.messages import bilingual
from harness.fields import hl7v2
from harness.fields.xmlsafe import XMLSafetyError, parse_xml
from harness.validators import Finding, Severity, production_ins_findings
from harness.validators.artefact_kind import ArtefactKind
from harness.validators.cda import CdaSchema, validate_cda
from harness.validators.fhir_artefacts import fhir_findings
from harness.validators.hl7v2_relay import (
    DOCUMENT_TYPES,
    document_findings,
    identity_findings,
    matrix_findings,
    message_event,
    obx_content,
    person_ins,
    pid_identity,
)
from harness.validators.insi import parse_request, validate_result
from harness.validators.iti41 import Iti41Policy, looks_like_request, validate_request
from harness.validators.mdn import is_mdn, validate_mdn
from harness.validators.mssante_message import parse_message, validate_message
from harness.validators.schematron import SchematronEngine
from harness.validators.vihf import Strictness, VihfPolicy, check_vihf
from harness.validators.xdm import validate_xdm
from harness.validators.xds_metadata import ValueSets

#: Upper bound of one artefact read by ``validate`` (the largest simulator limit: a DMP submission).
MAX_ARTEFACT_BYTES = 64 * 1024 * 1024

_SOAP_NS = ("http://www.w3.org/2003/05/soap-envelope", "http://schemas.xmlsoap.org/soap/envelope/")
_SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
_HL7 = "urn:hl7-org:v3"
_FHIR = "http://hl7.org/fhir"
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:", re.MULTILINE)


@dataclass(frozen=True)
class ValidationSettings:
    """What the validators need besides the bytes: the same settings the simulators read.

    ``cda_schema`` / ``schematron`` / ``value_sets``: the CDA XSD, the CI-SIS schematron folder and the ANS value
    sets (``[settings.dmp]`` ``cda_xsd_dir`` / ``schematron_dir`` / ``jdv_dir``); ``strict``: refuse what the strict simulators refuse (VIHF strictness);
    ``trust_anchors``: CA certificates a VIHF signature must chain to (the test PKI's).
    """

    cda_schema: CdaSchema | None = None
    schematron: SchematronEngine | None = None
    value_sets: ValueSets | None = None
    strict: bool = True
    trust_anchors: Sequence[x509.Certificate] = ()


@dataclass
class ArtefactReport:
    """The verdict on one artefact."""

    name: str
    kind: ArtefactKind | None
    findings: list[Finding] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value if self.kind else None,
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            **({"detail": self.detail} if self.detail else {}),
        }


def detect(data: bytes) -> ArtefactKind | None:
    """What an artefact is, from its content alone (never from its file name); ``None`` when unknown."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    head = data.lstrip()[:4096]
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return ArtefactKind.XDM
    stripped = head.lstrip(b"\x0b")
    if stripped.startswith(b"MSH|"):
        return ArtefactKind.HL7V2
    if head.startswith(b"{"):
        return ArtefactKind.FHIR
    if head.startswith(b"<"):
        return _detect_xml(data)
    if looks_like_request(head):
        return ArtefactKind.ITI41
    if _HEADER_LINE.match(head):
        try:
            return ArtefactKind.MDN if is_mdn(parse_message(data)) else ArtefactKind.EML
        except Exception:  # the email package raises on some malformed input: still an e-mail to judge
            return ArtefactKind.EML
    return None


def _detect_xml(data: bytes) -> ArtefactKind | None:
    try:
        root = parse_xml(data, max_bytes=MAX_ARTEFACT_BYTES)
    except XMLSafetyError:
        return None
    qname = etree.QName(root)
    if qname.namespace == _HL7 and qname.localname == "ClinicalDocument":
        return ArtefactKind.CDA
    if qname.namespace == _SAML2 and qname.localname == "Assertion":
        return ArtefactKind.VIHF
    if qname.namespace == _FHIR:
        return ArtefactKind.FHIR
    if qname.namespace in _SOAP_NS and qname.localname == "Envelope":
        # only elements: a comment may stand anywhere outside markup (XML 1.0 §2.5) and has no QName
        body = next((c for c in root.iterchildren(etree.Element) if etree.QName(c).localname == "Body"), None)
        payload = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
        name = etree.QName(payload).localname if payload is not None else ""
        if name in {"RECSANSVITALE", "RECSANSVITALEHISTO", "RECAVECVITALE"}:
            return ArtefactKind.INSI_REQUEST
        if name in {"RESULTAT", "Fault"} and _is_insi(root):
            return ArtefactKind.INSI_RESPONSE
        if name == "ProvideAndRegisterDocumentSetRequest":
            return ArtefactKind.ITI41
    return None


def _is_insi(envelope: etree._Element) -> bool:
    """Whether an element of the envelope is in a CNAM namespace (``*.cnamts.fr``); comments are skipped."""
    return any("cnamts.fr" in (etree.QName(el).namespace or "") for el in envelope.iter(etree.Element))


def validate_artefact(
    data: bytes,
    *,
    name: str = "-",
    kind: ArtefactKind | None = None,
    settings: ValidationSettings = ValidationSettings(),
) -> ArtefactReport:
    """Validate one artefact; ``kind`` overrides the detection. Never raises on bad input."""
    if len(data) > MAX_ARTEFACT_BYTES:
        return ArtefactReport(
            name,
            kind,
            [Finding("ARTEFACT-TAILLE", f"fichier de {len(data)} octets, limite {MAX_ARTEFACT_BYTES}", location=name)],
        )
    kind = kind or detect(data)
    report = ArtefactReport(name, kind)
    if kind is None:
        report.findings.append(
            Finding(
                "ARTEFACT-INCONNU",
                bilingual(
                    "type de fichier non reconnu (CDA, XDM, e-mail, MDN, FHIR, VIHF, INSi, HL7 v2, ITI-41) : "
                    "préciser --type",
                    "file type not recognised, use --type",
                ),
                location=name,
            )
        )
        return report
    _VALIDATORS[kind](data, settings, report)
    return report


def _validate_cda(data: bytes, settings: ValidationSettings, report: ArtefactReport) -> None:
    cda = validate_cda(data, xsd=settings.cda_schema, schematron=settings.schematron)
    report.findings.extend(cda.findings)
    report.detail = {"layers": cda.layers, "volet": cda.volet, "document_id": cda.document_id}


def _validate_xdm(data: bytes, settings: ValidationSettings, report: ArtefactReport) -> None:
    xdm = validate_xdm(data)
    report.findings.extend(xdm.findings)
    report.detail = {"subsets": xdm.subsets, "documents": len(xdm.documents)}


def _validate_eml(data: bytes, settings: ValidationSettings, report: ArtefactReport) -> None:
    message = validate_message(data)
    report.findings.extend(message.findings)
    report.detail = {"message_id": message.message_id, "subject": message.subject, "attachments": message.attachments}


def _validate_mdn(data: bytes, settings: ValidationSettings, report: ArtefactReport) -> None:
    mdn = validate_mdn(data)
    report.findings.extend(mdn.findings)
    report.detail = {"disposition": mdn.disposition, "error_code": mdn.error_code}


def _validate_vihf(data: bytes, settings: ValidationSettings, report: ArtefactReport) -> None:
    try:
        assertion = parse_xml(data, max_bytes=MAX_ARTEFACT_BYTES)
    except XMLSafetyError as exc:
        report.findings.append(Finding(exc.code, exc.message_fr))
        return
    security = etree.Element(
        "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}Security"
    )
    security.append(assertion)
    strictness = Strictness.STRICT if settings.strict else Strictness.LENIENT
    vihf = check_vihf(security, anchors=list(settings.trust_anchors), policy=VihfPolicy(strictness=strictness))
    report.findings.extend(vihf.findings)
    if not settings.trust_anchors:
        report.findings.append(_no_anchors())


def _validate_insi_request(data: bytes, settings: ValidationSettings, report: ArtefactReport) -> None:
    request = parse_request(data)
    report.findings.extend(request.findings)
    report.detail = {"operation": request.operation}


def _validate_insi_response(data: bytes, settings: ValidationSettings, report: ArtefactReport) -> None:
    report.findings.extend(validate_result(data))


def _validate_hl7v2(data: bytes, settings: ValidationSettings, report: ArtefactReport) -> None:
    try:
        message = hl7v2.parse(data.strip(b"\x0b\x1c\r\n") + b"\r")
    except hl7v2.Hl7Error as exc:
        report.findings.append(Finding("HL7-ILLISIBLE", f"message HL7 v2 illisible : {exc}"))
        return
    report.detail = {"type": message.message_type, "version": message.version}
    content = obx_content(message)
    cdas = []
    for set_id, document in content.documents:
        where = f"OBX-{set_id}" if set_id else "OBX-5"
        cdas.append(validate_cda(document, xsd=settings.cda_schema, schematron=settings.schematron, location=where))
    if message.message_type in DOCUMENT_TYPES:  # the relay's rules (harness.validators.hl7v2_relay)
        event = message_event(message)
        report.detail.update(event=event.name, volet=event.volet, flags=content.flags)
        if event.finding is not None:
            report.findings.append(event.finding)
        headers = [cda.header for cda in cdas]
        pid = pid_identity(message)
        report.findings.extend(identity_findings(pid, headers))
        report.findings.extend(production_ins_findings(person_ins(pid, headers), location="PID-3"))
        if message.message_type == "ORU^R01":
            report.findings.extend(matrix_findings(content.flags, dmp_only=True))
        if event.name is not None:
            report.findings.extend(document_findings(event.name, content.documents))
    for cda in cdas:
        report.findings.extend(cda.findings)


def _validate_iti41(data: bytes, settings: ValidationSettings, report: ArtefactReport) -> None:
    strictness = Strictness.STRICT if settings.strict else Strictness.LENIENT
    policy = Iti41Policy(
        cda_schema=settings.cda_schema,
        schematron=settings.schematron,
        value_sets=settings.value_sets,
        mtom=strictness,
        anchors=tuple(settings.trust_anchors),
    )
    result = validate_request(data, policy, vihf_policy=VihfPolicy(strictness=strictness))
    report.findings.extend(result.findings)
    report.detail = result.detail
    if not settings.trust_anchors and result.detail.get("signed"):  # a VIHF or a signature document was there
        report.findings.append(_no_anchors())


def _no_anchors() -> Finding:
    return Finding(
        "VIHF-ANCRES-ABSENTES",
        "signature non vérifiable : aucune autorité de confiance donnée (--ca, la CA de la PKI de test)",
        Severity.WARNING,
    )


def _validate_fhir(data: bytes, settings: ValidationSettings, report: ArtefactReport) -> None:
    findings, detail = fhir_findings(data, max_bytes=MAX_ARTEFACT_BYTES)
    report.findings.extend(findings)
    report.detail = detail


_VALIDATORS = {
    ArtefactKind.CDA: _validate_cda,
    ArtefactKind.XDM: _validate_xdm,
    ArtefactKind.EML: _validate_eml,
    ArtefactKind.MDN: _validate_mdn,
    ArtefactKind.FHIR: _validate_fhir,
    ArtefactKind.VIHF: _validate_vihf,
    ArtefactKind.INSI_REQUEST: _validate_insi_request,
    ArtefactKind.INSI_RESPONSE: _validate_insi_response,
    ArtefactKind.HL7V2: _validate_hl7v2,
    ArtefactKind.ITI41: _validate_iti41,
}


def assert_conform(
    artefact: bytes | str | os.PathLike[str],
    *,
    kind: ArtefactKind | None = None,
    settings: ValidationSettings = ValidationSettings(),
) -> ArtefactReport:
    """For editors' tests (pytest or any runner): validate bytes or a file and raise ``AssertionError`` listing
    the errors when there is one; returns the report (warnings included) otherwise."""
    if isinstance(artefact, bytes):
        name, data = "-", artefact
    else:
        name, data = os.fspath(artefact), Path(artefact).read_bytes()
    report = validate_artefact(data, name=name, kind=kind, settings=settings)
    if not report.ok:
        listed = "\n".join(f"  {finding}" for finding in report.errors)
        raise AssertionError(f"{name} ({report.kind or 'type inconnu'}) non conforme :\n{listed}")
    return report
