"""Tests of harness.fields.pki: the throw-away test PKI imitating the IGC-Santé TEST hierarchy."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import stat
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.fields.pki import INTERMEDIATE_CN, ROOT_CN, IssuedCert, TestPKI

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A read-only PKI shared by the tests that do not modify it."""
    return TestPKI.create(tmp_path_factory.mktemp("pki"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    (attribute,) = name.get_attributes_for_oid(oid)
    return str(attribute.value)


def _server_verifier(
    pki: TestPKI, subject: verification.DNSName | verification.IPAddress
) -> verification.ServerVerifier:
    builder = verification.PolicyBuilder().store(verification.Store([pki.root.cert])).time(_now())
    return builder.build_server_verifier(subject)


def _client_verifier(pki: TestPKI) -> verification.ClientVerifier:
    # The web PKI profile wants a SubjectAlternativeName on client certificates; organisation certificates
    # (like the IGC-Santé ORG ones this imitates) identify the client by their subject DN instead.
    ee_policy = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
    )
    return (
        verification.PolicyBuilder()
        .store(verification.Store([pki.root.cert]))
        .time(_now())
        .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
        .build_client_verifier()
    )


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# ---------------------------------------------------------------------- files


def test_files_are_written(pki: TestPKI) -> None:
    names = {p.name for p in pki.directory.iterdir()}
    expected = {
        "ca.pem",
        "ca.key",
        "intermediate.pem",
        "intermediate.key",
        "ca-bundle.pem",
        "server.pem",
        "server.key",
        "server-chain.pem",
        "client-INSI-AUTO.pem",
        "client-INSI-AUTO.key",
        "client-INSI-AUTO-chain.pem",
    }
    assert expected <= names
    assert not [n for n in names if n.endswith(".tmp")]

    bundle = x509.load_pem_x509_certificates(pki.ca_bundle_path.read_bytes())
    assert bundle == [pki.root.cert, pki.intermediate.cert]
    server_chain = x509.load_pem_x509_certificates(pki.server.chain_path.read_bytes())
    assert server_chain == [pki.server.cert, pki.intermediate.cert]
    assert pki.ca_path.read_bytes().count(b"BEGIN CERTIFICATE") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_private_keys_are_0600_and_unencrypted(pki: TestPKI) -> None:
    for key in ("ca.key", "intermediate.key", "server.key", "client-INSI-AUTO.key"):
        path = pki.directory / key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, key
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----"), key


# ---------------------------------------------------------------------- hierarchy


def test_root_and_intermediate_look_like_igc_sante_test(pki: TestPKI) -> None:
    root, inter = pki.root.cert, pki.intermediate.cert
    assert pki.root.common_name == ROOT_CN == "TEST AC IGC-SANTE RACINE"
    assert pki.intermediate.common_name == INTERMEDIATE_CN == "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS"
    assert root.subject == root.issuer
    assert inter.issuer == root.subject
    for cert in (root, inter):
        assert _attr(cert.subject, NameOID.COUNTRY_NAME) == "FR"
        assert _attr(cert.subject, NameOID.ORGANIZATION_NAME) in {"ASIP-SANTE", "ANS"}
        assert _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME).startswith("IGC-SANTE TEST")
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"

    root_bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    inter_bc = inter.extensions.get_extension_for_class(x509.BasicConstraints)
    assert root_bc.critical and root_bc.value.ca and root_bc.value.path_length == 1
    assert inter_bc.critical and inter_bc.value.ca and inter_bc.value.path_length == 0


def test_signatures_chain_up_to_the_root(pki: TestPKI) -> None:
    pki.root.cert.verify_directly_issued_by(pki.root.cert)
    pki.intermediate.cert.verify_directly_issued_by(pki.root.cert)
    pki.server.cert.verify_directly_issued_by(pki.intermediate.cert)
    pki.client("INSI-AUTO").cert.verify_directly_issued_by(pki.intermediate.cert)


