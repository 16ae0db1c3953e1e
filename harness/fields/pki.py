"""A throw-away test PKI that imitates the French IGC-Santé TEST hierarchy.

The ANS (Agence du Numérique en Santé, formerly ASIP-Santé) runs the "IGC-Santé" public key
infrastructure; its test ("TEST") hierarchy issues the certificates that DUI software presents to the
socle services (INSi, MSSanté, DMP ...) in their test environments, e.g. an organisation ("ORG")
certificate named ``INSI-AUTO`` for the INSi automated-call mode.  This module builds a look-alike chain:

    TEST AC IGC-SANTE RACINE                       (root, CA:true, pathlen 1)
    └── TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS (intermediate, CA:true, pathlen 0)
        ├── <hostname>                             (server certificate, serverAuth, SANs)
        └── INSI-AUTO, INSI-MANU, ...              (organisation client certificates, clientAuth)

It is NOT the real IGC-Santé test chain: the keys are generated locally (EC P-256), nothing here is
signed by the ANS, and no real service will accept these certificates.  It only lets the harness' mock
services speak (mutual) TLS with a DUI under test using names that look like the real ones.

Everything is done with the ``cryptography`` library (no ``openssl`` command).  Files written in the
PKI directory::

    ca.pem, ca.key                         root certificate and key
    intermediate.pem, intermediate.key     intermediate certificate and key
    ca-bundle.pem                          root + intermediate (what clients should trust)
    server.pem, server.key                 server leaf certificate and key
    server-chain.pem                       server leaf + intermediate (what a TLS server presents)
    client-<name>.pem, client-<name>.key   organisation client certificates and keys
    client-<name>-chain.pem                client leaf + intermediate

Private keys are written unencrypted with 0600 permissions.  A PKI can be re-opened with
:meth:`TestPKI.load`, or reused across runs with :meth:`TestPKI.ensure`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import ipaddress
import os
import re
import secrets
import shlex
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = (
    "DEFAULT_HOSTNAMES",
    "DEFAULT_ORGANISATION",
    "DEFAULT_ORGANISATION_CLIENTS",
    "INTERMEDIATE_CN",
    "ROOT_CN",
    "IssuedCert",
    "TestPKI",
)

ROOT_CN = "TEST AC IGC-SANTE RACINE"
INTERMEDIATE_CN = "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS"
CA_ORGANISATION = "ASIP-SANTE"
CA_ORGANISATIONAL_UNIT = "IGC-SANTE TEST"
DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_ORGANISATION_CLIENTS = ("INSI-AUTO",)
DEFAULT_ORGANISATION = "ETABLISSEMENT DE TEST SOCLE-HARNESS"

ROOT_CERT = "ca.pem"
ROOT_KEY = "ca.key"
INTERMEDIATE_CERT = "intermediate.pem"
INTERMEDIATE_KEY = "intermediate.key"
CA_BUNDLE = "ca-bundle.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
SERVER_CHAIN = "server-chain.pem"

_BACKDATE = dt.timedelta(hours=1)
_CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_CHAIN_SUFFIX = "-chain"


@dataclass(frozen=True)
class IssuedCert:
    """A certificate of the test PKI and where its files are."""

    name: str
    cert_path: Path
    key_path: Path
    chain_path: Path  # leaf + intermediate PEM (what a TLS peer presents)
    cert: x509.Certificate

    @property
    def common_name(self) -> str:
        return _common_name(self.cert.subject)

    @property
    def organisation(self) -> str | None:
        return _name_attribute(self.cert.subject, NameOID.ORGANIZATION_NAME)

    @property
    def organisational_unit(self) -> str | None:
        """For organisation client certificates: the fake structure identifier ("1" + FINESS-like)."""
        return _name_attribute(self.cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)

    @property
    def not_valid_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc


class TestPKI:
    """A test PKI on disk: root, intermediate, one server certificate and organisation client certificates.

    Build one with :meth:`create`, re-open it with :meth:`load`, or do either with :meth:`ensure`.
    """

    __test__ = False  # not a pytest test class despite its name
    __slots__ = ("directory", "root", "intermediate", "server", "_clients")

    def __init__(
        self,
        directory: Path,
        root: IssuedCert,
        intermediate: IssuedCert,
        server: IssuedCert,
        clients: Mapping[str, IssuedCert] = MappingProxyType({}),
    ) -> None:
        self.directory = directory
        self.root = root
        self.intermediate = intermediate
        self.server = server
        self._clients: dict[str, IssuedCert] = dict(clients)

    def __repr__(self) -> str:
        return (
            f"TestPKI({str(self.directory)!r}, server={self.server.common_name!r}, clients={sorted(self._clients)!r})"
        )

    # ------------------------------------------------------------------ paths and accessors

    @property
    def ca_path(self) -> Path:
        """The root certificate alone (``ca.pem``)."""
        return self.directory / ROOT_CERT

    @property
    def ca_bundle_path(self) -> Path:
        """Root + intermediate (``ca-bundle.pem``): what a client or a server verifying clients should trust."""
        return self.directory / CA_BUNDLE

    @property
    def clients(self) -> Mapping[str, IssuedCert]:
        return MappingProxyType(dict(self._clients))

    def client(self, name: str) -> IssuedCert:
        try:
            return self._clients[name]
        except KeyError:
            known = sorted(self._clients)
            raise KeyError(f"no client certificate named {name!r} in {self.directory} (known: {known})") from None

    @property
    def hostnames(self) -> tuple[str, ...]:
        """The DNS names and IP addresses of the server certificate's SubjectAlternativeName."""
        return _san_names(self.server.cert)

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(
        cls,
        directory: Path | str,
        *,
        hostnames: Iterable[str] = DEFAULT_HOSTNAMES,
        organisation_clients: Iterable[str] = DEFAULT_ORGANISATION_CLIENTS,
        valid_days: int = 30,
        now: dt.datetime | None = None,
    ) -> TestPKI:
        """Generate a fresh PKI in ``directory`` (created if needed; files of a previous PKI are replaced)."""
        directory = Path(directory)
        hostnames = tuple(hostnames)
        organisation_clients = tuple(organisation_clients)
        if not hostnames:
            raise ValueError("at least one hostname is needed for the server certificate")
        if valid_days < 1:
            raise ValueError(f"valid_days must be >= 1, not {valid_days}")
        for name in organisation_clients:
            _check_client_name(name)
        now = _utc(now)
        not_before = now - _BACKDATE
        not_after = now + dt.timedelta(days=valid_days)

        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("client-*"):
            if stale.suffix in (".pem", ".key") and stale.is_file():
                stale.unlink()

        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _ca_name(ROOT_CN)
        root_cert = (
            _builder(root_name, root_name, root_key.public_key(), not_before, not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        _write_key(directory / ROOT_KEY, root_key)
        _write_pem(directory / ROOT_CERT, [root_cert])

        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter_cert = (
            _builder(_ca_name(INTERMEDIATE_CN), root_name, inter_key.public_key(), not_before, not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False)
            .add_extension(_aki(root_cert), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        _write_key(directory / INTERMEDIATE_KEY, inter_key)
        _write_pem(directory / INTERMEDIATE_CERT, [inter_cert])
        _write_pem(directory / CA_BUNDLE, [root_cert, inter_cert])

        server_key = ec.generate_private_key(ec.SECP256R1())
        server_subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEFAULT_ORGANISATION),
                x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
            ]
        )
        server_cert = (
            _leaf_builder(server_subject, inter_cert, server_key, not_before, not_after)
            .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hostnames]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(inter_key, hashes.SHA256())
        )
        _write_key(directory / SERVER_KEY, server_key)
        _write_pem(directory / SERVER_CERT, [server_cert])
        _write_pem(directory / SERVER_CHAIN, [server_cert, inter_cert])

        pki = cls._assemble(directory, root_cert, inter_cert, server_cert)
        for name in organisation_clients:
            pki._issue_client(name, DEFAULT_ORGANISATION, None, inter_key, not_before)  # noqa: SLF001 - own class
        return pki

    @classmethod
    def load(cls, directory: Path | str) -> TestPKI:
        """Re-open a PKI written by :meth:`create`.

        Raises ``FileNotFoundError`` if a file is missing and ``ValueError`` if the files do not form one chain.
        """
        directory = Path(directory)
        root_cert = _read_cert(directory / ROOT_CERT)
        inter_cert = _read_cert(directory / INTERMEDIATE_CERT)
        server_cert = _read_cert(directory / SERVER_CERT)
        for required in (ROOT_KEY, INTERMEDIATE_KEY, SERVER_KEY, SERVER_CHAIN, CA_BUNDLE):
            if not (directory / required).is_file():
                raise FileNotFoundError(f"incomplete test PKI in {directory}: {required} is missing")
        _check_issued(root_cert, root_cert, ROOT_CERT)
        _check_issued(inter_cert, root_cert, INTERMEDIATE_CERT)
        _check_issued(server_cert, inter_cert, SERVER_CERT)
        _check_key_matches(directory / INTERMEDIATE_KEY, inter_cert)
        _check_key_matches(directory / SERVER_KEY, server_cert)

        clients: dict[str, IssuedCert] = {}
        for key_path in sorted(directory.glob("client-*.key")):
            name = key_path.stem.removeprefix("client-")
            cert_path, _, chain_path = _client_paths(directory, name)
            if not cert_path.is_file() or not chain_path.is_file():
                missing = f"certificate files of client {name!r} missing"
                raise FileNotFoundError(f"incomplete test PKI in {directory}: {missing}")
            cert = _read_cert(cert_path)
            _check_issued(cert, inter_cert, cert_path.name)
            _check_key_matches(key_path, cert)
            clients[name] = IssuedCert(name, cert_path, key_path, chain_path, cert)

        return cls._assemble(directory, root_cert, inter_cert, server_cert, clients)

    @classmethod
    def _assemble(
        cls,
        directory: Path,
        root: x509.Certificate,
        intermediate: x509.Certificate,
        server: x509.Certificate,
        clients: Mapping[str, IssuedCert] = MappingProxyType({}),
    ) -> TestPKI:
        d = directory
        return cls(
            directory,
            root=IssuedCert("root", d / ROOT_CERT, d / ROOT_KEY, d / ROOT_CERT, root),
            intermediate=IssuedCert(
                "intermediate", d / INTERMEDIATE_CERT, d / INTERMEDIATE_KEY, d / INTERMEDIATE_CERT, intermediate
            ),
            server=IssuedCert("server", d / SERVER_CERT, d / SERVER_KEY, d / SERVER_CHAIN, server),
            clients=clients,
        )

    @classmethod
    def ensure(
        cls,
        directory: Path | str,
        *,
        hostnames: Iterable[str] = DEFAULT_HOSTNAMES,
        organisation_clients: Iterable[str] = DEFAULT_ORGANISATION_CLIENTS,
        valid_days: int = 30,
        min_remaining: dt.timedelta = dt.timedelta(days=1),
        now: dt.datetime | None = None,
    ) -> TestPKI:
        """Reuse the PKI in ``directory`` if it is complete, covers ``hostnames`` and stays valid for more than
        ``min_remaining``; otherwise create a new one.  Missing organisation clients are issued on the fly."""
        hostnames = tuple(hostnames)
        organisation_clients = tuple(organisation_clients)
        now = _utc(now)
        with _exclusive(Path(directory)):  # two processes starting at once (a parallel run, run beside serve)
            try:
                pki = cls.load(directory)
            except (OSError, ValueError):
                pki = None
            if pki is not None and pki._reusable(hostnames, now + min_remaining):  # noqa: SLF001 - own class
                for name in organisation_clients:
                    if name not in pki.clients:
                        pki.issue_client(name, now=now)
                return pki
            return cls.create(
                directory,
                hostnames=hostnames,
                organisation_clients=organisation_clients,
                valid_days=valid_days,
                now=now,
            )

    def _reusable(self, hostnames: tuple[str, ...], valid_until: dt.datetime) -> bool:
        certs = (self.root.cert, self.intermediate.cert, self.server.cert)
        if any(c.not_valid_after_utc <= valid_until for c in certs):
            return False
        if not hostnames or self.server.common_name != hostnames[0]:
            return False
        wanted = {_normalise_host(h) for h in hostnames}
        return wanted <= {_normalise_host(h) for h in self.hostnames}

    def issue_client(
        self,
        name: str,
        organisation: str = DEFAULT_ORGANISATION,
        *,
        structure_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> IssuedCert:
        """Issue (or re-issue) an organisation client certificate ``CN=name`` (e.g. ``"INSI-MANU"``).

        ``structure_id`` goes in the OU; by default a fake FINESS-like identifier ("1" + 9 digits with a Luhn
        key) derived from ``name`` and ``organisation``, so it is stable across re-issues.
        """
        _check_client_name(name)
        key_path = self.directory / INTERMEDIATE_KEY
        inter_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(inter_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an EC private key")
        return self._issue_client(name, organisation, structure_id, inter_key, _utc(now) - _BACKDATE)

    def _issue_client(
        self,
        name: str,
        organisation: str,
        structure_id: str | None,
        inter_key: ec.EllipticCurvePrivateKey,
        not_before: dt.datetime,
    ) -> IssuedCert:
        structure_id = structure_id or _fake_structure_id(name, organisation)
        clash = [k for k in self._clients if k != name and k.casefold() == name.casefold()]
        if clash:
            raise ValueError(f"client name {name!r} clashes with {clash[0]!r} (file names may be case-insensitive)")
        inter_cert = self.intermediate.cert
        not_after = inter_cert.not_valid_after_utc  # never outlive the issuing CA
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, structure_id),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        cert = (
            _leaf_builder(subject, inter_cert, key, not_before, not_after)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(inter_key, hashes.SHA256())
        )
        cert_path, key_path, chain_path = _client_paths(self.directory, name)
        _write_key(key_path, key)
        _write_pem(cert_path, [cert])
        _write_pem(chain_path, [cert, inter_cert])
        issued = IssuedCert(name, cert_path, key_path, chain_path, cert)
        self._clients[name] = issued
        return issued

    # ------------------------------------------------------------------ TLS

    def server_ssl_context(self) -> ssl.SSLContext:
        """A TLS (>= 1.2) server context presenting ``server-chain.pem``.

        Client certificates are requested but optional (``CERT_OPTIONAL``) and verified against the CA bundle:
        callers decide whether mutual TLS is required by looking at ``getpeercert()``.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server.chain_path, self.server.key_path)
        ctx.load_verify_locations(cafile=self.ca_bundle_path)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def client_ssl_context(self, client: str | None = None) -> ssl.SSLContext:
        """A TLS (>= 1.2) client context trusting the CA bundle, with hostname checks; presents the
        ``client`` organisation certificate (e.g. ``"INSI-AUTO"``) if given."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=self.ca_bundle_path)
        if client is not None:
            issued = self.client(client)
            ctx.load_cert_chain(issued.chain_path, issued.key_path)
        return ctx

    # ------------------------------------------------------------------ documentation

    def trust_instructions(self) -> str:
        """How to make a DUI (or curl, Python, Java, the OS) trust this test CA: French first, then English."""
        bundle = shlex.quote(str(self.ca_bundle_path.resolve()))
        root = shlex.quote(str(self.ca_path.resolve()))
        inter = shlex.quote(str(self.intermediate.cert_path.resolve()))
        host = self.server.common_name
        url = f"https://{f'[{host}]' if ':' in host else host}:<port>/"
        keytool = (
            "keytool -importcert -noprompt -keystore socle-harness-truststore.p12 -storetype PKCS12 -storepass changeit"
        )
        java = (
            "java -Djavax.net.ssl.trustStore=socle-harness-truststore.p12 "
            "-Djavax.net.ssl.trustStorePassword=changeit ..."
        )
        system_crt = "/usr/local/share/ca-certificates/socle-harness-test-igc-sante.crt"
        install = f"sudo cp {root} {system_crt} && sudo update-ca-certificates"
        uninstall = f"sudo rm {system_crt} && sudo update-ca-certificates --fresh"
        mtls_fr = mtls_en = ""
        if self._clients:
            issued = self._clients[min(self._clients)]
            cert = shlex.quote(str(issued.cert_path.resolve()))
            key = shlex.quote(str(issued.key_path.resolve()))
            mtls = f"    curl --cacert {bundle} --cert {cert} --key {key} {url}\n"
            mtls_fr = f"\n  Avec le certificat client {issued.name} (TLS mutuel) :\n{mtls}"
            mtls_en = f"\n  With the {issued.name} client certificate (mutual TLS):\n{mtls}"
        return f"""\
AC de TEST socle-harness (imitation de la chaîne de test IGC-Santé de l'ANS — PAS une vraie AC)
==============================================================================================
Faites confiance à ce fichier (racine + intermédiaire) :
  {bundle}
Racine seule : {root}

  curl :
    curl --cacert {bundle} {url}
{mtls_fr}
  Python, OpenSSL, Git… (remplace le magasin de confiance par défaut pour ce shell) :
    export SSL_CERT_FILE={bundle}
    export REQUESTS_CA_BUNDLE={bundle}
  Node.js :
    export NODE_EXTRA_CA_CERTS={bundle}

  Java (keytool importe un certificat par alias) :
    {keytool} -alias socle-harness-test-racine -file {root}
    {keytool} -alias socle-harness-test-intermediaire -file {inter}
    puis : {java}

  Système (Debian/Ubuntu) — à retirer après les tests :
    {install}
    (retrait : {uninstall})

socle-harness TEST CA (imitates the ANS IGC-Santé test chain — NOT a real CA)
============================================================================
Trust this file (root + intermediate):
  {bundle}
Root only: {root}

  curl:
    curl --cacert {bundle} {url}
{mtls_en}
  Python, OpenSSL, Git... (replaces the default trust store for this shell):
    export SSL_CERT_FILE={bundle}
    export REQUESTS_CA_BUNDLE={bundle}
  Node.js:
    export NODE_EXTRA_CA_CERTS={bundle}

  Java (keytool imports one certificate per alias):
    {keytool} -alias socle-harness-test-root -file {root}
    {keytool} -alias socle-harness-test-intermediate -file {inter}
    then: {java}

  System-wide (Debian/Ubuntu) — remove it after testing:
    {install}
    (removal: {uninstall})
"""


# ---------------------------------------------------------------------- helpers


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(dt.timezone.utc)


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, CA_ORGANISATIONAL_UNIT),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _leaf_builder(
    subject: x509.Name,
    issuer: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        _builder(subject, issuer.subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_aki(issuer), critical=False)
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _normalise_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


def _san_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return tuple(san.get_values_for_type(x509.DNSName)) + ips


def _name_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value.decode() if isinstance(value, bytes) else value


def _common_name(name: x509.Name) -> str:
    return _name_attribute(name, NameOID.COMMON_NAME) or ""


def _luhn_key(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # positions that get doubled once the key is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _fake_structure_id(name: str, organisation: str) -> str:
    """ "1" (FINESS identifier type) + a FINESS-like number: fictitious département "99", 6 digits, Luhn key."""
    digest = int.from_bytes(hashlib.sha256(f"{organisation}\0{name}".encode()).digest()[:8], "big")
    body = f"99{digest % 1_000_000:06d}"
    return "1" + body + _luhn_key(body)


def _check_client_name(name: str) -> None:
    if not _CLIENT_NAME.fullmatch(name) or name.lower().endswith(_CHAIN_SUFFIX):
        raise ValueError(
            f"invalid client name {name!r}: use letters, digits, '-' and '_' (at most 64), "
            f"not ending with {_CHAIN_SUFFIX!r}"
        )


def _client_paths(directory: Path, name: str) -> tuple[Path, Path, Path]:
    stem = f"client-{name}"
    return directory / f"{stem}.pem", directory / f"{stem}.key", directory / f"{stem}{_CHAIN_SUFFIX}.pem"


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)  # the umask may have narrowed (or, for certificates, not) the mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_atomic(path, data, 0o600)


def _write_pem(path: Path, certs: list[x509.Certificate]) -> None:
    _write_atomic(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs), 0o644)


def _read_cert(path: Path) -> x509.Certificate:
    if not path.is_file():
        raise FileNotFoundError(f"incomplete test PKI in {path.parent}: {path.name} is missing")
    return x509.load_pem_x509_certificate(path.read_bytes())


def _check_issued(cert: x509.Certificate, issuer: x509.Certificate, label: str) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError) as exc:
        issuer_cn = _common_name(issuer.subject)
        raise ValueError(f"{label} is not issued by {issuer_cn!r}: {exc or type(exc).__name__}") from exc


def _check_key_matches(key_path: Path, cert: x509.Certificate) -> None:
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if key.public_key() != cert.public_key():
        raise ValueError(f"{key_path.name} does not match its certificate")


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold ``directory/.lock`` (``flock``) so that one process at a time checks, creates or completes the PKI;
    the others then load what it wrote instead of writing a second PKI over it."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
