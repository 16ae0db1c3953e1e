"""Every finding of the VIHF 3.0 check (SAML 2.0 Core assertion in WS-Security 1.1, XML-DSig 1.0; ANS "DMP - Guide
d'intégration" VIHF 3.0), one row per rejection path on the assertion :mod:`harness.sut.dmp_messages` builds,
asserting the EXACT findings (codes and severities, in order).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from lxml import etree

from harness.core.config import package_root
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.sut import dmp_messages as M
from harness.validators import Severity
from harness.validators.vihf import (
    ATTR_AUTH_MODE,
    ATTR_PURPOSE,
    ATTR_RESOURCE_ID,
    ATTR_RESOURCE_URN,
    ATTR_ROLE,
    ATTR_SECTOR,
    ATTR_VERSION,
    NS,
    SAML,
    SignatureCache,
    Strictness,
    VihfPolicy,
    VihfReport,
    check_vihf,
)

E, W = Severity.ERROR, Severity.WARNING
TESTDATA = load_testdata(package_root() / "fixtures")
PERSON = TESTDATA.persons[0]
ESTABLISHMENT = TESTDATA.establishment(PERSON.essms)
NO_SIGNATURE = VihfPolicy(require_signature=False)
Edit = Callable[[etree._Element], None]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.ensure(tmp_path_factory.mktemp("pki"))


def _credentials(pki: TestPKI) -> M.OrgCredentials:
    client = pki.client(sorted(pki.clients)[0])
    return M.OrgCredentials(str(client.cert_path), str(client.key_path))


def _security(assertion: etree._Element) -> etree._Element:
    security = etree.Element(f"{{{NS['wsse']}}}Security")
    security.append(assertion)
    return security


def findings(report: VihfReport) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in report.findings]


def _value(assertion: etree._Element, name: str) -> etree._Element:
    return assertion.find(f"saml2:AttributeStatement/saml2:Attribute[@Name='{name}']/saml2:AttributeValue", NS)


def set_text(name: str, text: str | None) -> Edit:
    def edit(assertion: etree._Element) -> None:
        _value(assertion, name).text = text

    return edit


def set_coded(name: str, attribute: str, value: str | None) -> Edit:
    def edit(assertion: etree._Element) -> None:
        if value is None:
            del _value(assertion, name)[0].attrib[attribute]
        else:
            _value(assertion, name)[0].set(attribute, value)

    return edit


def set_attr(attribute: str, value: str | None) -> Edit:
    def edit(assertion: etree._Element) -> None:
        if value is None:
            del assertion.attrib[attribute]
        else:
            assertion.set(attribute, value)

    return edit


def remove(path: str) -> Edit:
    def edit(assertion: etree._Element) -> None:
        element = assertion.find(path, NS)
        element.getparent().remove(element)

    return edit


def conditions(not_before: datetime | None, not_after: datetime | None) -> Edit:
    def edit(assertion: etree._Element) -> None:
        element = etree.Element(f"{{{SAML}}}Conditions")
        if not_before is not None:
            element.set("NotBefore", not_before.isoformat())
        if not_after is not None:
            element.set("NotOnOrAfter", not_after.isoformat())
        assertion.find("saml2:Subject", NS).addnext(element)

    return edit


NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)
#: one row per rejection path of the unsigned assertion (the signature is checked below)
ROWS: list[tuple[str, Edit, list[tuple[str, Severity]]]] = [
    ("saml version", set_attr("Version", "1.1"), [("VIHF-SAML-VERSION", E)]),
    ("no ID", set_attr("ID", None), [("VIHF-ID", E)]),
    ("no IssueInstant", set_attr("IssueInstant", None), [("VIHF-ISSUE-INSTANT", E)]),
    ("bad IssueInstant", set_attr("IssueInstant", "hier"), [("VIHF-ISSUE-INSTANT", E)]),
    ("issued in the future", set_attr("IssueInstant", (NOW + HOUR).isoformat()), [("VIHF-DANS-LE-FUTUR", E)]),
    ("issued too long ago", set_attr("IssueInstant", (NOW - 3 * HOUR).isoformat()), [("VIHF-EXPIREE", E)]),
    ("not yet valid", conditions(NOW + HOUR, NOW + 2 * HOUR), [("VIHF-PAS-ENCORE-VALIDE", E)]),
    ("conditions expired", conditions(NOW - 2 * HOUR, NOW - HOUR), [("VIHF-EXPIREE", E)]),
    ("no subject", remove("saml2:Subject"), [("VIHF-SUBJECT", E)]),
    ("no authn", remove("saml2:AuthnStatement"), [("VIHF-AUTHN", E)]),
    ("vihf version", set_text(ATTR_VERSION, "2.0"), [("VIHF-VERSION", E)]),
    ("resource urn", set_text(ATTR_RESOURCE_URN, "urn:dp"), [("VIHF-RESSOURCE-URN", E)]),
    ("sector oid", set_text(ATTR_SECTOR, "SA17^1.2.250.1.71.4.2.5"), [("VIHF-SECTEUR", E)]),
    ("auth mode", set_text(ATTR_AUTH_MODE, "DIRECT"), [("VIHF-AUTH-MODE", E)]),
    ("role without code", set_coded(ATTR_ROLE, "code", ""), [("VIHF-ROLE", E)]),
    ("role without system", set_coded(ATTR_ROLE, "codeSystem", ""), [("VIHF-ROLE", E)]),
    ("purpose without code", set_coded(ATTR_PURPOSE, "code", ""), [("VIHF-PURPOSE", E)]),
    ("resource-id not an INS", set_text(ATTR_RESOURCE_ID, "123^^^&1.2.3&ISO"), [("VIHF-RESOURCE-ID", E)]),
    ("empty version", set_text(ATTR_VERSION, " "), [(f"VIHF-ATTRIBUT-ABSENT:{ATTR_VERSION}", E)]),
    ("version without text", set_text(ATTR_VERSION, None), [(f"VIHF-ATTRIBUT-ABSENT:{ATTR_VERSION}", E)]),
    ("role code attribute absent", set_coded(ATTR_ROLE, "code", None), [("VIHF-ROLE", E)]),
    ("role codeSystem attribute absent", set_coded(ATTR_ROLE, "codeSystem", None), [("VIHF-ROLE", E)]),
    ("auth mode AUTRE", set_text(ATTR_AUTH_MODE, "AUTRE"), []),
    ("auth mode DIRECTE", set_text(ATTR_AUTH_MODE, "DIRECTE"), []),
]


@pytest.mark.parametrize(("edit", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_each_deviation_is_named_exactly(pki: TestPKI, edit: Edit, expected: list[tuple[str, Severity]]) -> None:
    assertion = M.build_vihf(PERSON, ESTABLISHMENT, _credentials(pki), sign=False)
    assert findings(check_vihf(_security(assertion), anchors=[], policy=NO_SIGNATURE)) == []
    edit(assertion)
    report = check_vihf(_security(assertion), anchors=[], policy=NO_SIGNATURE)
    assert findings(report) == expected and report.ok is (expected == [])
    assert {f.location for f in report.findings} <= {"wsse:Security/saml2:Assertion"}
    lenient = VihfPolicy(strictness=Strictness.LENIENT, require_signature=False)
    tolerated = check_vihf(_security(assertion), anchors=[], policy=lenient)
    assert findings(tolerated) == [(c, W) for c, _ in expected] and tolerated.ok
    off = VihfPolicy(strictness=Strictness.OFF)
    assert findings(check_vihf(_security(assertion), anchors=[], policy=off)) == []


def test_the_saml_version_finding_quotes_what_was_received(pki: TestPKI) -> None:
    assertion = M.build_vihf(PERSON, ESTABLISHMENT, _credentials(pki), sign=False)
    set_attr("Version", "1.1")(assertion)
    report = check_vihf(_security(assertion), anchors=[], policy=NO_SIGNATURE)
    assert [f.message for f in report.findings] == ["Version SAML 2.0 attendue, reçu '1.1'"] and report.present


def test_the_clock_skew_is_honoured_on_both_sides(pki: TestPKI) -> None:
    """Four minutes ahead or a NotOnOrAfter four minutes ago is inside the default five-minute skew."""
    assertion = M.build_vihf(PERSON, ESTABLISHMENT, _credentials(pki), sign=False)
    set_attr("IssueInstant", NOW.isoformat())(assertion)  # judged at NOW, not when the suite reached this test
    conditions(NOW + timedelta(minutes=4), NOW - timedelta(minutes=4))(assertion)
    assert findings(check_vihf(_security(assertion), anchors=[], policy=NO_SIGNATURE, now=NOW)) == []
    tight = VihfPolicy(require_signature=False, clock_skew=timedelta(minutes=3))
    assert findings(check_vihf(_security(assertion), anchors=[], policy=tight, now=NOW)) == [
        ("VIHF-PAS-ENCORE-VALIDE", E),
        ("VIHF-EXPIREE", E),
    ]


def test_absent_assertion_is_an_error_even_when_lenient() -> None:
    lenient = VihfPolicy(strictness=Strictness.LENIENT)
    assert findings(check_vihf(None, anchors=[], policy=lenient)) == [("VIHF-ABSENT", E)]
    empty = etree.Element(f"{{{NS['wsse']}}}Security")
    assert findings(check_vihf(empty, anchors=[])) == [("VIHF-ABSENT", E)]


# ------------------------------------------------------------------------------------------------- signature
def _signed(pki: TestPKI) -> etree._Element:
    return M.build_vihf(PERSON, ESTABLISHMENT, _credentials(pki))


def _certificate(assertion: etree._Element) -> etree._Element:
    return assertion.find("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)


def test_signed_assertion_is_accepted_and_its_signer_known(pki: TestPKI) -> None:
    report = check_vihf(_security(_signed(pki)), anchors=[pki.intermediate.cert])
    assert findings(report) == [] and report.signed and report.present and report.resource_ins == PERSON.ins


def test_missing_certificate(pki: TestPKI) -> None:
    assertion = _signed(pki)
    _certificate(assertion).text = "  "
    assert findings(check_vihf(_security(assertion), anchors=[pki.intermediate.cert])) == [
        ("VIHF-CERTIFICAT-ABSENT", E)
    ]


@pytest.mark.parametrize("text", ["pas du base64 !", base64.b64encode(b"not a DER certificate").decode()])
def test_unreadable_certificate(pki: TestPKI, text: str) -> None:
    assertion = _signed(pki)
    _certificate(assertion).text = text
    report = check_vihf(_security(assertion), anchors=[pki.intermediate.cert])
    assert findings(report) == [("VIHF-CERTIFICAT-ILLISIBLE", E)] and not report.signed


def test_unknown_issuer(pki: TestPKI, tmp_path: Path) -> None:
    foreign = M.build_vihf(PERSON, ESTABLISHMENT, _credentials(TestPKI.create(tmp_path / "other")))
    report = check_vihf(_security(foreign), anchors=[pki.intermediate.cert])
    assert findings(report) == [("VIHF-CERTIFICAT-NON-RECONNU", E)] and not report.signed


def test_certificate_outside_its_validity(pki: TestPKI) -> None:
    """Judged at a date after the signer's notAfter: the certificate is refused (and the assertion is old)."""
    assertion = _signed(pki)
    signer = pki.client(sorted(pki.clients)[0]).cert
    late = signer.not_valid_after_utc + timedelta(days=1)
    report = check_vihf(_security(assertion), anchors=[pki.intermediate.cert], now=late)
    assert findings(report) == [("VIHF-EXPIREE", E), ("VIHF-CERTIFICAT-EXPIRE", E)] and not report.signed
    early = signer.not_valid_before_utc - timedelta(days=1)
    report = check_vihf(_security(assertion), anchors=[pki.intermediate.cert], now=early)
    assert findings(report) == [("VIHF-DANS-LE-FUTUR", E), ("VIHF-CERTIFICAT-EXPIRE", E)]