def test_validity_is_backdated_one_hour(pki: TestPKI) -> None:
    starts = {c.cert.not_valid_before_utc for c in (pki.root, pki.intermediate, pki.server, pki.client("INSI-AUTO"))}
    assert len(starts) == 1
    (start,) = starts
    assert dt.timedelta(minutes=59) < _now() - start < dt.timedelta(minutes=70)
    remaining = pki.server.not_valid_after - _now()
    assert dt.timedelta(days=29) < remaining <= dt.timedelta(days=30)


# ---------------------------------------------------------------------- server certificate


def test_server_certificate_san_and_eku(pki: TestPKI) -> None:
    cert = pki.server.cert
    assert pki.server.common_name == "localhost"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert set(pki.hostnames) == {"localhost", "127.0.0.1", "::1"}
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


@pytest.mark.parametrize(
    "subject",
    [
        verification.DNSName("localhost"),
        verification.IPAddress(ipaddress.ip_address("127.0.0.1")),
        verification.IPAddress(ipaddress.ip_address("::1")),
    ],
    ids=["localhost", "ipv4", "ipv6"],
)
def test_server_chain_verifies_with_webpki_policy(pki: TestPKI, subject) -> None:
    chain = _server_verifier(pki, subject).verify(pki.server.cert, [pki.intermediate.cert])
    assert chain == [pki.server.cert, pki.intermediate.cert, pki.root.cert]


def test_server_chain_rejects_other_hostname_and_client_certificate(pki: TestPKI) -> None:
    with pytest.raises(verification.VerificationError):
        _server_verifier(pki, verification.DNSName("example.org")).verify(pki.server.cert, [pki.intermediate.cert])
    # a client certificate has no serverAuth EKU (nor SAN): not usable as a server certificate
    with pytest.raises(verification.VerificationError):
        verifier = _server_verifier(pki, verification.DNSName("localhost"))
        verifier.verify(pki.client("INSI-AUTO").cert, [pki.intermediate.cert])


def test_server_chain_needs_the_intermediate(pki: TestPKI) -> None:
    with pytest.raises(verification.VerificationError):
        _server_verifier(pki, verification.DNSName("localhost")).verify(pki.server.cert, [])


# ---------------------------------------------------------------------- client certificates


def test_insi_auto_client_certificate(pki: TestPKI) -> None:
    client = pki.client("INSI-AUTO")
    assert isinstance(client, IssuedCert)
    assert client.name == client.common_name == "INSI-AUTO"
    assert client.cert_path == pki.directory / "client-INSI-AUTO.pem"
    assert client.key_path == pki.directory / "client-INSI-AUTO.key"
    assert client.organisation
    structure_id = client.organisational_unit
    assert structure_id is not None and len(structure_id) == 10 and structure_id.isdigit()
    assert structure_id.startswith("1") and _luhn_ok(structure_id[1:])
    eku = client.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert list(pki.clients) == ["INSI-AUTO"]

    chain = _client_verifier(pki).verify(client.cert, [pki.intermediate.cert]).chain
    assert chain == [client.cert, pki.intermediate.cert, pki.root.cert]


def test_server_certificate_is_not_a_client_certificate(pki: TestPKI) -> None:
    with pytest.raises(verification.VerificationError):
        _client_verifier(pki).verify(pki.server.cert, [pki.intermediate.cert])


def test_unknown_client_is_a_key_error(pki: TestPKI) -> None:
    with pytest.raises(KeyError, match="INSI-MANU"):
        pki.client("INSI-MANU")
    with pytest.raises(KeyError):
        pki.client_ssl_context("INSI-MANU")


def test_issue_client_later_and_load_it_back(tmp_path: Path) -> None:
    pki = TestPKI.create(tmp_path)
    manu = pki.issue_client("INSI-MANU", "EHPAD DES TILLEULS", structure_id="1990000018")
    assert manu.common_name == "INSI-MANU"
    assert manu.organisation == "EHPAD DES TILLEULS"
    assert manu.organisational_unit == "1990000018"
    assert set(pki.clients) == {"INSI-AUTO", "INSI-MANU"}
    _client_verifier(pki).verify(manu.cert, [pki.intermediate.cert])

    again = TestPKI.load(tmp_path)
    assert again.client("INSI-MANU").cert == manu.cert
    # the default fake structure id is stable for a given (name, organisation)
    assert pki.issue_client("X1").organisational_unit == pki.issue_client("X1").organisational_unit


