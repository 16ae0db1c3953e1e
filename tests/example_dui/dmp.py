"""Example DUI, DMP (Dossier Médical Partagé / Mon espace santé): feed, replace, find, retrieve and update the
person's documents.

Specifications followed (this module shares no code with the reference DUI):
- transport: SOAP 1.2 (W3C 2007) over HTTPS with mutual TLS (the establishment's organisation certificate of the
  IGC-Santé-like test PKI), WS-Addressing 1.0 headers ``Action`` / ``MessageID`` / ``To`` / ``ReplyTo``, and
  XOP 1.0 + SOAP MTOM (``multipart/related; type="application/xop+xml"``) for ITI-41 and ITI-43, as IHE ITI TF-2x
  Appendix V asks;
- security: a VIHF 3.0 assertion (ANS "DMP - guide d'intégration", shaped like the ANS DRIM-M ITI-41 samples): a
  SAML 2.0 ``saml2:Assertion`` in the WS-Security ``wsse:Security`` header, enveloped-signed (XML-DSig, exclusive
  C14N, SHA-256) with the same organisation certificate, attributes ``VIHF_Version`` 3.0, ``Secteur_Activite``,
  ``Ressource_URN`` ``urn:dmp``, ``resource-id`` (the INS as an XDS CX), ``Identifiant_Structure``, ``LPS_*``,
  ``subject:role``, ``Authentification_Mode`` INDIRECTE and ``purposeofuse`` normal;
- TD0.2, test of existence and authorisation: HL7 v3 ``PRPA_IN201307UV02`` query by ``patientIdentifier``, answer
  ``PRPA_IN201308UV02`` (``queryResponseCode`` OK / NF, ``attentionLine`` AUTORISATION, acknowledgement detail
  ``DMPClosed``);
- ITI-41 Provide and Register Document Set-b (IHE ITI TF-2b §3.41, metadata ITI TF-3 §4.2 with the ANS CI-SIS
  "Volet partage de documents de santé" values: patientId = INS ``valeur^^^&OID&ISO^NH``, author IDNPS / IDNST,
  classCode TRE_A03, typeCode LOINC, formatCode TRE_A06, healthcareFacilityTypeCode TRE_R02, practiceSettingCode
  TRE_A01 ``ESSMS``), with the IHE DSG signature document (an XAdES enveloping signature whose ``ds:Manifest``
  lists the documents by uniqueId, typeCode ``E1762``, associated to the submission set by ``signs``); a new
  version of a document keeps the CDA ``setId``, increments ``versionNumber``, declares ``relatedDocument``
  RPLC and is associated to the previous DocumentEntry by an RPLC association (ITI TF-3 §4.2.2.2);
- ITI-18 FindDocuments (ITI TF-2a §3.18), ITI-43 Retrieve Document Set (ITI TF-2b §3.43), ITI-57 Update Document
  Set (XDS Metadata Update: a new DocumentEntry version with the same ``lid`` and ``PreviousVersion`` for the
  confidentiality codes — ``MASQUE_PS``, ``INVISIBLE_PATIENT`` of 1.2.250.1.213.1.1.4.13 — or an
  ``UpdateAvailabilityStatus`` association to archive / delete);
- CDA R2 documents with the CI-SIS header ("Structuration minimale des documents de santé"), valid against
  ``CDA_extended.xsd``.

A refusal by the DMP (closed DMP, no DMP, authorisation refused, registry errors, SOAP faults) is shown to the user
as a failure with its reason in French. What the DUI fed (bytes, identifiers, versions, statuses) is kept in
``session.state["dmp"]``.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime
from email.message import Message
from typing import Any
from urllib.parse import unquote

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lxml import etree
from lxml.builder import ElementMaker
from signxml import XMLSigner, methods
from signxml.xades import XAdESSigner

from example_dui import Outcome, Session

SOAP, WSA = "http://www.w3.org/2003/05/soap-envelope", "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SAML, DS, XOP = (
    "urn:oasis:names:tc:SAML:2.0:assertion",
    "http://www.w3.org/2000/09/xmldsig#",
    "http://www.w3.org/2004/08/xop/include",
)
HL7, XSI = "urn:hl7-org:v3", "http://www.w3.org/2001/XMLSchema-instance"
RIM, LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0", "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RS, QUERY, XDSB = (
    "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0",
    "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0",
    "urn:ihe:iti:xds-b:2007",
)
NS = {"soap": SOAP, "rim": RIM, "rs": RS, "xdsb": XDSB, "xop": XOP, "hl7": HL7}

ITI41, ITI18 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b", "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43, ITI57 = "urn:ihe:iti:2007:RetrieveDocumentSet", "urn:ihe:iti:2010:UpdateDocumentSet"
TD02 = "urn:hl7-org:v3:PRPA_IN201307UV02"
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
XDS = {  # ebRIM identifiers of ITI TF-3 §4.2.5
    "entry": "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1",
    "ss": "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd",
    "doc_pid": "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
    "doc_uid": "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
    "ss_pid": "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
    "ss_uid": "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
    "ss_src": "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832",
    "ss_author": "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d",
    "ss_content": "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500",
    "author": "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d",
    "class": "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
    "type": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
    "format": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
    "conf": "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f",
    "facility": "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1",
    "practice": "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead",
}
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
RPLC, SIGNS = "urn:ihe:iti:2007:AssociationType:RPLC", "urn:ihe:iti:2007:AssociationType:signs"
UPDATE_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
APPROVED, DEPRECATED = (
    "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
    "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated",
)
STATUSES = {
    "archiver": "urn:asip:ci-sis:2010:StatusType:Archived",
    "supprimer": "urn:asip:ci-sis:2010:StatusType:Deleted",
}
HL7_CONF, DMP_CONF = "2.16.840.1.113883.5.25", "1.2.250.1.213.1.1.4.13"
#: ITI-57 confidentiality changes: DMP codes (1.2.250.1.213.1.1.4.13) added / removed, and what the user is told
CONFIDENTIALITY = {
    "masquer": ("MASQUE_PS", True, "masqué aux professionnels"),
    "demasquer": ("MASQUE_PS", False, "rendu visible aux professionnels"),
    "invisible-patient": ("INVISIBLE_PATIENT", True, "rendu invisible à la personne"),
}
LOINC = "2.16.840.1.113883.6.1"
#: document kinds: (code, code system, label, volet templateId, version, classCode TRE_A03, formatCode TRE_A06)
KINDS = {
    "DLU": (
        "74207-2",
        LOINC,
        "Dossier de liaison d'urgence",
        "1.2.250.1.213.1.1.1.22",
        "2022.01",
        "11",
        "urn:asip:ci-sis:dlu:2015",
    ),
    "VSM": (
        "SYNTH",
        "1.2.250.1.213.1.1.4.12",
        "Synthèse",
        "1.2.250.1.213.1.1.1.13",
        "201310",
        "11",
        "urn:asip:ci-sis:vsm:2012",
    ),
    "LDL-SES": (
        "11490-0",
        LOINC,
        "Lettre de liaison à la sortie d'un établissement de soins",
        "1.2.250.1.213.1.1.1.29",
        "2022.01",
        "10",
        "urn:asip:ci-sis:ldl-ses:2017",
    ),
    "VAC": (
        "11369-6",
        LOINC,
        "Historique de vaccinations",
        "1.2.250.1.213.1.1.1.37",
        "2023.01",
        "11",
        "urn:asip:ci-sis:vac:2019",
    ),
}
CLASSES = {"10": "Compte rendu", "11": "Synthèse"}
FACILITY = {"EHPAD": ("SA17", "Etablissement pour personnes âgées")}  # TRE_R02 secteur d'activité, by category
OTHER_FACILITY = ("SA41", "Autre établissement du domaine social ou médico-social")
USER = (
    "IDE-001",
    "LEROY",
    "Sophie",
    "60",
    "Infirmier",
)  # the staff member the DUI acts for: local id, names, G15 profession
LPS = {
    "LPS_ID": "EXEMPLE-DUI",
    "LPS_Nom": "Exemple de DUI",
    "LPS_Version": "1.0.0",
    "LPS_ID_HOMOLOGATION_DMP": "EXEMPLE-DUI-HOMOLOGATION",
}
# No DTD, no entities, no network: an answer is data, never instructions to the parser.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True)


class DmpFailure(Exception):
    """The DMP refused, or could not be reached: the reason is shown to the user (French)."""


# -- identities -------------------------------------------------------------------------------------------------
def _now(fmt: str = "%Y%m%d%H%M%S") -> str:
    return datetime.now(UTC).strftime(fmt)


def _first(element: etree._Element, xpath: str, **variables: str) -> str | None:
    """The first result of ``xpath`` (namespaces of :data:`NS`) as text, ``None`` when nothing matches."""
    found = element.xpath(xpath, namespaces=NS, **variables)
    return str(found[0]) if found else None


def _oid() -> str:
    return f"2.25.{uuid.uuid4().int}"  # ITU-T X.667 UUID-based OID


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def patient_cx(person: dict[str, Any]) -> str:
    """The INS as an XDS CX, as the CI-SIS requires: ``valeur^^^&OID&ISO^NH``."""
    return f"{person['ins']}^^^&{person['ins_oid']}&ISO^NH"


def user_id(establishment: dict[str, Any]) -> str:
    """National identifier of a staff member without RPPS: ``3`` + FINESS + ``/`` + local id (PS_IdNat rules)."""
    return f"3{establishment['finess']}/{USER[0]}"


def author_person(establishment: dict[str, Any]) -> str:
    return f"{user_id(establishment)}^{USER[1]}^{USER[2]}^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"


def author_institution(establishment: dict[str, Any]) -> str:
    return f"{establishment['name']}^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1{establishment['finess']}"


def certificate_name(session: Session, establishment: dict[str, Any]) -> str:
    """The establishment's organisation certificate for the DMP: ``DMP-<FINESS>`` when the harness issued one, else
    its organisation certificate ``ESSMS-<FINESS>`` (same test PKI, OU = ``1`` + FINESS)."""
    names = session.body.get("client_certificates", {})
    for name in (f"DMP-{establishment['finess']}", "DMP", f"ESSMS-{establishment['finess']}"):
        if name in names:
            return name
    raise DmpFailure(
        f"aucun certificat d'organisation pour le DMP dans la session (présents : {', '.join(sorted(names)) or 'aucun'})"
    )


# -- VIHF ---------------------------------------------------------------------------------------------------------
def build_vihf(
    session: Session, cert_name: str, person: dict[str, Any], establishment: dict[str, Any]
) -> etree._Element:
    """The VIHF 3.0 assertion, enveloped-signed with the organisation certificate (placed after ``Issuer``)."""
    pem = session.body["client_certificates"][cert_name]
    cert, key = (
        x509.load_pem_x509_certificate(pem["cert_pem"].encode()),
        load_pem_private_key(pem["key_pem"].encode(), None),
    )
    S = ElementMaker(namespace=SAML, nsmap={"saml2": SAML})
    assertion_id, now = f"_{uuid.uuid4()}", _now("%Y-%m-%dT%H:%M:%SZ")

    def coded(tag: str, code: str, system: str, label: str) -> etree._Element:
        element = etree.Element(
            f"{{{HL7}}}{tag}", nsmap={None: HL7, "xsi": XSI}, code=code, codeSystem=system, displayName=label
        )
        element.set(f"{{{XSI}}}type", "CE")
        return element

    facility = FACILITY.get(establishment.get("category", ""), OTHER_FACILITY)
    attributes = {
        "VIHF_Version": "3.0",
        "Secteur_Activite": f"{facility[0]}^1.2.250.1.71.4.2.4",
        "Ressource_URN": "urn:dmp",
        "urn:oasis:names:tc:xspa:1.0:subject:subject-id": f"{USER[2]} {USER[1]}",
        "Identifiant_Structure": f"1{establishment['finess']}",
        **LPS,
        "urn:oasis:names:tc:xacml:2.0:resource:resource-id": patient_cx(person),
        "Authentification_Mode": "INDIRECTE",
        "urn:oasis:names:tc:xacml:2.0:subject:role": coded("Role", USER[3], "1.2.250.1.71.1.2.7", USER[4]),
        "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse": coded(
            "PurposeOfUse", "normal", "1.2.250.1.213.1.1.4.248", "Acces normal"
        ),
    }
    assertion = S.Assertion(
        S.Issuer(cert.subject.rfc4514_string(), Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"),
        etree.Element(f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS}),  # where signxml puts the signature
        S.Subject(S.NameID(user_id(establishment))),
        S.AuthnStatement(
            S.AuthnContext(S.AuthnContextClassRef("urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient")), AuthnInstant=now
        ),
        S.AttributeStatement(*(S.Attribute(S.AttributeValue(value), Name=name) for name, value in attributes.items())),
        ID=assertion_id,
        IssueInstant=now,
        Version="2.0",
    )
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=_algorithm(key),
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    return signer.sign(assertion, key=key, cert=pem["cert_pem"], reference_uri=assertion_id, id_attribute="ID")


def _algorithm(key: object) -> str:
    return "ecdsa-sha256" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsa-sha256"


# -- SOAP 1.2, WS-Addressing, MTOM ----------------------------------------------------------------------------------
def envelope(action: str, to: str, payload: etree._Element, vihf: etree._Element) -> bytes:
    S, A = ElementMaker(namespace=SOAP, nsmap={"soap": SOAP}), ElementMaker(namespace=WSA, nsmap={"wsa": WSA})
    header = S.Header(
        A.Action(action, {f"{{{SOAP}}}mustUnderstand": "true"}),
        A.MessageID(_urn()),
        A.To(to),
        A.ReplyTo(A.Address("http://www.w3.org/2005/08/addressing/anonymous")),
        etree.Element(f"{{{WSSE}}}Security", nsmap={"wsse": WSSE}),
    )
    header[-1].append(vihf)
    return etree.tostring(S.Envelope(header, S.Body(payload)), xml_declaration=True, encoding="UTF-8")


def mtom(soap: bytes, action: str, attachments: dict[str, bytes]) -> tuple[bytes, str]:
    """XOP package: the SOAP envelope as root part, then one binary part per ``xop:Include`` (Content-ID)."""
    boundary, start = f"MIMEBoundary_{uuid.uuid4().hex}", f"root.{uuid.uuid4().hex}@exemple-dui"
    parts = [
        (
            f'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <{start}>",
            soap,
        )
    ]
    parts += [
        (f"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{cid}>", data)
        for cid, data in attachments.items()
    ]
    body = b"".join(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n" for head, data in parts)
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; start="<{start}>"; '
        f'start-info="application/soap+xml"; action="{action}"'
    )
    return body + f"--{boundary}--\r\n".encode(), content_type


def read_answer(content_type: str, body: bytes) -> tuple[etree._Element, dict[str, bytes]]:
    """The first child of ``soap:Body`` and the MTOM parts by Content-ID; a SOAP fault raises :class:`DmpFailure`."""
    header = Message()
    header["Content-Type"] = content_type
    parts: dict[str, bytes] = {}
    root = body
    if header.get_content_type() == "multipart/related":
        boundary, start = str(header.get_param("boundary") or ""), str(header.get_param("start") or "").strip("<>")
        root = b""
        for chunk in (b"\r\n" + body).split(b"\r\n--" + boundary.encode())[1:]:
            if chunk.startswith(b"--"):
                break
            head, _, data = chunk.partition(b"\r\n\r\n")
            fields = dict(line.split(":", 1) for line in head.decode("latin-1").split("\r\n") if ":" in line)
            fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
            if fields.get("content-transfer-encoding", "binary").lower() == "base64":
                data = base64.b64decode(data)
            cid = fields.get("content-id", "").strip("<>")
            if not root and (cid == start or not start):
                root = data
            else:
                parts[cid] = data
    try:
        element = etree.fromstring(root, PARSER).find("soap:Body/*", NS)
    except etree.XMLSyntaxError as exc:
        raise DmpFailure(f"réponse du DMP illisible : {exc}") from None
    if element is None:
        raise DmpFailure("réponse du DMP sans contenu SOAP 1.2")
    if element.tag == f"{{{SOAP}}}Fault":
        reason = element.findtext("soap:Reason/soap:Text", "", NS).strip()
        code = element.findtext("soap:Detail/errorCode", "", NS) or element.findtext("soap:Code/soap:Value", "", NS)
        raise DmpFailure(f"le DMP a refusé la requête ({code}) : {reason}")
    return element, parts


def call(
    session: Session,
    client: httpx.Client,
    service: str,
    action: str,
    payload: etree._Element,
    body: dict[str, Any],
    attachments: dict[str, bytes] | None = None,
) -> tuple[etree._Element, dict[str, bytes]]:
    """One SOAP request to the DMP ``service`` (MTOM when ``attachments`` is not ``None``)."""
    url = session.endpoint("dmp", service)
    person, establishment = body["person"], body["establishment"]
    soap = envelope(
        action, url, payload, build_vihf(session, certificate_name(session, establishment), person, establishment)
    )
    if attachments is None:
        content, content_type = soap, f'application/soap+xml; charset=UTF-8; action="{action}"'
    else:
        content, content_type = mtom(soap, action, attachments)
    try:
        response = client.post(url, content=content, headers={"Content-Type": content_type})
    except httpx.HTTPError as exc:
        raise DmpFailure(f"DMP injoignable : {exc}") from None
    return read_answer(response.headers.get("content-type", ""), response.content)


def client(session: Session, establishment: dict[str, Any]) -> httpx.Client:
    """HTTPS with mutual TLS: the test PKI's CA and the establishment's organisation certificate."""
    return httpx.Client(verify=session.ssl_context(certificate_name(session, establishment)), timeout=30.0)


REFUSALS = {  # registry error codes -> what the user is told
    "DMPClosed": "le DMP de la personne est fermé",
    "DMPAccessDenied": "l'établissement n'est pas autorisé à accéder au DMP de la personne",
    "XDSUnknownPatientId": "la personne n'a pas de DMP (INS inconnu du DMP)",
}


def check_registry(element: etree._Element) -> None:
    """Raise :class:`DmpFailure` unless the ``rs:RegistryResponse`` (or the query response) says Success."""
    is_response = etree.QName(element).localname in ("RegistryResponse", "AdhocQueryResponse")
    response = element if is_response else element.find("rs:RegistryResponse", NS)
    if response is None:
        raise DmpFailure("réponse du DMP sans RegistryResponse")
    if response.get("status", "").endswith(":Success"):
        return
    errors = [
        (e.get("errorCode", ""), e.get("codeContext", ""))
        for e in response.iter(f"{{{RS}}}RegistryError")
        if not e.get("severity", "").endswith(":Warning")
    ]
    reasons = [REFUSALS.get(code) or f"{code} : {context}" for code, context in errors]
    raise DmpFailure(
        "refus du DMP : " + ("; ".join(dict.fromkeys(reasons)) or response.get("status", "statut inconnu"))
    )


# -- TD0.2 ------------------------------------------------------------------------------------------------------------
def build_td02(person: dict[str, Any], establishment: dict[str, Any]) -> etree._Element:
    """``PRPA_IN201307UV02``: does the person have an open DMP, and may the establishment use it?"""
    H = ElementMaker(namespace=HL7, nsmap={None: HL7})
    device = f"1.2.250.1.999.{establishment['finess']}"  # the DUI instance of the establishment (example root)
    return H.PRPA_IN201307UV02(
        H.id(root=f"{device}.1", extension=uuid.uuid4().hex),
        H.creationTime(value=_now()),
        H.interactionId(root="2.16.840.1.113883.1.6", extension="PRPA_IN201307UV02"),
        H.processingCode(code="P"),
        H.processingModeCode(code="T"),
        H.acceptAckCode(code="AL"),
        H.receiver(
            H.device(H.id(root="1.2.250.1.213.4.1.1.1"), classCode="DEV", determinerCode="INSTANCE"), typeCode="RCV"
        ),
        H.sender(H.device(H.id(root=device), classCode="DEV", determinerCode="INSTANCE"), typeCode="SND"),
        H.controlActProcess(
            H.queryByParameter(
                H.queryId(root=f"{device}.2", extension=uuid.uuid4().hex),
                H.statusCode(code="new"),
                H.parameterList(
                    H.patientIdentifier(
                        H.value(root=person["ins_oid"], extension=person["ins"]), H.semanticsText("Patient.id")
                    )
                ),
            ),
            classCode="CACT",
            moodCode="EVN",
        ),
        ITSVersion="XML_1.0",
    )


def check_dmp(session: Session, http: httpx.Client, body: dict[str, Any]) -> None:
    """TD0.2: raise :class:`DmpFailure` when the DMP is absent, closed or the authorisation is not valid."""
    answer, _ = call(session, http, "patients", TD02, build_td02(body["person"], body["establishment"]), body)
    details = answer.xpath("hl7:acknowledgement/hl7:acknowledgementDetail/hl7:code/@code", namespaces=NS)
    status = _first(answer, "hl7:controlActProcess/hl7:subject/hl7:registrationEvent/hl7:statusCode/@code")
    if "DMPClosed" in details or status == "completed":
        raise DmpFailure("le DMP de la personne est fermé : document non versé")
    response = _first(answer, "hl7:controlActProcess/hl7:queryAck/hl7:queryResponseCode/@code")
    if response == "NF":
        raise DmpFailure("la personne n'a pas de DMP : document non versé")
    if response != "OK":
        text = "; ".join(answer.xpath("hl7:acknowledgement/hl7:acknowledgementDetail/hl7:text/text()", namespaces=NS))
        raise DmpFailure(f"test d'existence du DMP refusé ({response or 'sans réponse'}) {text}".strip())
    authorisation = _first(
        answer, "hl7:controlActProcess/hl7:attentionLine[hl7:keyWordText/@code='AUTORISATION']/hl7:value/@code"
    )
    if authorisation != "VALIDE":
        raise DmpFailure(
            f"l'établissement n'est pas autorisé à alimenter le DMP de la personne (autorisation {authorisation or 'absente'})"
        )


# -- CDA --------------------------------------------------------------------------------------------------------------
def build_cda(
    person: dict[str, Any], establishment: dict[str, Any], kind: str, previous: dict[str, Any] | None
) -> bytes:
    """The CDA R2 document (CI-SIS header); a new version keeps the setId and declares ``relatedDocument`` RPLC."""
    code, system, label, template, version, _, _ = KINDS[kind]
    H = ElementMaker(namespace=HL7, nsmap={None: HL7})
    now = _now("%Y%m%d%H%M%S+0000")
    facility = FACILITY.get(establishment.get("category", ""), OTHER_FACILITY)

    def organisation(tag: str) -> etree._Element:
        return getattr(H, tag)(
            H.id(root="1.2.250.1.71.4.2.2", extension=f"1{establishment['finess']}"), H.name(establishment["name"])
        )

    def staff(tag: str) -> etree._Element:
        return getattr(H, tag)(
            H.id(root="1.2.250.1.71.4.2.1", extension=user_id(establishment)),
            H.code(code=USER[3], codeSystem="1.2.250.1.71.1.2.7", displayName=USER[4]),
            H.assignedPerson(H.name(H.given(USER[2]), H.family(USER[1]))),
            organisation("representedOrganization"),
        )

    set_id, number = (previous["set_id"], previous["version"] + 1) if previous else (_oid(), 1)
    related = (
        [
            H.relatedDocument(
                H.parentDocument(
                    H.id(root=previous["unique_id"]),
                    H.setId(root=set_id),
                    H.versionNumber(value=str(previous["version"])),
                ),
                typeCode="RPLC",
            )
        ]
        if previous
        else []
    )
    document = H.ClinicalDocument(
        H.realmCode(code="FR"),
        H.typeId(root="2.16.840.1.113883.1.3", extension="POCD_HD000040"),
        H.templateId(root="2.16.840.1.113883.2.8.2.1"),
        H.templateId(root="1.2.250.1.213.1.1.1.1"),
        H.templateId(root=template, extension=version),
        H.id(root=_oid()),
        H.code(code=code, codeSystem=system, displayName=label),
        H.title(label),
        H.effectiveTime(value=now),
        H.confidentialityCode(code="N", codeSystem=HL7_CONF, displayName="Normal"),
        H.languageCode(code="fr-FR"),
        H.setId(root=set_id),
        H.versionNumber(value=str(number)),
        H.recordTarget(
            H.patientRole(
                H.id(root=person["ins_oid"], extension=person["ins"]),
                H.patient(
                    H.name(H.given(person["given"], qualifier="BR"), H.family(person["family"], qualifier="BR")),
                    H.administrativeGenderCode(code=person["sex"], codeSystem="2.16.840.1.113883.5.1"),
                    H.birthTime(value=person["birth_date"].replace("-", "")),
                    classCode="PSN",
                ),
            )
        ),
        H.author(H.time(value=now), staff("assignedAuthor")),
        H.custodian(H.assignedCustodian(organisation("representedCustodianOrganization"))),
        H.legalAuthenticator(H.time(value=now), H.signatureCode(code="S"), staff("assignedEntity")),
        H.documentationOf(H.serviceEvent(H.effectiveTime(H.low(value=now)))),
        *related,
        H.componentOf(
            H.encompassingEncounter(
                H.effectiveTime(H.low(value=now)),
                H.location(
                    H.healthCareFacility(
                        H.code(code=facility[0], codeSystem="1.2.250.1.71.4.2.4", displayName=facility[1])
                    )
                ),
            )
        ),
        H.component(
            H.structuredBody(
                H.component(
                    H.section(
                        H.code(code="34117-2", codeSystem=LOINC, displayName="Historique et clinique"),
                        H.title("Informations transmises"),
                        H.text(f"{label} de {person['given']} {person['family']}, établi par {establishment['name']}."),
                    )
                )
            )
        ),
    )
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")


# -- ITI-41 metadata ------------------------------------------------------------------------------------------------
def _slot(parent: etree._Element, name: str, *values: str) -> None:
    values_el = etree.SubElement(etree.SubElement(parent, f"{{{RIM}}}Slot", name=name), f"{{{RIM}}}ValueList")
    for value in values:
        etree.SubElement(values_el, f"{{{RIM}}}Value").text = value


def _name(parent: etree._Element, text: str) -> None:
    etree.SubElement(etree.SubElement(parent, f"{{{RIM}}}Name"), f"{{{RIM}}}LocalizedString", value=text)


def _coded(parent: etree._Element, scheme: str, code: str, system: str, label: str) -> None:
    element = etree.SubElement(
        parent,
        f"{{{RIM}}}Classification",
        id=_urn(),
        classificationScheme=scheme,
        classifiedObject=parent.get("id", ""),
        nodeRepresentation=code,
    )
    _slot(element, "codingScheme", system)
    _name(element, label)


def _external(parent: etree._Element, scheme: str, value: str, label: str) -> None:
    element = etree.SubElement(
        parent,
        f"{{{RIM}}}ExternalIdentifier",
        id=_urn(),
        registryObject=parent.get("id", ""),
        identificationScheme=scheme,
        value=value,
    )
    _name(element, label)


def _author(parent: etree._Element, scheme: str, establishment: dict[str, Any]) -> None:
    element = etree.SubElement(
        parent,
        f"{{{RIM}}}Classification",
        id=_urn(),
        classificationScheme=scheme,
        classifiedObject=parent.get("id", ""),
        nodeRepresentation="",
    )
    _slot(element, "authorPerson", author_person(establishment))
    _slot(element, "authorInstitution", author_institution(establishment))


def _association(objects: etree._Element, kind: str, source: str, target: str, **slots: str) -> None:
    element = etree.SubElement(
        objects, f"{{{RIM}}}Association", id=_urn(), associationType=kind, sourceObject=source, targetObject=target
    )
    for name, value in slots.items():
        _slot(element, name, value)


def submission_set(objects: etree._Element, person: dict[str, Any], establishment: dict[str, Any], title: str) -> str:
    """The XDSSubmissionSet (RegistryPackage + its classification node); returns its id."""
    package = etree.SubElement(objects, f"{{{RIM}}}RegistryPackage", id=_urn())
    _slot(package, "submissionTime", _now())
    _name(package, title)
    _author(package, XDS["ss_author"], establishment)
    _coded(package, XDS["ss_content"], "04", "1.2.250.1.213.2.2", "Hospitalisation de jour")
    _external(package, XDS["ss_pid"], patient_cx(person), "XDSSubmissionSet.patientId")
    source = f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, 'exemple-dui.' + establishment['finess']).int}"  # this DUI instance
    _external(package, XDS["ss_src"], source, "XDSSubmissionSet.sourceId")
    _external(package, XDS["ss_uid"], _oid(), "XDSSubmissionSet.uniqueId")
    etree.SubElement(
        objects, f"{{{RIM}}}Classification", id=_urn(), classifiedObject=package.get("id"), classificationNode=XDS["ss"]
    )
    return package.get("id", "")


def document_entry(
    objects: etree._Element,
    person: dict[str, Any],
    establishment: dict[str, Any],
    data: bytes,
    unique_id: str,
    title: str,
    codes: dict[str, tuple[str, str, str]],
) -> etree._Element:
    """One XDSDocumentEntry (stable, ``text/xml``) with the French mandatory attributes."""
    entry = etree.SubElement(
        objects, f"{{{RIM}}}ExtrinsicObject", id=_urn(), mimeType="text/xml", objectType=XDS["entry"]
    )
    slots = {
        "creationTime": _now(),
        "hash": hashlib.sha1(data).hexdigest(),
        "size": str(len(data)),  # noqa: S324 - XDS hash is SHA-1
        "languageCode": "fr-FR",
        "legalAuthenticator": author_person(establishment),
        "sourcePatientId": patient_cx(person),
    }
    for name, value in slots.items():
        _slot(entry, name, value)
    _slot(
        entry,
        "sourcePatientInfo",
        f"PID-5|{person['family']}^{person['given']}^^^^^L",
        f"PID-7|{person['birth_date'].replace('-', '')}",
        f"PID-8|{person['sex']}",
    )
    _name(entry, title)
    _author(entry, XDS["author"], establishment)
    facility = FACILITY.get(establishment.get("category", ""), OTHER_FACILITY)
    codes = {
        **codes,
        "conf": ("N", HL7_CONF, "Normal"),
        "facility": (*facility[:1], "1.2.250.1.71.4.2.4", facility[1]),
        "practice": ("ESSMS", "1.2.250.1.213.1.1.4.9", "Etablissement ou Service Social ou Médico-Social"),
    }
    for scheme, (code, system, label) in codes.items():
        _coded(entry, XDS[scheme], code, system, label)
    _external(entry, XDS["doc_pid"], patient_cx(person), "XDSDocumentEntry.patientId")
    _external(entry, XDS["doc_uid"], unique_id, "XDSDocumentEntry.uniqueId")
    return entry


def signature_document(session: Session, cert_name: str, documents: dict[str, bytes]) -> bytes:
    """IHE DSG: an XAdES enveloping signature of a ``ds:Manifest`` holding one reference per document
    (``urn:oid:<uniqueId>`` and its SHA-256 digest), signed with the organisation certificate."""
    manifest = etree.Element(f"{{{DS}}}Manifest", nsmap={"ds": DS}, Id="IHEManifest")
    for unique_id, data in documents.items():
        reference = etree.SubElement(manifest, f"{{{DS}}}Reference", URI=f"urn:oid:{unique_id}")
        etree.SubElement(reference, f"{{{DS}}}DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
        etree.SubElement(reference, f"{{{DS}}}DigestValue").text = base64.b64encode(
            hashlib.sha256(data).digest()
        ).decode()
    pem = session.body["client_certificates"][cert_name]
    key = load_pem_private_key(pem["key_pem"].encode(), None)
    signer = XAdESSigner(
        method=methods.enveloping,
        signature_algorithm=_algorithm(key),
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2006/12/xml-c14n11",
    )  # C14N 1.1: the XAdES SignedProperties verify
    return etree.tostring(signer.sign(manifest, key=key, cert=pem["cert_pem"]), xml_declaration=True, encoding="UTF-8")


def build_iti41(
    session: Session, body: dict[str, Any], cda: bytes, previous: dict[str, Any] | None
) -> tuple[etree._Element, dict[str, bytes], etree._Element, str]:
    """``ProvideAndRegisterDocumentSetRequest``, its MTOM attachments, the CDA's DocumentEntry and uniqueId."""
    person, establishment = body["person"], body["establishment"]
    code, system, label, _, _, class_code, format_code = KINDS[body["document_kind"]]
    cda_id = etree.fromstring(cda, PARSER).find("hl7:id", NS)
    unique_id = cda_id.get("root", "") + (f"^{cda_id.get('extension')}" if cda_id.get("extension") else "")
    request = etree.Element(
        f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap={"xdsb": XDSB, "lcm": LCM, "rim": RIM}
    )
    objects = etree.SubElement(
        etree.SubElement(request, f"{{{LCM}}}SubmitObjectsRequest"), f"{{{RIM}}}RegistryObjectList"
    )
    ss = submission_set(objects, person, establishment, f"Versement {label}")
    entry = document_entry(
        objects,
        person,
        establishment,
        cda,
        unique_id,
        label,
        {
            "class": (class_code, "1.2.250.1.213.1.1.4.1", CLASSES[class_code]),
            "type": (code, system, label),
            "format": (format_code, "1.2.250.1.213.1.1.4.2.282", label),
        },
    )
    signature = signature_document(session, certificate_name(session, establishment), {unique_id: cda})
    sig_entry = document_entry(
        objects,
        person,
        establishment,
        signature,
        _oid(),
        "Source",
        {
            "class": ("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN", "Digital Signature"),
            "type": ("E1762", "ASTM", "Full Document"),
            "format": ("http://www.w3.org/2000/09/xmldsig#", "URN", "Default Signature Style"),
        },
    )
    for member in (entry, sig_entry):
        _association(objects, HAS_MEMBER, ss, member.get("id", ""), SubmissionSetStatus="Original")
    _association(objects, SIGNS, sig_entry.get("id", ""), ss, SubmissionSetStatus="Original")
    if previous:
        _association(objects, RPLC, entry.get("id", ""), previous["entry_uuid"])
    attachments = {}
    for element, data in ((entry, cda), (sig_entry, signature)):
        cid = f"{uuid.uuid4().hex}@exemple-dui"
        document = etree.SubElement(request, f"{{{XDSB}}}Document", id=element.get("id", ""))
        etree.SubElement(document, f"{{{XOP}}}Include", nsmap={"xop": XOP}, href=f"cid:{cid}")
        attachments[cid] = data
    return request, attachments, entry, unique_id