def test_cached_signature_still_checks_the_certificate_validity(pki: TestPKI) -> None:
    """The signature cache skips the XML verification of identical bytes, not the signer's validity window."""
    cache = SignatureCache()
    assertion = _signed(pki)
    first = check_vihf(_security(assertion), anchors=[pki.intermediate.cert], cache=cache)
    assert findings(first) == [] and first.signed
    again = check_vihf(_security(assertion), anchors=[], cache=cache)  # no anchor needed: the cache knows it
    assert findings(again) == [] and again.signed and again.signer == first.signer
    late = first.signer.not_valid_after_utc + timedelta(days=1)
    report = check_vihf(_security(assertion), anchors=[pki.intermediate.cert], now=late, cache=cache)
    assert findings(report) == [("VIHF-EXPIREE", E), ("VIHF-CERTIFICAT-EXPIRE", E)] and not report.signed


def test_tampered_assertion_breaks_the_signature(pki: TestPKI) -> None:
    assertion = _signed(pki)
    set_text(ATTR_AUTH_MODE, "DIRECTE")(assertion)
    report = check_vihf(_security(assertion), anchors=[pki.intermediate.cert])
    assert findings(report) == [("VIHF-SIGNATURE-INVALIDE", E)] and not report.signed


def test_unsigned_assertion(pki: TestPKI) -> None:
    assertion = M.build_vihf(PERSON, ESTABLISHMENT, _credentials(pki), sign=False)
    assert findings(check_vihf(_security(assertion), anchors=[pki.intermediate.cert])) == [
        ("VIHF-SIGNATURE-ABSENTE", E)
    ]