@pytest.mark.parametrize("name", ["", "../evil", "a b", "INSI/AUTO", "foo-chain", "x" * 65])
def test_invalid_client_names_are_refused(pki: TestPKI, name: str) -> None:
    with pytest.raises(ValueError):
        pki.issue_client(name)


# ---------------------------------------------------------------------- load / ensure


def test_load_gives_the_same_certificates(pki: TestPKI) -> None:
    loaded = TestPKI.load(pki.directory)
    assert loaded.root == pki.root
    assert loaded.intermediate == pki.intermediate
    assert loaded.server == pki.server
    assert dict(loaded.clients) == dict(pki.clients)


def test_load_of_an_incomplete_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        TestPKI.load(tmp_path)
    TestPKI.create(tmp_path)
    (tmp_path / "server.key").unlink()
    with pytest.raises(FileNotFoundError):
        TestPKI.load(tmp_path)


def test_load_detects_a_foreign_server_certificate(tmp_path: Path) -> None:
    a = TestPKI.create(tmp_path / "a")
    b = TestPKI.create(tmp_path / "b")
    (a.directory / "server.pem").write_bytes(b.server.cert_path.read_bytes())
    with pytest.raises(ValueError, match="server.pem"):
        TestPKI.load(a.directory)


def test_ensure_reuses_a_valid_pki(tmp_path: Path) -> None:
    first = TestPKI.ensure(tmp_path)
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    second = TestPKI.ensure(tmp_path)
    assert second.server == first.server and second.root == first.root
    assert second.client("INSI-AUTO") == first.client("INSI-AUTO")
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes

    # a newly wanted organisation client is issued without regenerating the hierarchy
    third = TestPKI.ensure(tmp_path, organisation_clients=("INSI-AUTO", "INSI-MANU"))
    assert third.root == first.root and third.server == first.server
    assert set(third.clients) == {"INSI-AUTO", "INSI-MANU"}


def test_ensure_recreates_when_expiring_incomplete_or_other_hostnames(tmp_path: Path) -> None:
    old = TestPKI.create(tmp_path, valid_days=30, now=_now() - dt.timedelta(days=29, hours=12))
    assert TestPKI.load(tmp_path).server == old.server
    renewed = TestPKI.ensure(tmp_path)  # only ~12 h left: < 1 day
    assert renewed.root.cert != old.root.cert
    assert renewed.server.not_valid_after - _now() > dt.timedelta(days=29)

    other = TestPKI.ensure(tmp_path, hostnames=("dui.test", "127.0.0.1"))
    assert other.server.common_name == "dui.test"
    assert other.root.cert != renewed.root.cert

    (tmp_path / "intermediate.key").unlink()
    rebuilt = TestPKI.ensure(tmp_path, hostnames=("dui.test", "127.0.0.1"))
    assert rebuilt.root.cert != other.root.cert
    assert (tmp_path / "intermediate.key").is_file()


def test_create_replaces_the_clients_of_a_previous_pki(tmp_path: Path) -> None:
    TestPKI.create(tmp_path, organisation_clients=("INSI-AUTO", "OLD-CLIENT"))
    fresh = TestPKI.create(tmp_path)
    assert set(fresh.clients) == {"INSI-AUTO"}
    assert set(TestPKI.load(tmp_path).clients) == {"INSI-AUTO"}


