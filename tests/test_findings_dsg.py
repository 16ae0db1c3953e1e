"""The submission signature (IHE ITI TF-3 §5.5 Document Digital Signature: an enveloping XML-DSig whose signed object
is a ``ds:Manifest`` referencing each document ``urn:oid:<uniqueId>`` with its digest, the signer's certificate in
``ds:KeyInfo``), verified by :func:`harness.validators.dsg.verify_submission_signature`: one row per refusal,
asserting the EXACT findings (code, severity, location). Signatures are made here with ``signxml`` over a fresh test
PKI (ECDSA P-256), the manifest written out so that each digest algorithm and each defect is chosen."""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from lxml import etree
from signxml import XMLSigner, methods
from signxml.xades import XAdESSigner

from harness.fields.pki import TestPKI
from harness.validators import Finding, Severity
from harness.validators.dsg import verify_submission_signature
from harness.validators.vihf import SignatureCache

E = Severity.ERROR
DS = "http://www.w3.org/2000/09/xmldsig#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
DOCS = {"1.2.3.4": b"<ClinicalDocument/>", "1.2.3.5": b"second"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.create(tmp_path_factory.mktemp("dsg-pki"), organisation_clients=("DSG-A",))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.create(tmp_path_factory.mktemp("dsg-other"), organisation_clients=("DSG-B",))


def _digest(algorithm: str, data: bytes) -> str:
    name = algorithm.rpartition("#")[2]
    return base64.b64encode(hashlib.new(name, data).digest()).decode()


def manifest(docs: dict[str, bytes] = DOCS, algorithm: str = SHA256, uri: str = "urn:oid:{}") -> etree._Element:
    element = etree.Element(f"{{{DS}}}Manifest", nsmap={"ds": DS}, Id="IHEManifest")
    for unique_id, data in docs.items():
        ref = etree.SubElement(element, f"{{{DS}}}Reference", URI=uri.format(unique_id))
        etree.SubElement(ref, f"{{{DS}}}DigestMethod", Algorithm=algorithm)
        etree.SubElement(ref, f"{{{DS}}}DigestValue").text = _digest(algorithm, data)
    return element


def sign(pki: TestPKI, element: etree._Element, client: str = "DSG-A") -> bytes:
    issued = pki.client(client)
    key = issued.key_path.read_bytes()
    signer = XMLSigner(method=methods.enveloping, signature_algorithm="ecdsa-sha256", digest_algorithm="sha256")
    return etree.tostring(signer.sign(element, key=key, cert=[issued.cert]))


def triples(findings: list[Finding]) -> list[tuple[str, Severity, str]]:
    return [(f.code, f.severity, f.location) for f in findings]


def verify(pki: TestPKI, data: bytes, docs: dict[str, bytes] = DOCS, **options: object) -> list[Finding]:
    options.setdefault("anchors", [pki.intermediate.cert])
    options.setdefault("structure", pki.client("DSG-A").organisational_unit)
    return verify_submission_signature(data, docs, location="L", **options)  # type: ignore[arg-type]


def test_a_good_signature_is_accepted(pki: TestPKI) -> None:
    assert verify(pki, sign(pki, manifest())) == []
    assert verify(pki, sign(pki, manifest()), {}) == []
    assert verify(pki, sign(pki, manifest()), structure=None) == []


@pytest.mark.parametrize(
    "algorithm",
    [
        "http://www.w3.org/2000/09/xmldsig#sha1",
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    ],
)
def test_each_manifest_digest_algorithm_is_checked(pki: TestPKI, algorithm: str) -> None:
    assert verify(pki, sign(pki, manifest(algorithm=algorithm))) == []
    wrong = {uid: data + b"!" for uid, data in DOCS.items()}
    assert triples(verify(pki, sign(pki, manifest(wrong, algorithm=algorithm)))) == [("DSG-EMPREINTE", E, "L")] * 2


def _edit(data: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(data)
    change(root)
    return etree.tostring(root)


def _cert(root: etree._Element) -> etree._Element:
    return root.find(f".//{{{DS}}}X509Certificate")


def _set_cert(text: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        _cert(root).text = text

    return change


def test_unreadable_signature_documents(pki: TestPKI) -> None:
    assert [(f.code, f.message, f.location) for f in verify(pki, b"<ds:Signature")][0][0] == "DSG-ILLISIBLE"
    assert [(f.code, f.message, f.location) for f in verify(pki, b"<Signature/>")] == [
        ("DSG-ILLISIBLE", "document de signature: ds:Signature attendu, reçu Signature", "L")
    ]


def test_certificate_defects(pki: TestPKI, other_pki: TestPKI) -> None:
    good = sign(pki, manifest())
    no_cert = "ds:KeyInfo/ds:X509Data/ds:X509Certificate absent de la signature"
    unreadable = "le certificat de la signature n'est pas un X.509 DER/base64 lisible"
    cases = [
        (_edit(good, lambda root: _cert(root).getparent().remove(_cert(root))), no_cert),
        (_edit(good, _set_cert(" \n ")), no_cert),
        (_edit(good, _set_cert("***")), unreadable),
        (_edit(good, _set_cert(base64.b64encode(b"pas un certificat").decode())), unreadable),
    ]
    for data, message in cases:
        assert [(f.code, f.severity, f.message, f.location) for f in verify(pki, data)] == [
            ("DSG-CERTIFICAT", E, message, "L")
        ]
    # the certificate split over lines (base64 as XML-DSig writes it) is read
    pem = base64.b64encode(pki.client("DSG-A").cert.public_bytes(serialization_der())).decode()
    wrapped = "\n".join(pem[i : i + 64] for i in range(0, len(pem), 64))
    assert verify(pki, _edit(good, _set_cert(f"\n{wrapped}\n"))) == []
    # characters outside the base64 alphabet are refused, not skipped
    assert [f.message for f in verify(pki, _edit(good, _set_cert(pem[:40] + "!" + pem[40:])))] == [unreadable]


def serialization_der():  # noqa: ANN201 - the cryptography Encoding enum
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def test_the_signer_must_be_issued_by_an_anchor(pki: TestPKI, other_pki: TestPKI) -> None:
    data = sign(pki, manifest())
    subject = pki.client("DSG-A").cert.subject.rfc4514_string()
    refused = [("DSG-CERTIFICAT", f"le certificat signataire ({subject}) n'est pas émis par l'IGC de test")]
    assert [(f.code, f.message) for f in verify(pki, data, anchors=[other_pki.intermediate.cert])] == refused
    assert [(f.code, f.message) for f in verify(pki, data, anchors=[pki.root.cert])] == refused
    assert [(f.code, f.message) for f in verify(pki, data, anchors=[])] == refused
    assert verify(pki, data, anchors=[other_pki.intermediate.cert, pki.intermediate.cert]) == []


def test_the_signer_certificate_must_be_valid_then(pki: TestPKI) -> None:
    data = sign(pki, manifest())
    cert = pki.client("DSG-A").cert
    stale = [("DSG-CERTIFICAT", E, "L")]
    assert verify(pki, data, now=cert.not_valid_before_utc) == []
    assert verify(pki, data, now=cert.not_valid_after_utc) == []
    assert triples(verify(pki, data, now=cert.not_valid_before_utc - timedelta(seconds=1))) == stale
    assert triples(verify(pki, data, now=cert.not_valid_after_utc + timedelta(seconds=1))) == stale
    assert [f.message for f in verify(pki, data, now=cert.not_valid_after_utc + timedelta(days=1))] == [
        "signature périmée : le certificat signataire n'est pas valide à cette date"
    ]


def test_the_trusted_signer_cache_changes_no_verdict(pki: TestPKI, other_pki: TestPKI) -> None:
    """A certificate found issued by the anchors is remembered (by fingerprint): the next submission it signs
    skips that check only; another signer, stale dates, a tampered signature are still refused."""
    cache = SignatureCache()
    data = sign(pki, manifest())
    cert = pki.client("DSG-A").cert
    assert verify(pki, data, cache=cache) == []
    assert cache.issued(cert.fingerprint(hashes.SHA256()))
    assert verify(pki, sign(pki, manifest()), cache=cache) == []
    foreign = sign(other_pki, manifest(), client="DSG-B")
    subject = other_pki.client("DSG-B").cert.subject.rfc4514_string()
    assert [(f.code, f.message) for f in verify(pki, foreign, cache=cache, structure=None)] == [
        ("DSG-CERTIFICAT", f"le certificat signataire ({subject}) n'est pas émis par l'IGC de test")
    ]
    assert not cache.issued(other_pki.client("DSG-B").cert.fingerprint(hashes.SHA256()))
    late = cert.not_valid_after_utc + timedelta(days=1)
    assert triples(verify(pki, data, cache=cache, now=late)) == [("DSG-CERTIFICAT", E, "L")]

    def tamper(root: etree._Element) -> None:
        root.find(f".//{{{DS}}}Manifest/{{{DS}}}Reference").set("URI", "urn:oid:9.9.9")

    assert triples(verify(pki, _edit(data, tamper), cache=cache)) == [("DSG-SIGNATURE-INVALIDE", E, "L")]


def test_a_tampered_signature_is_refused(pki: TestPKI) -> None:
    def tamper(root: etree._Element) -> None:
        root.find(f".//{{{DS}}}Manifest/{{{DS}}}Reference").set("URI", "urn:oid:9.9.9")

    got = verify(pki, _edit(sign(pki, manifest()), tamper))
    assert triples(got) == [("DSG-SIGNATURE-INVALIDE", E, "L")]
    assert got[0].message.startswith("signature XML du lot invalide: ")


def test_the_signed_object_must_be_a_manifest(pki: TestPKI) -> None:
    data = sign(pki, etree.fromstring(f'<ds:Other xmlns:ds="{DS}" Id="x"/>'))
    assert [(f.code, f.message, f.location) for f in verify(pki, data)] == [
        ("DSG-MANIFESTE", "la signature ne porte pas sur un ds:Manifest (IHE DSG)", "L")
    ]
    data = sign(pki, etree.fromstring('<Manifest Id="x"/>'))
    assert triples(verify(pki, data)) == [("DSG-MANIFESTE", E, "L")]


def test_the_signer_must_be_the_authenticated_structure(pki: TestPKI, other_pki: TestPKI) -> None:
    data = sign(pki, manifest())
    cert = pki.client("DSG-A").cert
    got = verify(pki, data, structure="1990000016")
    assert [(f.code, f.severity, f.message, f.location) for f in got] == [
        (
            "DSG-SIGNATAIRE",
            E,
            f"signature du lot faite par la structure {pki.client('DSG-A').organisational_unit} "
            f"({cert.subject.rfc4514_string()}), la structure authentifiée est 1990000016",
            "L",
        )
    ]


def test_the_manifest_must_cover_every_document_with_its_digest(pki: TestPKI) -> None:
    only_first = sign(pki, manifest({"1.2.3.4": DOCS["1.2.3.4"]}))
    assert [(f.code, f.message, f.location) for f in verify(pki, only_first)] == [
        ("DSG-REFERENCE", "document 1.2.3.5 absent du manifeste de la signature", "L")
    ]
    changed = {"1.2.3.4": DOCS["1.2.3.4"], "1.2.3.5": b"autre"}
    assert [(f.code, f.message) for f in verify(pki, sign(pki, manifest()), changed)] == [
        ("DSG-EMPREINTE", "document 1.2.3.5: l'empreinte signée ne correspond pas au document reçu")
    ]
    assert verify(pki, sign(pki, manifest(uri="{}"))) == []  # a bare uniqueId as URI is read as well
    assert triples(verify(pki, sign(pki, manifest(uri="urn:uuid:{}")))) == [("DSG-REFERENCE", E, "L")] * 2


def test_a_digest_algorithm_the_harness_does_not_know_is_refused(pki: TestPKI) -> None:
    assert [
        (f.code, f.message)
        for f in verify(pki, sign(pki, manifest({"1.2.3.4": b"x"}, algorithm="md5")), {"1.2.3.4": b"x"})
    ] == [("DSG-EMPREINTE", "document 1.2.3.4: algorithme d'empreinte non pris en charge")]


def test_a_digest_value_is_read_stripped(pki: TestPKI) -> None:
    element = manifest({"1.2.3.4": b"x"})
    value = element.find(f".//{{{DS}}}DigestValue")
    value.text = f"\n {value.text} \n"
    assert verify(pki, sign(pki, element), {"1.2.3.4": b"x"}) == []
    value.text = ""
    assert triples(verify(pki, sign(pki, element), {"1.2.3.4": b"x"})) == [("DSG-EMPREINTE", E, "L")]


def test_the_reference_dui_signature_is_accepted(pki: TestPKI, tmp_path: Path) -> None:
    from harness.sut.dmp_messages import OrgCredentials, signature_document

    issued = pki.client("DSG-A")
    data = signature_document(OrgCredentials(str(issued.cert_path), str(issued.key_path)), DOCS, "1.2.3.9")
    assert verify(pki, data) == []


def test_the_default_location_is_empty(pki: TestPKI) -> None:
    found = verify_submission_signature(b"<Signature/>", {}, anchors=[], structure=None)
    assert [(f.code, f.location) for f in found] == [("DSG-ILLISIBLE", "")]


def test_a_reference_without_uri_names_no_document(pki: TestPKI) -> None:
    element = manifest({"1.2.3.4": b"x", "": b""})
    del element.findall(f"{{{DS}}}Reference")[1].attrib["URI"]
    assert [(f.code, f.message) for f in verify(pki, sign(pki, element), {"1.2.3.4": b"x", "": b""})] == [
        ("DSG-REFERENCE", "document  absent du manifeste de la signature")
    ]


def test_a_signature_naming_the_manifest_itself_is_read(pki: TestPKI) -> None:
    """IHE DSG's shape: ``ds:Reference URI="#IHEManifest"`` names the Manifest inside ``ds:Object``, not the Object."""
    issued = pki.client("DSG-A")
    element = manifest()
    signer = XMLSigner(method=methods.detached, signature_algorithm="ecdsa-sha256", digest_algorithm="sha256")
    signature = signer.sign(
        copy.deepcopy(element), key=issued.key_path.read_bytes(), cert=[issued.cert], reference_uri="#IHEManifest"
    )
    etree.SubElement(signature, f"{{{DS}}}Object").append(element)
    assert verify(pki, etree.tostring(signature)) == []
    assert triples(verify(pki, etree.tostring(signature), {"9.9": b""})) == [("DSG-REFERENCE", E, "L")]


def test_a_xades_signature_with_its_signed_properties_is_read(pki: TestPKI) -> None:
    """XAdES adds ``ds:Reference`` elements (SignedProperties...) to SignedInfo: all are verified, the Manifest read."""
    issued = pki.client("DSG-A")
    signer = XAdESSigner(method=methods.enveloping, signature_algorithm="ecdsa-sha256", digest_algorithm="sha256")
    data = etree.tostring(signer.sign(manifest(), key=issued.key_path.read_bytes(), cert=[issued.cert]))
    assert len(etree.fromstring(data).findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")) > 1
    assert verify(pki, data) == []
    assert triples(verify(pki, data, {"9.9": b""})) == [("DSG-REFERENCE", E, "L")]


def test_with_two_signed_manifests_the_first_is_checked(pki: TestPKI) -> None:
    """A detached signature over two ``ds:Manifest`` (moved into the Signature's ``ds:Object``): the documents are
    checked against the first one the signature references, not against the last."""
    issued = pki.client("DSG-A")
    holder = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS})
    for manifest_id, docs in (("M1", {"1.2.3.4": b"x"}), ("M2", {"1.2.3.5": b"y"})):
        element = manifest(docs)
        element.set("Id", manifest_id)
        etree.SubElement(holder, f"{{{DS}}}Object").append(element)
    signer = XMLSigner(method=methods.detached, signature_algorithm="ecdsa-sha256", digest_algorithm="sha256")
    signature = signer.sign(holder, key=issued.key_path.read_bytes(), cert=[issued.cert], reference_uri=["#M1", "#M2"])
    for element in holder.findall(f"{{{DS}}}Object"):
        signature.append(element)
    data = etree.tostring(signature)
    assert verify(pki, data, {"1.2.3.4": b"x"}) == []
    assert [f.message for f in verify(pki, data, {"1.2.3.5": b"y"})] == [
        "document 1.2.3.5 absent du manifeste de la signature"
    ]