def test_signature_over_another_element_is_refused(pki: TestPKI) -> None:
    """A valid signature whose reference is the Subject, not the assertion (signature wrapping): refused."""
    from signxml import XMLSigner, methods

    assertion = M.build_vihf(PERSON, ESTABLISHMENT, _credentials(pki), sign=False)
    assertion.find("saml2:Subject", NS).set("ID", "_subject")
    placeholder = etree.Element(f"{{{NS['ds']}}}Signature", Id="placeholder", nsmap={"ds": NS["ds"]})
    assertion.find("saml2:Issuer", NS).addnext(placeholder)
    cert, key = _credentials(pki).load()
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm="ecdsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    signed = signer.sign(assertion, key=key, cert=[cert], reference_uri="_subject", id_attribute="ID")
    report = check_vihf(_security(signed), anchors=[pki.intermediate.cert])
    assert findings(report) == [("VIHF-SIGNATURE-REFERENCE", E)] and not report.signed


# ------------------------------------------------------------------------------------------------- boundaries
def _at(assertion: etree._Element, issued: datetime) -> etree._Element:
    assertion.set("IssueInstant", issued.isoformat())
    return assertion


def test_the_default_skew_and_age_are_inclusive_bounds(pki: TestPKI) -> None:
    """VihfPolicy defaults: 5 minutes of clock skew, 2 hours of age without Conditions; exactly at the bound is
    still valid, NotOnOrAfter exactly at now - skew is not (SAML 2.0 Core §2.5.1: "on or after")."""
    skew, age = timedelta(minutes=5), timedelta(hours=2)
    assert (VihfPolicy().clock_skew, VihfPolicy().max_age) == (skew, age)

    def judged(issued: datetime, edit: Edit | None = None) -> list[tuple[str, Severity]]:
        assertion = _at(M.build_vihf(PERSON, ESTABLISHMENT, _credentials(pki), sign=False), issued)
        if edit is not None:
            edit(assertion)
        return findings(check_vihf(_security(assertion), anchors=[], policy=NO_SIGNATURE, now=NOW))

    assert judged(NOW + skew) == []
    assert judged(NOW + skew + timedelta(seconds=1)) == [("VIHF-DANS-LE-FUTUR", E)]
    assert judged(NOW - age) == []
    assert judged(NOW - age - timedelta(seconds=1)) == [("VIHF-EXPIREE", E)]
    assert judged(NOW, conditions(NOW + skew, None)) == []
    assert judged(NOW, conditions(NOW + skew + timedelta(seconds=1), None)) == [("VIHF-PAS-ENCORE-VALIDE", E)]
    assert judged(NOW, conditions(None, NOW - skew)) == [("VIHF-EXPIREE", E)]
    assert judged(NOW, conditions(None, NOW - skew + timedelta(seconds=1))) == []
    # with Conditions, the age rule does not apply: NotOnOrAfter decides
    assert judged(NOW - 3 * HOUR, conditions(None, NOW + HOUR)) == []