# -- actions ----------------------------------------------------------------------------------------------------------
def _sent(session: Session) -> dict[str, dict[str, Any]]:
    """The documents this DUI fed, by uniqueId: bytes, entryUUID, setId, version, status, confidentiality..."""
    return session.state.setdefault("dmp", {}).setdefault("sent", {})


def _failed(detail: str, **data: Any) -> Outcome:
    return {"status": "failed", "detail": detail, "data": data}


def dmp_feed(session: Session, body: dict[str, Any]) -> Outcome:
    """TD0.2, then ITI-41 (a new version of ``replaces`` with an RPLC association when asked)."""
    sent, kind = _sent(session), body["document_kind"]
    previous = sent.get(body.get("replaces") or "")
    if body.get("replaces") and previous is None:
        return _failed(f"le DUI n'a pas versé le document {body['replaces']} : rien à remplacer")
    if kind not in KINDS:
        return _failed(f"type de document {kind!r} non pris en charge pour le DMP ({', '.join(KINDS)})")
    try:
        with client(session, body["establishment"]) as http:  # TD0.2 and ITI-41 on one connection
            check_dmp(session, http, body)
            cda = build_cda(body["person"], body["establishment"], kind, previous)
            request, attachments, entry, unique_id = build_iti41(session, body, cda, previous)
            answer, _ = call(session, http, "repository", ITI41, request, body, attachments)
            check_registry(answer)
    except DmpFailure as exc:
        return _failed(str(exc))
    root = etree.fromstring(cda, PARSER)
    sent[unique_id] = {
        "unique_id": unique_id,
        "entry_uuid": entry.get("id"),
        "kind": kind,
        "data": cda,
        "entry": etree.tostring(entry),
        "set_id": root.find("hl7:setId", NS).get("root"),
        "version": int(root.find("hl7:versionNumber", NS).get("value")),
        "metadata_version": 1,
        "status": APPROVED,
        "dmp_codes": [],
    }
    if previous:
        previous["status"] = DEPRECATED
    what = "nouvelle version versée au DMP (remplace la précédente)" if previous else "document versé au DMP"
    return {"status": "done", "detail": what, "data": {"unique_id": unique_id, "entry_uuid": entry.get("id")}}


