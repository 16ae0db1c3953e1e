"""The submission's signature document (IHE ITI Document Digital Signature, DSG), verified cryptographically.

IHE ITI TF-3 §5.5 (DSG content): the signature document is an XML-DSig ``ds:Signature`` (W3C XML Signature 1.1,
enveloping) whose signed object is a ``ds:Manifest`` listing each signed document by ``ds:Reference
URI="urn:oid:<uniqueId>"`` with its digest; the signer's certificate travels in ``ds:KeyInfo``. Checked here:

- the certificate is issued by the trust anchors (the test PKI) and valid now (a stale signature is refused);
- the XML signature verifies against that certificate (``signxml``), over the manifest itself;
- the signer is the authenticated structure (the certificate's OU, ``1`` + FINESS, as the TLS certificate);
- every document of the submission is referenced and its digest matches the bytes received (a forged signature,
  or one made for other documents, is refused).

Plain library code: bytes in, findings out; never raises on bad input.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from lxml import etree

from harness.fields.xmlsafe import XMLSafetyError, parse_xml
from harness.validators import Finding
from harness.validators.vihf import SignatureCache

DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"ds": DS}
DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": hashlib.sha1,
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashlib.sha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashlib.sha512,
}


def _issued_by(cert: x509.Certificate, anchors: Sequence[x509.Certificate]) -> bool:
    for anchor in anchors:
        try:
            cert.verify_directly_issued_by(anchor)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return True
    return False


def _ou(cert: x509.Certificate) -> str | None:
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(values[0].value) if values else None


def verify_submission_signature(
    data: bytes,
    documents: Mapping[str, bytes],
    *,
    anchors: Sequence[x509.Certificate],
    structure: str | None,
    now: datetime | None = None,
    location: str = "",
    cache: SignatureCache | None = None,
) -> list[Finding]:
    """Findings about the signature document ``data`` of a submission whose documents are ``documents`` (XDS
    uniqueId -> bytes); ``structure`` is the authenticated structure identifier (``1`` + FINESS), ``None`` to skip.
    ``cache`` remembers the certificates already found issued by ``anchors`` (by SHA-256 of their DER: the same
    certificate against the same anchors gives the same answer), so that a structure signing every submission with
    one certificate has its chain checked once; the validity dates and the signature itself are checked every time."""
    now = now or datetime.now(UTC)

    def finding(code: str, message: str) -> list[Finding]:
        return [Finding(code, message, location=location)]

    try:
        root = parse_xml(data)
    except XMLSafetyError as exc:
        return finding("DSG-ILLISIBLE", f"document de signature illisible: {exc.message_fr}")
    if root.tag != f"{{{DS}}}Signature":
        return finding("DSG-ILLISIBLE", f"document de signature: ds:Signature attendu, reçu {root.tag}")
    cert_text = root.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
    if not cert_text or not cert_text.strip():
        return finding("DSG-CERTIFICAT", "ds:KeyInfo/ds:X509Data/ds:X509Certificate absent de la signature")
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode("".join(cert_text.split()), validate=True))
    except (ValueError, TypeError):
        return finding("DSG-CERTIFICAT", "le certificat de la signature n'est pas un X.509 DER/base64 lisible")
    fingerprint = cert.fingerprint(hashes.SHA256())
    if cache is not None and cache.issued(fingerprint):
        pass
    elif not _issued_by(cert, anchors):
        return finding(
            "DSG-CERTIFICAT",
            f"le certificat signataire ({cert.subject.rfc4514_string()}) n'est pas émis par l'IGC de test",
        )
    elif cache is not None:
        cache.trust(fingerprint)
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        return finding("DSG-CERTIFICAT", "signature périmée : le certificat signataire n'est pas valide à cette date")
    from signxml import DigestAlgorithm, SignatureMethod, XMLVerifier
    from signxml.exceptions import InvalidInput
    from signxml.exceptions import InvalidSignature as XmlInvalidSignature
    from signxml.verifier import SignatureConfiguration

    references = len(root.findall("ds:SignedInfo/ds:Reference", NS))  # XAdES adds SignedProperties, KeyInfo
    config = SignatureConfiguration(
        expect_references=max(references, 1),
        signature_methods=frozenset(SignatureMethod),
        digest_algorithms=frozenset(DigestAlgorithm),
    )
    try:
        # the bytes as received: parse_xml accepted them (no DOCTYPE, no entity), signxml parses them itself
        verified = XMLVerifier().verify(data, x509_cert=cert, expect_config=config)
    except (XmlInvalidSignature, InvalidInput, ValueError) as exc:
        return finding("DSG-SIGNATURE-INVALIDE", f"signature XML du lot invalide: {exc}")
    manifest = None
    for result in verified if isinstance(verified, list) else [verified]:
        signed = result.signed_xml
        if signed is not None and signed.tag == f"{{{DS}}}Object":  # enveloping: the reference names ds:Object
            signed = signed.find("ds:Manifest", NS)
        if signed is not None and signed.tag == f"{{{DS}}}Manifest":
            manifest = signed
            break
    if manifest is None:
        return finding("DSG-MANIFESTE", "la signature ne porte pas sur un ds:Manifest (IHE DSG)")
    out: list[Finding] = []
    signer = _ou(cert)
    if structure is not None and signer != structure:
        out += finding(
            "DSG-SIGNATAIRE",
            f"signature du lot faite par la structure {signer} ({cert.subject.rfc4514_string()}), la structure "
            f"authentifiée est {structure}",
        )
    referenced: dict[str, etree._Element] = {}
    for reference in manifest.findall("ds:Reference", NS):
        uri = reference.get("URI")
        if uri is None:
            continue  # a Reference without URI (optional in XML-DSig) names no document
        referenced[uri.removeprefix("urn:oid:")] = reference
    for unique_id, content in documents.items():
        reference = referenced.get(unique_id)
        if reference is None:
            out += finding("DSG-REFERENCE", f"document {unique_id} absent du manifeste de la signature")
            continue
        algorithm = reference.find("ds:DigestMethod", NS)
        digest = DIGESTS.get(algorithm.get("Algorithm", "") if algorithm is not None else "")
        expected = (reference.findtext("ds:DigestValue", namespaces=NS) or "").strip()
        if digest is None:
            out += finding("DSG-EMPREINTE", f"document {unique_id}: algorithme d'empreinte non pris en charge")
        elif base64.b64encode(digest(content).digest()).decode() != expected:
            out += finding(
                "DSG-EMPREINTE", f"document {unique_id}: l'empreinte signée ne correspond pas au document reçu"
            )
    return out