def test_strictness_values_are_the_settings_words() -> None:
    assert [Strictness(v) for v in ("strict", "lenient", "off")] == [
        Strictness.STRICT,
        Strictness.LENIENT,
        Strictness.OFF,
    ]


def test_nothing_is_present_when_off_or_absent() -> None:
    assert check_vihf(None, anchors=[], policy=VihfPolicy(strictness=Strictness.OFF)).present is False
    assert check_vihf(None, anchors=[]).present is False


def test_certificate_validity_bounds_are_inclusive(pki: TestPKI) -> None:
    """Exactly at notBefore and at notAfter the signer is valid (RFC 5280 §4.1.2.5), cached or not."""
    signer = pki.client(sorted(pki.clients)[0]).cert
    assertion = _signed(pki)
    for cache in (None, SignatureCache()):
        if cache is not None:
            check_vihf(_security(assertion), anchors=[pki.intermediate.cert], cache=cache)
        for when, expected in (
            (signer.not_valid_before_utc, [("VIHF-DANS-LE-FUTUR", E)]),
            (signer.not_valid_after_utc, [("VIHF-EXPIREE", E)]),
        ):
            report = check_vihf(_security(assertion), anchors=[pki.intermediate.cert], now=when, cache=cache)
            assert findings(report) == expected and report.signed, (cache, when)