def dmp_find(session: Session, body: dict[str, Any]) -> Outcome:
    """ITI-18 FindDocuments: the person's approved documents (LeafClass)."""
    Q = ElementMaker(namespace=QUERY, nsmap={"query": QUERY, "rim": RIM})
    query = etree.Element(f"{{{RIM}}}AdhocQuery", id=FIND_DOCUMENTS)
    _slot(query, "$XDSDocumentEntryPatientId", f"'{patient_cx(body['person'])}'")
    _slot(query, "$XDSDocumentEntryStatus", f"('{APPROVED}')")
    request = Q.AdhocQueryRequest(Q.ResponseOption(returnComposedObjects="true", returnType="LeafClass"), query)
    try:
        with client(session, body["establishment"]) as http:
            answer, _ = call(session, http, "registry", ITI18, request, body)
            check_registry(answer)
    except DmpFailure as exc:
        return _failed(str(exc))
    slot = "rim:Slot[@name=$n]/rim:ValueList/rim:Value/text()"
    documents = [
        {
            "unique_id": _first(e, "rim:ExternalIdentifier[@identificationScheme=$s]/@value", s=XDS["doc_uid"]),
            "entry_uuid": e.get("id"),
            "status": e.get("status"),
            "typeCode": _first(e, "rim:Classification[@classificationScheme=$s]/@nodeRepresentation", s=XDS["type"]),
            "title": _first(e, "rim:Name/rim:LocalizedString/@value"),
            "creationTime": _first(e, slot, n="creationTime"),
            "repository": _first(e, slot, n="repositoryUniqueId"),
        }
        for e in answer.iter(f"{{{RIM}}}ExtrinsicObject")
    ]
    repositories = session.state.setdefault("dmp", {}).setdefault("repositories", {})
    repositories.update({d["unique_id"]: d["repository"] for d in documents if d["unique_id"] and d["repository"]})
    return {
        "status": "done",
        "detail": f"{len(documents)} document(s) trouvé(s) dans le DMP",
        "data": {"documents": documents},
    }


