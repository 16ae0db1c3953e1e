"""What the reference DUI sends to the DMP: SOAP 1.2 + WS-Addressing envelopes, MTOM bodies, VIHF, XDS metadata.

DUI-side builders, kept apart from the simulator's parsers (the harness must not check its own output with the
code that made it); only the public vocabulary (namespaces, metadata UUIDs) is shared, from
:mod:`harness.validators.ebrim`. Specifications: SOAP 1.2, WS-Addressing 1.0, XOP/MTOM, IHE ITI TF-2b §3.18,
§3.41, §3.43, §3.57, ITI TF-3 §4.2 (metadata), IHE DSG (signature document), VIHF 3.0 as in the ANS DRIM-M
samples, HL7 v3 ``PRPA_IN201307UV02`` for TD0.2.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from harness.fields.identity import INS
from harness.fields.testdata import Establishment, Person
from harness.fields.xmlsafe import parse_xml
from harness.sut.documents import AUTHOR, author_id
from harness.validators import ebrim as E
from harness.validators.cda import DOCUMENT_TYPES

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
XOP = "http://www.w3.org/2004/08/xop/include"
HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
LPS_NAME = "socle-harness DUI de reference"
LPS_VERSION = "0.1"
LPS_HOMOLOGATION = "DUI-REF-HOMOLOGATION-DMP"


@dataclass(frozen=True)
class OrgCredentials:
    """The DUI's organisation certificate (test PKI) and its private key, used for TLS and to sign VIHF."""

    cert_path: str
    key_path: str

    def load(self) -> tuple[x509.Certificate, object]:
        with open(self.cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        with open(self.key_path, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        return cert, key


def patient_cx(ins: INS, *, wrong_key: bool = False) -> str:
    key = f"{(int(ins.key) % 97) + 1:02d}" if wrong_key else ins.key
    return f"{ins.number}{key}^^^&{ins.oid}&ISO^NH"


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, nsmap: dict | None = None, **attrs: str
) -> etree._Element:
    element = etree.SubElement(parent, tag, dict(attrs), nsmap=nsmap)
    if text is not None:
        element.text = text
    return element


# ------------------------------------------------------------------------------------------------- VIHF
def build_vihf(
    person: Person, establishment: Establishment, credentials: OrgCredentials, *, sign: bool = True
) -> etree._Element:
    """The VIHF 3.0 SAML 2.0 assertion, enveloped-signed (exclusive C14N, ECDSA-SHA256) with the org certificate."""
    cert, key = credentials.load()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assertion_id = f"_{uuid.uuid4()}"
    assertion = etree.Element(
        f"{{{SAML}}}Assertion", nsmap={"saml2": SAML, "xsi": XSI}, ID=assertion_id, IssueInstant=now, Version="2.0"
    )
    _sub(
        assertion,
        f"{{{SAML}}}Issuer",
        cert.subject.rfc4514_string(),
        Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
    )
    if sign:
        etree.SubElement(assertion, f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    _sub(_sub(assertion, f"{{{SAML}}}Subject"), f"{{{SAML}}}NameID", author_id(establishment))
    authn = _sub(assertion, f"{{{SAML}}}AuthnStatement", AuthnInstant=now)
    _sub(
        _sub(authn, f"{{{SAML}}}AuthnContext"),
        f"{{{SAML}}}AuthnContextClassRef",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient",
    )
    statement = _sub(assertion, f"{{{SAML}}}AttributeStatement")

    def attribute(name: str, value: str | None = None, coded: tuple[str, str, str, str] | None = None) -> None:
        element = _sub(_sub(statement, f"{{{SAML}}}Attribute", Name=name), f"{{{SAML}}}AttributeValue")
        if coded:
            tag, code, system, display = coded
            ce = etree.SubElement(
                element,
                f"{{{HL7}}}{tag}",
                nsmap={None: HL7, "xsi": XSI},
                code=code,
                codeSystem=system,
                displayName=display,
            )
            ce.set(f"{{{XSI}}}type", "CE")
        else:
            element.text = value

    family, given, profession = AUTHOR
    attribute("VIHF_Version", "3.0")
    attribute("Secteur_Activite", "SA17^1.2.250.1.71.4.2.4")
    attribute("Ressource_URN", "urn:dmp")
    attribute("urn:oasis:names:tc:xspa:1.0:subject:subject-id", f"{given} {family}")
    attribute("Identifiant_Structure", f"1{establishment.finess}")
    attribute("LPS_ID", "DUI-REF")
    attribute("LPS_Nom", LPS_NAME)
    attribute("LPS_ID_HOMOLOGATION_DMP", LPS_HOMOLOGATION)
    attribute("LPS_Version", LPS_VERSION)
    attribute("urn:oasis:names:tc:xacml:2.0:resource:resource-id", person.ins.to_xds())
    attribute("Authentification_Mode", "INDIRECTE")
    attribute(
        "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",
        coded=("PurposeOfUse", "normal", "1.2.250.1.213.1.1.4.248", "Acces normal"),
    )
    attribute("urn:oasis:names:tc:xacml:2.0:subject:role", coded=("Role", "60", "1.2.250.1.71.1.2.7", profession))
    if not sign:
        return assertion
    from signxml import XMLSigner, methods

    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm="ecdsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    return signer.sign(assertion, key=key, cert=[cert], reference_uri=assertion_id, id_attribute="ID")


# ------------------------------------------------------------------------------------------------- SOAP / MTOM
def envelope(action: str, to: str, body: etree._Element, security: etree._Element | None) -> etree._Element:
    env = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"soap": SOAP12})
    header = _sub(env, f"{{{SOAP12}}}Header")
    _sub(header, f"{{{WSA}}}MessageID", f"urn:uuid:{uuid.uuid4()}", nsmap={None: WSA})
    _sub(header, f"{{{WSA}}}To", to)
    action_el = _sub(header, f"{{{WSA}}}Action", action)
    action_el.set(f"{{{SOAP12}}}mustUnderstand", "true")
    if security is not None:
        _sub(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE}).append(security)
    _sub(env, f"{{{SOAP12}}}Body").append(body)
    return env