def test_a_certificate_with_characters_outside_base64_is_unreadable(pki: TestPKI) -> None:
    """validate=True: a DER certificate with stray characters is not silently repaired."""
    assertion = _signed(pki)
    text = "".join(_certificate(assertion).text.split())
    _certificate(assertion).text = text[:10] + "!" + text[10:]
    assert findings(check_vihf(_security(assertion), anchors=[pki.intermediate.cert])) == [
        ("VIHF-CERTIFICAT-ILLISIBLE", E)
    ]


def test_the_cache_remembers_the_signer_and_trusts_its_issuer(pki: TestPKI) -> None:
    cache = SignatureCache()
    first = _signed(pki)
    report = check_vihf(_security(first), anchors=[pki.intermediate.cert], cache=cache)
    assert report.signed
    assert cache.signer(hashlib.sha256(etree.tostring(first)).digest()) == report.signer
    assert cache.issued(report.signer.fingerprint(hashes.SHA256()))
    # another assertion by the same certificate: its issuer is known, its signature is still verified
    second = _signed(pki)
    assert findings(check_vihf(_security(second), anchors=[], cache=cache)) == []
    set_text(ATTR_AUTH_MODE, "DIRECTE")(second)
    assert findings(check_vihf(_security(second), anchors=[], cache=cache)) == [("VIHF-SIGNATURE-INVALIDE", E)]


def test_signature_cache_bounds() -> None:
    cert = object()
    cache = SignatureCache(size=2)
    cache.remember(b"a", cert)  # type: ignore[arg-type]
    cache.remember(b"b", cert)  # type: ignore[arg-type]
    assert cache.signer(b"a") is cert and cache.signer(b"b") is cert  # both kept at the bound
    assert cache.signer(b"a") is cert  # a is now the most recent
    cache.remember(b"c", cert)  # type: ignore[arg-type]
    assert (cache.signer(b"a"), cache.signer(b"b"), cache.signer(b"c")) == (cert, None, cert)
    trusted = SignatureCache(size=1)
    trusted.trust(b"f1")
    trusted.trust(b"f2")  # over the bound: not kept
    assert (trusted.issued(b"f1"), trusted.issued(b"f2"), trusted.issued(b"f3")) == (True, False, False)
    default = SignatureCache()
    for index in range(4097):
        default.remember(index.to_bytes(2, "big"), cert)  # type: ignore[arg-type]
    assert default.signer((0).to_bytes(2, "big")) is None and default.signer((1).to_bytes(2, "big")) is cert