def dmp_retrieve(session: Session, body: dict[str, Any]) -> Outcome:
    """ITI-43: fetch the document (its repository comes from a previous ITI-18, done now when unknown)."""
    unique_id = body.get("unique_id")
    if not unique_id:
        return _failed("identifiant du document à récupérer manquant")
    repositories = session.state.setdefault("dmp", {}).setdefault("repositories", {})
    if unique_id not in repositories:
        found = dmp_find(session, body)
        if found["status"] != "done":
            return found
    if unique_id not in repositories:
        return _failed(f"document {unique_id} introuvable dans le DMP")
    X = ElementMaker(namespace=XDSB, nsmap={"xdsb": XDSB})
    request = X.RetrieveDocumentSetRequest(
        X.DocumentRequest(X.RepositoryUniqueId(repositories[unique_id]), X.DocumentUniqueId(unique_id))
    )
    try:
        with client(session, body["establishment"]) as http:
            answer, parts = call(session, http, "repository", ITI43, request, body, attachments={})
            content = None
            for item in answer.findall("xdsb:DocumentResponse", NS):
                if item.findtext("xdsb:DocumentUniqueId", "", NS).strip() == unique_id:
                    include = item.find("xdsb:Document/xop:Include", NS)
                    content = (
                        parts.get(unquote(include.get("href", ""))[4:])
                        if include is not None
                        else base64.b64decode("".join(item.findtext("xdsb:Document", "", NS).split()))
                    )
            if content is None:
                check_registry(answer)
                raise DmpFailure(f"le DMP n'a pas renvoyé le document {unique_id}")
    except DmpFailure as exc:
        return _failed(str(exc))
    sent = _sent(session).get(unique_id)
    identical = sent is not None and sent["data"] == content
    detail = "document récupéré du DMP" + (" (identique au document versé)" if identical else "")
    return {"status": "done", "detail": detail, "data": {"identical": identical, "size": len(content)}}