# ---------------------------------------------------------------------- TLS


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str = "localhost"
) -> tuple[dict | None, BaseException | None, BaseException | None]:
    """One TLS connection over loopback TCP; returns (server's view of the peer cert, server error, client error)."""
    result: dict[str, object] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                conn.settimeout(TIMEOUT)
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    result["peer"] = tls.getpeercert()
                    tls.sendall(b"OK")
            except (OSError, ssl.SSLError) as exc:
                result["server_error"] = exc

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=TIMEOUT) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                    assert tls.version() in {"TLSv1.2", "TLSv1.3"}
                    data = tls.recv(2)
                    if data != b"OK":
                        raise ConnectionError(f"unexpected reply {data!r}")
        except (OSError, ssl.SSLError) as exc:
            result["client_error"] = exc
        finally:
            thread.join(TIMEOUT)
        assert not thread.is_alive()
    return result.get("peer"), result.get("server_error"), result.get("client_error")  # type: ignore[return-value]


def _subject_cn(peer: dict) -> str | None:
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def test_server_context_settings(pki: TestPKI) -> None:
    ctx = pki.server_ssl_context()
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    client_ctx = pki.client_ssl_context()
    assert client_ctx.check_hostname and client_ctx.verify_mode == ssl.CERT_REQUIRED
    assert client_ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_mutual_tls_handshake_server_sees_insi_auto(pki: TestPKI) -> None:
    peer, server_error, client_error = _handshake(pki.server_ssl_context(), pki.client_ssl_context("INSI-AUTO"))
    assert server_error is None and client_error is None
    assert peer is not None and _subject_cn(peer) == "INSI-AUTO"
    issuer_cn = [v for rdn in peer["issuer"] for k, v in rdn if k == "commonName"]
    assert issuer_cn == [INTERMEDIATE_CN]


def test_tls_without_client_certificate_is_allowed_but_anonymous(pki: TestPKI) -> None:
    peer, server_error, client_error = _handshake(pki.server_ssl_context(), pki.client_ssl_context())
    assert server_error is None and client_error is None
    assert not peer  # CERT_OPTIONAL: the caller decides whether mutual TLS is required


def test_tls_over_ipv4_address_hostname(pki: TestPKI) -> None:
    _, server_error, client_error = _handshake(pki.server_ssl_context(), pki.client_ssl_context(), "127.0.0.1")
    assert server_error is None and client_error is None


def test_client_not_trusting_the_ca_fails(pki: TestPKI) -> None:
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA loaded at all
    peer, server_error, client_error = _handshake(pki.server_ssl_context(), untrusting)
    assert isinstance(client_error, ssl.SSLCertVerificationError)
    assert peer is None and server_error is not None


def test_client_with_wrong_hostname_fails(pki: TestPKI) -> None:
    _, _, client_error = _handshake(pki.server_ssl_context(), pki.client_ssl_context(), "example.org")
    assert isinstance(client_error, ssl.SSLCertVerificationError)


def test_server_rejects_a_client_certificate_from_another_pki(pki: TestPKI, tmp_path: Path) -> None:
    other = TestPKI.create(tmp_path)
    foreign_client = pki.client_ssl_context()  # trusts our server...
    foreign = other.client("INSI-AUTO")
    foreign_client.load_cert_chain(foreign.chain_path, foreign.key_path)  # ...but presents a foreign certificate
    peer, server_error, client_error = _handshake(pki.server_ssl_context(), foreign_client)
    assert peer is None
    assert isinstance(server_error, ssl.SSLError)
    assert client_error is not None


# ---------------------------------------------------------------------- instructions


def test_trust_instructions(pki: TestPKI) -> None:
    text = pki.trust_instructions()
    bundle = str(pki.ca_bundle_path.resolve())
    assert bundle in text
    assert f"curl --cacert {bundle}" in text
    assert f"export SSL_CERT_FILE={bundle}" in text
    assert "keytool -importcert" in text
    assert "update-ca-certificates" in text
    assert "/usr/local/share/ca-certificates/" in text
    # French first, English after
    assert text.index("Faites confiance") < text.index("Trust this file")
    assert "IGC-Santé" in text


def test_no_module_level_mutable_state() -> None:
    import harness.fields.pki as module

    mutable = {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("__") and isinstance(value, (list, dict, set, bytearray))
    }
    assert mutable == {}