def mtom(envelope_el: etree._Element, attachments: dict[str, bytes], action: str) -> tuple[bytes, str]:
    """The ``multipart/related`` MTOM body (XOP root part + one binary part per attachment) and its Content-Type."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    start = f"0.{uuid.uuid4().hex}@dui-reference.test"
    out = bytearray()
    out += (
        f'--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"; action="{action}"\r\n'
        f"Content-Transfer-Encoding: binary\r\nContent-ID: <{start}>\r\n\r\n"
    ).encode("ascii")
    out += etree.tostring(envelope_el, xml_declaration=True, encoding="UTF-8")
    for cid, data in attachments.items():
        out += (
            f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{cid}>\r\n\r\n"
        ).encode("ascii")
        out += data
    out += f"\r\n--{boundary}--\r\n".encode("ascii")
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; start="<{start}>"; '
        f'start-info="application/soap+xml"; action="{action}"'
    )
    return bytes(out), content_type


def inline(envelope_el: etree._Element, attachments: dict[str, bytes], action: str) -> tuple[bytes, str]:
    """The same message without MTOM: every ``xop:Include`` replaced by the base64 of its part, sent as
    ``application/soap+xml`` (what IHE ITI TF-2b §3.41 does not allow for Provide and Register)."""
    for include in list(envelope_el.iter(f"{{{XOP}}}Include")):
        parent = include.getparent()
        parent.remove(include)
        parent.text = base64.b64encode(attachments[include.get("href", "")[4:]]).decode("ascii")
    body = etree.tostring(envelope_el, xml_declaration=True, encoding="UTF-8")
    return body, f'application/soap+xml; charset=UTF-8; action="{action}"'


def read_response(content_type: str, body: bytes) -> tuple[etree._Element, dict[str, bytes]]:
    """Parse a SOAP response (plain or MTOM): the ``env:Body`` child and the attachments by Content-ID."""
    attachments: dict[str, bytes] = {}
    if content_type.lower().startswith("multipart/related"):
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
        parts = list(message.iter_parts())
        root = parts[0].get_payload(decode=True) if parts else b""
        for part in parts[1:]:
            cid = (part.get("Content-ID") or "").strip().strip("<>")
            attachments[cid] = part.get_payload(decode=True) or b""
    else:
        root = body
    env = parse_xml(root or b"")
    body_el = env.find(f"{{{SOAP12}}}Body")
    if body_el is None or not len(body_el):
        raise ValueError("réponse SOAP sans Body")
    return body_el[0], attachments


def registry_errors(response: etree._Element) -> tuple[str, list[tuple[str, str, str]]]:
    """``(status, [(errorCode, codeContext, severity)])`` of a RegistryResponse (or an element containing one)."""
    registry = (
        response
        if response.tag.endswith("RegistryResponse") or response.tag.endswith("AdhocQueryResponse")
        else response.find(f"{{{E.RS}}}RegistryResponse")
    )
    if registry is None:
        return "", []
    errors = [
        (e.get("errorCode", ""), e.get("codeContext", ""), e.get("severity", "").rsplit(":", 1)[-1])
        for e in registry.iter(f"{{{E.RS}}}RegistryError")
    ]
    return registry.get("status", ""), errors


def fault_text(body: etree._Element) -> str | None:
    if body.tag != f"{{{SOAP12}}}Fault":
        return None
    reason = body.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text") or ""
    code = body.findtext(f"{{{SOAP12}}}Detail/errorCode") or body.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value") or ""
    return f"{code}: {reason}"


# ------------------------------------------------------------------------------------------------- TD0.2
def build_td02(person: Person, establishment: Establishment) -> etree._Element:
    def el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
        return _sub(parent, f"{{{HL7}}}{tag}", text, **attrs)

    root = etree.Element(f"{{{HL7}}}PRPA_IN201307UV02", nsmap={None: HL7}, ITSVersion="XML_1.0")
    el(root, "id", root=f"1.2.250.1.999.{establishment.finess}.1", extension=uuid.uuid4().hex)
    el(root, "creationTime", value=datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
    el(root, "interactionId", root="2.16.840.1.113883.1.6", extension="PRPA_IN201307UV02")
    el(root, "processingCode", code="P")
    el(root, "processingModeCode", code="T")
    el(root, "acceptAckCode", code="AL")
    receiver = el(el(root, "receiver", typeCode="RCV"), "device", classCode="DEV", determinerCode="INSTANCE")
    el(receiver, "id", root="1.2.250.1.213.4.1.1.1")
    sender = el(el(root, "sender", typeCode="SND"), "device", classCode="DEV", determinerCode="INSTANCE")
    el(sender, "id", root=f"1.2.250.1.999.{establishment.finess}")
    control = el(root, "controlActProcess", classCode="CACT", moodCode="EVN")
    el(control, "reasonCode", code="TEST_EXST", codeSystem="1.2.250.1.213.1.1.4.11")
    query = el(control, "queryByParameter")
    el(query, "queryId", root=f"1.2.250.1.999.{establishment.finess}.2", extension=uuid.uuid4().hex)
    el(query, "statusCode", code="new")
    identifier = el(el(query, "parameterList"), "patientIdentifier")
    el(identifier, "value", root=person.ins.oid, extension=person.ins.value)
    el(identifier, "semanticsText", "Patient.id")
    return root


def read_td02(body: etree._Element) -> dict[str, str | None]:
    """The facts of a ``PRPA_IN201308UV02``: acknowledgement, queryResponseCode, AUTORISATION, first detail code."""
    ns = {"hl7": HL7}

    def first(xpath: str) -> str | None:
        found = body.xpath(xpath, namespaces=ns)
        return str(found[0]) if found else None

    return {
        "ack": first("hl7:acknowledgement/@typeCode"),
        "query_response": first("hl7:controlActProcess/hl7:queryAck/hl7:queryResponseCode/@code"),
        "authorisation": first(
            "hl7:controlActProcess/hl7:attentionLine[hl7:keyWordText/@code='AUTORISATION']/hl7:value/@code"
        ),
        "detail": first("hl7:acknowledgement/hl7:acknowledgementDetail/hl7:code/@code"),
    }


# ------------------------------------------------------------------------------------------------- ITI-41
#: XDS formatCode of each document kind (JDV_J60-FormatCode-DMP: TRE_A06 .4.2.282 / TRE_A11 IHE format codes)
FORMAT_CODES = {
    "DLU": ("urn:asip:ci-sis:dlu:2015", "1.2.250.1.213.1.1.4.2.282"),
    "VSM": ("urn:asip:ci-sis:vsm:2012", "1.2.250.1.213.1.1.4.2.282"),
    "LDL-SES": ("urn:asip:ci-sis:ldl-ses:2017", "1.2.250.1.213.1.1.4.2.282"),
    "LDL-EES": ("urn:asip:ci-sis:ldl-ees:2017", "1.2.250.1.213.1.1.4.2.282"),
    "VAC": ("urn:asip:ci-sis:vac:2019", "1.2.250.1.213.1.1.4.2.282"),
    "CR-BIO": ("urn:ihe:lab:xd-lab:2008", "1.3.6.1.4.1.19376.1.2.3"),
    "EP-MED-DM": ("urn:ihe:pharm:pre:2010", "1.3.6.1.4.1.19376.1.2.3"),
    "EDISP-MED": ("urn:ihe:pharm:dis:2010", "1.3.6.1.4.1.19376.1.2.3"),
}
#: XDS classCode of each document kind (JDV_J57-ClassCode-DMP, TRE_A03): 10 compte rendu, 11 synthèse,
#: 42 prescription, 43 dispensation
CLASS_CODES = {"VSM": "11", "EP-MED-DM": "42", "EDISP-MED": "43"}


@dataclass(frozen=True)
class FeedOptions:
    wrong_ins_key: bool = False
    signature_document: bool = True
    type_code_override: str | None = None
    rplc_association: bool = True
    mime_type: str = "text/xml"  # the DocumentEntry mimeType of the CDA document
    class_code: str | None = None  # TRE_A03 classCode (JDV_J57); None: the kind's own (CLASS_CODES)
    forged_signature: bool = False  # the signature's manifest digests do not match the documents


def _slot(parent: etree._Element, name: str, *values: str) -> None:
    slot = etree.SubElement(parent, E.rim("Slot"), name=name)
    values_el = etree.SubElement(slot, E.rim("ValueList"))
    for value in values:
        etree.SubElement(values_el, E.rim("Value")).text = value


def _name(parent: etree._Element, text: str) -> None:
    etree.SubElement(etree.SubElement(parent, E.rim("Name")), E.rim("LocalizedString"), value=text)


def _classification(parent: etree._Element, obj: str, scheme: str, code: str, system: str, label: str) -> None:
    cl = etree.SubElement(
        parent,
        E.rim("Classification"),
        id=f"urn:uuid:{uuid.uuid4()}",
        classifiedObject=obj,
        classificationScheme=scheme,
        nodeRepresentation=code,
    )
    _slot(cl, "codingScheme", system)
    _name(cl, label)


def _author(
    parent: etree._Element, obj: str, scheme: str, establishment: Establishment, *, person: bool = True
) -> None:
    cl = etree.SubElement(
        parent,
        E.rim("Classification"),
        id=f"urn:uuid:{uuid.uuid4()}",
        classifiedObject=obj,
        classificationScheme=scheme,
        nodeRepresentation="",
    )
    family, given, _ = AUTHOR
    if person:
        _slot(cl, "authorPerson", f"{author_id(establishment)}^{family}^{given}^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS")
    _slot(cl, "authorInstitution", f"{establishment.name}^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1{establishment.finess}")


def _external(parent: etree._Element, obj: str, scheme: str, value: str, label: str) -> None:
    ei = etree.SubElement(
        parent,
        E.rim("ExternalIdentifier"),
        id=f"urn:uuid:{uuid.uuid4()}",
        registryObject=obj,
        identificationScheme=scheme,
        value=value,
    )
    _name(ei, label)


def signature_document(credentials: OrgCredentials, references: dict[str, bytes], submission_set_uid: str) -> bytes:
    """An XML-DSig signature (enveloping, IHE DSG style) whose ``ds:Manifest`` lists the documents by uniqueId."""
    from signxml import XMLSigner, methods

    cert, key = credentials.load()
    manifest = etree.Element(f"{{{DS}}}Manifest", nsmap={"ds": DS}, Id="IHEManifest")
    for unique_id, data in {submission_set_uid: b"", **references}.items():
        ref = _sub(manifest, f"{{{DS}}}Reference", URI=f"urn:oid:{unique_id}")
        _sub(ref, f"{{{DS}}}DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
        _sub(ref, f"{{{DS}}}DigestValue", base64.b64encode(hashlib.sha256(data).digest()).decode())
    signer = XMLSigner(method=methods.enveloping, signature_algorithm="ecdsa-sha256", digest_algorithm="sha256")
    signed = signer.sign(manifest, key=key, cert=[cert])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def document_unique_id(cda: bytes) -> str:
    root = parse_xml(cda)
    doc_id = root.find(f"{{{HL7}}}id")
    return doc_id.get("root", "") + (f"^{doc_id.get('extension')}" if doc_id.get("extension") else "")


def build_iti41(
    person: Person,
    establishment: Establishment,
    kind: str,
    cda: bytes,
    credentials: OrgCredentials,
    *,
    replaces_entry: str | None = None,
    options: FeedOptions = FeedOptions(),
) -> tuple[etree._Element, dict[str, bytes], str, str]:
    """The ``ProvideAndRegisterDocumentSetRequest`` body and its attachments; returns (body, attachments,
    document entryUUID, document uniqueId)."""
    doc_type = DOCUMENT_TYPES[kind]
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    cx = patient_cx(person.ins, wrong_key=options.wrong_ins_key)
    ss_id, doc_id, sig_id = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    ss_uid = f"2.25.{uuid.uuid4().int}"
    doc_uid = document_unique_id(cda)
    request = etree.Element(
        f"{{{E.XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap={"xdsb": E.XDSB, "lcm": E.LCM, "rim": E.RIM}
    )
    objects = etree.SubElement(
        etree.SubElement(request, f"{{{E.LCM}}}SubmitObjectsRequest"), E.rim("RegistryObjectList")
    )
    package = etree.SubElement(objects, E.rim("RegistryPackage"), id=ss_id)
    _slot(package, "submissionTime", now)
    _name(package, f"Versement {doc_type.display}")
    _author(package, ss_id, E.SS_AUTHOR, establishment, person=False)
    _classification(package, ss_id, E.SS_CONTENT_TYPE, "04", "1.2.250.1.213.2.2", "Hospitalisation de jour")
    _external(package, ss_id, E.SS_PATIENT_ID, cx, "XDSSubmissionSet.patientId")
    _external(package, ss_id, E.SS_SOURCE_ID, f"1.2.250.1.999.{establishment.finess}", "XDSSubmissionSet.sourceId")
    _external(package, ss_id, E.SS_UNIQUE_ID, ss_uid, "XDSSubmissionSet.uniqueId")
    etree.SubElement(
        objects,
        E.rim("Classification"),
        id=f"urn:uuid:{uuid.uuid4()}",
        classifiedObject=ss_id,
        classificationNode=E.SUBMISSION_SET_NODE,
    )

    def entry(
        entry_id: str,
        mime: str,
        data: bytes,
        codes: dict[str, tuple[str, str, str]],
        unique_id: str,
        title: str,
        person_author: bool,
    ) -> None:
        element = etree.SubElement(
            objects, E.rim("ExtrinsicObject"), id=entry_id, mimeType=mime, objectType=E.DOC_ENTRY_OBJECT_TYPE
        )
        _slot(element, "creationTime", now)
        _slot(element, "hash", hashlib.sha1(data).hexdigest())  # noqa: S324 - XDS hash is SHA-1
        _slot(element, "size", str(len(data)))
        _slot(element, "languageCode", "fr-FR")
        _slot(element, "sourcePatientId", cx)
        _slot(
            element,
            "sourcePatientInfo",
            f"PID-5|{person.family}^{person.given}^^^^^L",
            f"PID-7|{person.birth_date:%Y%m%d}",
            f"PID-8|{person.sex}",
        )
        _name(element, title)
        _author(element, entry_id, E.DOC_AUTHOR, establishment, person=person_author)
        for scheme, (code, system, label) in codes.items():
            _classification(element, entry_id, scheme, code, system, label)
        _external(element, entry_id, E.DOC_PATIENT_ID, cx, "XDSDocumentEntry.patientId")
        _external(element, entry_id, E.DOC_UNIQUE_ID, unique_id, "XDSDocumentEntry.uniqueId")
        assoc = etree.SubElement(
            objects,
            E.rim("Association"),
            id=f"urn:uuid:{uuid.uuid4()}",
            associationType=E.HAS_MEMBER,
            sourceObject=ss_id,
            targetObject=entry_id,
        )
        _slot(assoc, "SubmissionSetStatus", "Original")

    type_code = options.type_code_override or doc_type.code
    entry(
        doc_id,
        options.mime_type,
        cda,
        {
            E.CLASS_CODE: (options.class_code or CLASS_CODES.get(kind, "10"), "1.2.250.1.213.1.1.4.1", "Classe"),
            E.TYPE_CODE: (type_code, doc_type.code_system, doc_type.display),
            E.FORMAT_CODE: (*FORMAT_CODES[kind], doc_type.display),
            E.CONFIDENTIALITY_CODE: ("N", "2.16.840.1.113883.5.25", "Normal"),
            E.HEALTHCARE_FACILITY_TYPE: ("SA17", "1.2.250.1.71.4.2.4", "Etablissement pour personnes âgées"),
            E.PRACTICE_SETTING: ("ESSMS", "1.2.250.1.213.1.1.4.9", "Etablissement social ou médico-social"),
        },
        doc_uid,
        doc_type.title,
        True,
    )
    attachments = {f"doc.{uuid.uuid4().hex}@dui-reference.test": cda}
    documents = {doc_id: next(iter(attachments))}
    if replaces_entry and options.rplc_association:
        etree.SubElement(
            objects,
            E.rim("Association"),
            id=f"urn:uuid:{uuid.uuid4()}",
            associationType=E.RPLC,
            sourceObject=doc_id,
            targetObject=replaces_entry,
        )
    if options.signature_document:
        signed = {doc_uid: cda + b" " if options.forged_signature else cda}
        signature = signature_document(credentials, signed, ss_uid)
        entry(
            sig_id,
            "text/xml",
            signature,
            {
                E.CLASS_CODE: ("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN", "Digital Signature"),
                E.TYPE_CODE: ("E1762", "ASTM", "Full Document"),
                E.FORMAT_CODE: ("http://www.w3.org/2000/09/xmldsig#", "URN", "Default Signature Style"),
                E.CONFIDENTIALITY_CODE: ("N", "2.16.840.1.113883.5.25", "Normal"),
                E.HEALTHCARE_FACILITY_TYPE: ("SA17", "1.2.250.1.71.4.2.4", "Etablissement pour personnes âgées"),
                E.PRACTICE_SETTING: ("ESSMS", "1.2.250.1.213.1.1.4.9", "Etablissement social ou médico-social"),
            },
            f"2.25.{uuid.uuid4().int}",
            "Source",
            False,
        )
        assoc = etree.SubElement(
            objects,
            E.rim("Association"),
            id=f"urn:uuid:{uuid.uuid4()}",
            associationType=E.SIGNS,
            sourceObject=sig_id,
            targetObject=ss_id,
        )
        _slot(assoc, "SubmissionSetStatus", "Original")
        cid = f"sig.{uuid.uuid4().hex}@dui-reference.test"
        attachments[cid] = signature
        documents[sig_id] = cid
    for entry_id, cid in documents.items():
        document = etree.SubElement(request, f"{{{E.XDSB}}}Document", id=entry_id)
        etree.SubElement(document, f"{{{XOP}}}Include", nsmap={"xop": XOP}, href=f"cid:{cid}")
    return request, attachments, doc_id, doc_uid


# ------------------------------------------------------------------------------------------------- ITI-18 / 43 / 57
def build_find_documents(person: Person, *, with_status: bool = True) -> etree._Element:
    request = etree.Element(f"{{{E.QUERY}}}AdhocQueryRequest", nsmap={"query": E.QUERY, "rim": E.RIM})
    etree.SubElement(request, f"{{{E.QUERY}}}ResponseOption", returnComposedObjects="true", returnType="LeafClass")
    query = etree.SubElement(request, E.rim("AdhocQuery"), id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d")
    _slot(query, "$XDSDocumentEntryPatientId", f"'{person.ins.to_xds()}'")
    if with_status:
        _slot(query, "$XDSDocumentEntryStatus", f"('{E.STATUS_APPROVED}')")
    return request


def build_retrieve(repository_unique_id: str, unique_id: str) -> etree._Element:
    request = etree.Element(f"{{{E.XDSB}}}RetrieveDocumentSetRequest", nsmap={"xdsb": E.XDSB})
    item = etree.SubElement(request, f"{{{E.XDSB}}}DocumentRequest")
    etree.SubElement(item, f"{{{E.XDSB}}}RepositoryUniqueId").text = repository_unique_id
    etree.SubElement(item, f"{{{E.XDSB}}}DocumentUniqueId").text = unique_id
    return request


def build_confidentiality_update(
    person: Person,
    establishment: Establishment,
    entry_uuid: str,
    version: int,
    unique_id: str,
    type_code: str,
    codes: list[tuple[str, str]],
) -> etree._Element:
    """ITI-57 metadata update: a new DocumentEntry version (same lid) carrying the new confidentiality codes."""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    sor = etree.Element(f"{{{E.LCM}}}SubmitObjectsRequest", nsmap={"lcm": E.LCM, "rim": E.RIM})
    objects = etree.SubElement(sor, E.rim("RegistryObjectList"))
    ss_id, new_id = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    package = etree.SubElement(objects, E.rim("RegistryPackage"), id=ss_id)
    _slot(package, "submissionTime", now)
    _author(package, ss_id, E.SS_AUTHOR, establishment, person=False)
    _external(package, ss_id, E.SS_PATIENT_ID, person.ins.to_xds(), "XDSSubmissionSet.patientId")
    _external(package, ss_id, E.SS_SOURCE_ID, f"1.2.250.1.999.{establishment.finess}", "XDSSubmissionSet.sourceId")
    _external(package, ss_id, E.SS_UNIQUE_ID, f"2.25.{uuid.uuid4().int}", "XDSSubmissionSet.uniqueId")
    etree.SubElement(
        objects,
        E.rim("Classification"),
        id=f"urn:uuid:{uuid.uuid4()}",
        classifiedObject=ss_id,
        classificationNode=E.SUBMISSION_SET_NODE,
    )
    element = etree.SubElement(
        objects,
        E.rim("ExtrinsicObject"),
        id=new_id,
        lid=entry_uuid,
        mimeType="text/xml",
        objectType=E.DOC_ENTRY_OBJECT_TYPE,
    )
    for code, system in codes:
        _classification(element, new_id, E.CONFIDENTIALITY_CODE, code, system, code)
    _classification(element, new_id, E.TYPE_CODE, type_code, "2.16.840.1.113883.6.1", type_code)
    _external(element, new_id, E.DOC_PATIENT_ID, person.ins.to_xds(), "XDSDocumentEntry.patientId")
    _external(element, new_id, E.DOC_UNIQUE_ID, unique_id, "XDSDocumentEntry.uniqueId")
    assoc = etree.SubElement(
        objects,
        E.rim("Association"),
        id=f"urn:uuid:{uuid.uuid4()}",
        associationType=E.HAS_MEMBER,
        sourceObject=ss_id,
        targetObject=new_id,
    )
    _slot(assoc, "SubmissionSetStatus", "Original")
    _slot(assoc, "PreviousVersion", str(version))
    return sor


def build_status_update(
    person: Person, establishment: Establishment, entry_uuid: str, original: str, new: str
) -> etree._Element:
    """ITI-57 availability status update (archive / delete)."""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    sor = etree.Element(f"{{{E.LCM}}}SubmitObjectsRequest", nsmap={"lcm": E.LCM, "rim": E.RIM})
    objects = etree.SubElement(sor, E.rim("RegistryObjectList"))
    ss_id = f"urn:uuid:{uuid.uuid4()}"
    package = etree.SubElement(objects, E.rim("RegistryPackage"), id=ss_id)
    _slot(package, "submissionTime", now)
    _external(package, ss_id, E.SS_PATIENT_ID, person.ins.to_xds(), "XDSSubmissionSet.patientId")
    etree.SubElement(
        objects,
        E.rim("Classification"),
        id=f"urn:uuid:{uuid.uuid4()}",
        classifiedObject=ss_id,
        classificationNode=E.SUBMISSION_SET_NODE,
    )
    assoc = etree.SubElement(
        objects,
        E.rim("Association"),
        id=f"urn:uuid:{uuid.uuid4()}",
        associationType=E.UPDATE_AVAILABILITY_STATUS,
        sourceObject=ss_id,
        targetObject=entry_uuid,
    )
    _slot(assoc, "OriginalStatus", original)
    _slot(assoc, "NewStatus", new)
    return sor