def confidentiality_update(body: dict[str, Any], document: dict[str, Any], dmp_codes: list[str]) -> etree._Element:
    """ITI-57 metadata update: a new version of the DocumentEntry (same ``lid``, full metadata, new
    confidentiality codes) as member of a submission set, with ``PreviousVersion``."""
    request = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
    objects = etree.SubElement(request, f"{{{RIM}}}RegistryObjectList")
    ss = submission_set(objects, body["person"], body["establishment"], "Mise à jour de la confidentialité")
    entry = etree.fromstring(document["entry"], PARSER)
    old_id, new_id = entry.get("id"), _urn()
    entry.set("id", new_id)
    entry.set("lid", document["entry_uuid"])
    for child in list(entry.iter(f"{{{RIM}}}Classification", f"{{{RIM}}}ExternalIdentifier")):
        for attribute in ("classifiedObject", "registryObject"):
            if child.get(attribute) == old_id:
                child.set(attribute, new_id)
        if child.get("classificationScheme") == XDS["conf"] and child.get("nodeRepresentation") != "N":
            entry.remove(child)  # the DMP codes are set again below
    labels = {"MASQUE_PS": "Masqué aux professionnels de santé", "INVISIBLE_PATIENT": "Non visible par le patient"}
    for code in dmp_codes:
        _coded(entry, XDS["conf"], code, DMP_CONF, labels.get(code, code))
    objects.append(entry)
    _association(
        objects,
        HAS_MEMBER,
        ss,
        new_id,
        SubmissionSetStatus="Original",
        PreviousVersion=str(document["metadata_version"]),
    )
    return request


