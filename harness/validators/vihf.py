"""VIHF 3.0 ("Vecteur d'Identification et d'Habilitation Formelles"): the SAML 2.0 assertion of DMP requests.

Follows the ANS "DMP - Guide d'intégration" VIHF 3.0 rules as they appear in the ANS DRIM-M ITI-41 samples
(``ansforge/DRIM-M_DATA`` ``Echantillons validateurs/Validateur XDS/XDS.xml``): a ``saml2:Assertion`` (SAML 2.0
Core, OASIS 2005) in the WS-Security 1.1 ``wsse:Security`` header, enveloped-signed (XML-DSig 1.0, exclusive
C14N) by the LPS's organisation certificate, with the attributes ``VIHF_Version`` (3.0), ``Secteur_Activite``
(``SAxx^1.2.250.1.71.4.2.4``), ``Ressource_URN`` (``urn:dmp``), ``urn:oasis:names:tc:xacml:2.0:resource:resource-id``
(the person's INS as an XDS CX), ``LPS_ID_HOMOLOGATION_DMP``, ``urn:oasis:names:tc:xacml:2.0:subject:role``,
``Authentification_Mode`` and ``urn:oasis:names:tc:xspa:1.0:subject:purposeofuse``.

Signature verification: the certificate in ``ds:KeyInfo`` must be issued by one of the trust anchors (the test
PKI) and be valid now; the XML signature is verified with ``signxml`` against that certificate (SHA-1 and SHA-2
methods accepted: the ANS samples use rsa-sha1), and the signed reference must be the assertion itself (no
wrapping). Strictness: ``strict`` (every deviation refuses), ``lenient`` (deviations are warnings; a missing
assertion still refuses), ``off``.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from lxml import etree

from harness.fields.identity import INS, InsError, parse_xds_patient_id
from harness.validators import Finding, Severity

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS = {"saml2": SAML, "ds": DS, "wsse": WSSE}

ATTR_VERSION = "VIHF_Version"
ATTR_SECTOR = "Secteur_Activite"
ATTR_RESOURCE_URN = "Ressource_URN"
ATTR_RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ATTR_HOMOLOGATION = "LPS_ID_HOMOLOGATION_DMP"
ATTR_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ATTR_AUTH_MODE = "Authentification_Mode"
ATTR_PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
REQUIRED = (
    ATTR_VERSION,
    ATTR_SECTOR,
    ATTR_RESOURCE_URN,
    ATTR_RESOURCE_ID,
    ATTR_HOMOLOGATION,
    ATTR_ROLE,
    ATTR_AUTH_MODE,
    ATTR_PURPOSE,
)
AUTH_MODES = frozenset({"DIRECTE", "INDIRECTE", "AUTRE"})
OID_SECTOR = "1.2.250.1.71.4.2.4"


class Strictness(StrEnum):
    STRICT = "strict"
    LENIENT = "lenient"
    OFF = "off"


@dataclass(frozen=True)
class VihfPolicy:
    strictness: Strictness = Strictness.STRICT
    require_signature: bool = True
    clock_skew: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(hours=2)  # without saml2:Conditions, IssueInstant must be this recent


@dataclass
class VihfReport:
    """What was found in the ``wsse:Security`` header."""

    findings: list[Finding] = field(default_factory=list)
    present: bool = False
    signed: bool = False
    attributes: dict[str, list[str]] = field(default_factory=dict)
    resource_ins: INS | None = None
    signer: x509.Certificate | None = None
    subject: str | None = None

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)

    def first(self, name: str) -> str | None:
        values = self.attributes.get(name)
        return values[0] if values else None


def _attribute_values(assertion: etree._Element) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for attribute in assertion.findall("saml2:AttributeStatement/saml2:Attribute", NS):
        values = []
        for value in attribute.findall("saml2:AttributeValue", NS):
            coded = value.find("*")
            if coded is not None:  # hl7:Role / hl7:PurposeOfUse (CE)
                values.append(f"{coded.get('code', '')}^{coded.get('codeSystem', '')}")
            else:
                values.append((value.text or "").strip())
        out.setdefault(attribute.get("Name", ""), []).extend(values)
    return out


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _issued_by(cert: x509.Certificate, anchors: Sequence[x509.Certificate]) -> bool:
    for anchor in anchors:
        try:
            cert.verify_directly_issued_by(anchor)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return True
    return False


class SignatureCache:
    """Assertions whose XML signature already verified (by SHA-256 of their bytes), and certificates already found
    issued by a trust anchor: a DUI reuses its VIHF for a session, and identical bytes verify identically. The
    validity window and the attributes are still checked on every request. Bounded, thread-safe; one per simulator."""

    def __init__(self, size: int = 4096) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._assertions: OrderedDict[bytes, x509.Certificate] = OrderedDict()
        self._issued: set[bytes] = set()

    def signer(self, key: bytes) -> x509.Certificate | None:
        with self._lock:
            cert = self._assertions.get(key)
            if cert is not None:
                self._assertions.move_to_end(key)
            return cert

    def remember(self, key: bytes, cert: x509.Certificate) -> None:
        with self._lock:
            self._assertions[key] = cert
            while len(self._assertions) > self._size:
                self._assertions.popitem(last=False)

    def issued(self, fingerprint: bytes) -> bool:
        with self._lock:
            return fingerprint in self._issued

    def trust(self, fingerprint: bytes) -> None:
        with self._lock:
            if len(self._issued) < self._size:
                self._issued.add(fingerprint)


def _verify_signature(
    assertion: etree._Element,
    anchors: Sequence[x509.Certificate],
    now: datetime,
    report: VihfReport,
    add,  # noqa: ANN001
    cache: SignatureCache | None = None,
) -> None:
    serialized = etree.tostring(assertion)
    key = hashlib.sha256(serialized).digest()
    known = cache.signer(key) if cache is not None else None
    if known is not None:
        if not (known.not_valid_before_utc <= now <= known.not_valid_after_utc):
            add("VIHF-CERTIFICAT-EXPIRE", "le certificat signataire n'est pas valide à cette date")
            return
        report.signer, report.signed = known, True
        return
    signature = assertion.find("ds:Signature", NS)
    if signature is None:
        add("VIHF-SIGNATURE-ABSENTE", "l'assertion VIHF n'est pas signée (ds:Signature absent)")
        return
    cert_text = signature.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
    if not cert_text or not cert_text.strip():
        add("VIHF-CERTIFICAT-ABSENT", "ds:KeyInfo/ds:X509Data/ds:X509Certificate absent de la signature VIHF")
        return
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode("".join(cert_text.split()), validate=True))
    except (ValueError, TypeError):
        add("VIHF-CERTIFICAT-ILLISIBLE", "le certificat de la signature VIHF n'est pas un X.509 DER/base64 lisible")
        return
    report.signer = cert
    fingerprint = cert.fingerprint(hashes.SHA256())
    if cache is not None and cache.issued(fingerprint):
        pass
    elif not _issued_by(cert, anchors):
        add(
            "VIHF-CERTIFICAT-NON-RECONNU",
            f"le certificat signataire ({cert.subject.rfc4514_string()}) n'est pas émis par l'IGC de test",
        )
        return
    elif cache is not None:
        cache.trust(fingerprint)
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        add("VIHF-CERTIFICAT-EXPIRE", "le certificat signataire n'est pas valide à cette date")
        return
    from signxml import DigestAlgorithm, SignatureMethod, XMLVerifier
    from signxml.exceptions import InvalidInput
    from signxml.exceptions import InvalidSignature as XmlInvalidSignature
    from signxml.verifier import SignatureConfiguration

    config = SignatureConfiguration(
        expect_references=1,
        signature_methods=frozenset(SignatureMethod),
        digest_algorithms=frozenset(DigestAlgorithm),
        location="./",
    )
    try:
        result = XMLVerifier().verify(serialized, x509_cert=cert, id_attribute="ID", expect_config=config)
    except (XmlInvalidSignature, InvalidInput, ValueError) as exc:
        add("VIHF-SIGNATURE-INVALIDE", f"signature XML de l'assertion VIHF invalide: {exc}")
        return
    signed = result.signed_xml  # type: ignore[union-attr]
    if signed is None or signed.tag != f"{{{SAML}}}Assertion" or signed.get("ID") != assertion.get("ID"):
        add("VIHF-SIGNATURE-REFERENCE", "la signature ne porte pas sur l'assertion elle-même")
        return
    report.signed = True
    if cache is not None:
        cache.remember(key, cert)


def _check_times(assertion: etree._Element, policy: VihfPolicy, now: datetime, add: Callable[[str, str], None]) -> None:
    """IssueInstant and saml2:Conditions NotBefore / NotOnOrAfter against ``now`` (with the policy's skew);
    without Conditions, an assertion older than ``policy.max_age`` is expired."""
    issued = _parse_time(assertion.get("IssueInstant"))
    if issued is None:
        add("VIHF-ISSUE-INSTANT", "IssueInstant absent ou mal formé")
    conditions = assertion.find("saml2:Conditions", NS)
    not_before = _parse_time(conditions.get("NotBefore")) if conditions is not None else None
    not_after = _parse_time(conditions.get("NotOnOrAfter")) if conditions is not None else None
    if not_before is not None and now + policy.clock_skew < not_before:
        add("VIHF-PAS-ENCORE-VALIDE", f"assertion pas encore valide (NotBefore {not_before.isoformat()})")
    if not_after is not None and now - policy.clock_skew >= not_after:
        add("VIHF-EXPIREE", f"assertion expirée (NotOnOrAfter {not_after.isoformat()})")
    if issued is not None:
        if issued > now + policy.clock_skew:
            add("VIHF-DANS-LE-FUTUR", f"IssueInstant {issued.isoformat()} dans le futur")
        elif not_after is None and now - issued > policy.max_age:
            add("VIHF-EXPIREE", f"assertion émise il y a plus de {policy.max_age} (IssueInstant {issued.isoformat()})")


def check_vihf(
    security: etree._Element | None,
    *,
    anchors: Sequence[x509.Certificate],
    policy: VihfPolicy = VihfPolicy(),
    now: datetime | None = None,
    expected_resource_urn: str = "urn:dmp",
    cache: SignatureCache | None = None,
) -> VihfReport:
    """Check the VIHF assertion found in ``wsse:Security`` (``None`` when the header is absent)."""
    report = VihfReport()
    if policy.strictness is Strictness.OFF:
        return report
    now = now or datetime.now(UTC)
    severity = Severity.ERROR if policy.strictness is Strictness.STRICT else Severity.WARNING

    def add(code: str, message: str, level: Severity | None = None) -> None:
        report.findings.append(Finding(code, message, level or severity, "wsse:Security/saml2:Assertion"))

    assertion = security.find("saml2:Assertion", NS) if security is not None else None
    if assertion is None:
        add("VIHF-ABSENT", "aucune assertion VIHF (wsse:Security/saml2:Assertion) dans l'en-tête SOAP", Severity.ERROR)
        return report
    report.present = True
    if assertion.get("Version") != "2.0":
        add("VIHF-SAML-VERSION", f"Version SAML 2.0 attendue, reçu {assertion.get('Version')!r}")
    if not assertion.get("ID"):
        add("VIHF-ID", "attribut ID de l'assertion absent")
    _check_times(assertion, policy, now, add)
    report.subject = assertion.findtext("saml2:Subject/saml2:NameID", namespaces=NS)
    if not report.subject:
        add("VIHF-SUBJECT", "saml2:Subject/saml2:NameID absent")
    if assertion.find("saml2:AuthnStatement", NS) is None:
        add("VIHF-AUTHN", "saml2:AuthnStatement absent")
    attributes = _attribute_values(assertion)
    report.attributes = attributes
    for name in REQUIRED:
        if not any(v for v in attributes.get(name, [])):
            add(f"VIHF-ATTRIBUT-ABSENT:{name}", f"attribut VIHF obligatoire {name} absent ou vide")
    version = report.first(ATTR_VERSION)
    if version and version != "3.0":
        add("VIHF-VERSION", f"VIHF_Version 3.0 attendue, reçu {version!r}")
    urn = report.first(ATTR_RESOURCE_URN)
    if urn and urn != expected_resource_urn:
        add("VIHF-RESSOURCE-URN", f"Ressource_URN {expected_resource_urn} attendu, reçu {urn!r}")
    sector = report.first(ATTR_SECTOR)
    if sector and not sector.endswith(f"^{OID_SECTOR}"):
        add("VIHF-SECTEUR", f"Secteur_Activite attendu sous la forme code^{OID_SECTOR}, reçu {sector!r}")
    mode = report.first(ATTR_AUTH_MODE)
    if mode and mode not in AUTH_MODES:
        add("VIHF-AUTH-MODE", f"Authentification_Mode {mode!r} hors de {', '.join(sorted(AUTH_MODES))}")
    for role in attributes.get(ATTR_ROLE, []):
        code, _, system = role.partition("^")
        if not code or not system:
            add("VIHF-ROLE", f"rôle sans code ni codeSystem ({role!r})")
    purpose = report.first(ATTR_PURPOSE)
    if purpose and not purpose.split("^")[0]:
        add("VIHF-PURPOSE", "purposeofuse sans code")
    resource = report.first(ATTR_RESOURCE_ID)
    if resource:
        try:
            report.resource_ins = parse_xds_patient_id(resource)
        except InsError as exc:
            add("VIHF-RESOURCE-ID", f"resource-id {resource!r} n'est pas un INS valide ({exc.code})")
    if policy.require_signature:
        _verify_signature(assertion, anchors, now, report, add, cache)
    return report


VIHF_STRUCTURE = "VIHF-STRUCTURE"


def structure_mismatch(
    report: VihfReport, policy: VihfPolicy, *, certificate_structure: str | None, tls: bool = True
) -> str | None:
    """One structure per request (DMP integration guide, VIHF indirect authentication): the TLS client certificate
    (OU ``1`` + FINESS; ``tls`` false when there is no connection, a saved request), the certificate that signed
    the VIHF and ``Identifiant_Structure`` name the same structure. Returns what each names when they differ (or
    ``Identifiant_Structure`` is absent), ``None`` when they agree or the VIHF is not checked."""
    if policy.strictness is Strictness.OFF or not report.present:
        return None
    declared = report.first("Identifiant_Structure")
    signer = None
    if report.signer is not None:
        values = report.signer.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATIONAL_UNIT_NAME)
        signer = str(values[0].value) if values else None
    named = {
        **({"certificat TLS": certificate_structure} if tls else {}),
        "signataire du VIHF": signer,
        "Identifiant_Structure": declared,
    }
    present = {
        k: v for k, v in named.items() if v is not None and (k != "signataire du VIHF" or policy.require_signature)
    }
    if declared is None or len(set(present.values())) > 1:
        return ", ".join(f"{k} {v or 'absent'}" for k, v in named.items())
    return None


def structure_finding(detail: str) -> Finding:
    """The finding of :func:`structure_mismatch`."""
    return Finding(VIHF_STRUCTURE, f"structures différentes : {detail}", Severity.ERROR, "VIHF")