def status_update(body: dict[str, Any], document: dict[str, Any], new_status: str) -> etree._Element:
    """ITI-57 availability status change: an ``UpdateAvailabilityStatus`` association from the submission set."""
    request = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
    objects = etree.SubElement(request, f"{{{RIM}}}RegistryObjectList")
    ss = submission_set(objects, body["person"], body["establishment"], "Changement de statut")
    _association(
        objects, UPDATE_STATUS, ss, document["entry_uuid"], OriginalStatus=document["status"], NewStatus=new_status
    )
    return request


def dmp_update(session: Session, body: dict[str, Any]) -> Outcome:
    """ITI-57: masquer / demasquer / invisible-patient (confidentiality), archiver / supprimer (status)."""
    document, change = _sent(session).get(body["unique_id"]), body["change"]
    if document is None:
        return _failed(f"le DUI n'a pas versé le document {body['unique_id']}")
    if change in CONFIDENTIALITY:
        code, add, done = CONFIDENTIALITY[change]
        codes = [c for c in document["dmp_codes"] if c != code] + ([code] if add else [])
        request = confidentiality_update(body, document, codes)
    elif change in STATUSES:
        done = {"archiver": "archivé", "supprimer": "supprimé"}[change]
        request = status_update(body, document, STATUSES[change])
    else:
        return _failed(f"modification {change!r} inconnue ({', '.join([*CONFIDENTIALITY, *STATUSES])})")
    try:
        with client(session, body["establishment"]) as http:
            answer, _ = call(session, http, "registry", ITI57, request, body)
            check_registry(answer)
    except DmpFailure as exc:
        return _failed(str(exc))
    if change in CONFIDENTIALITY:
        document["dmp_codes"], document["metadata_version"] = codes, document["metadata_version"] + 1
    else:
        document["status"] = STATUSES[change]
    return {"status": "done", "detail": f"document {done} dans le DMP", "data": {"unique_id": document["unique_id"]}}


ACTIONS = {"dmp-feed": dmp_feed, "dmp-find": dmp_find, "dmp-retrieve": dmp_retrieve, "dmp-update": dmp_update}
