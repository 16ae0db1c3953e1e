"""Test helpers: call an ASGI app as a mutual-TLS client presenting a certificate of a throw-away test PKI.

The FHIR services read the client certificate from the ASGI TLS extension (``scope["extensions"]["tls"]``, what
:class:`harness.host.asgi_tls.TLSAwareHttpToolsProtocol` puts there once the handshake verified it); Starlette's
``TestClient`` has no TLS, so :func:`presenting` adds that extension as uvicorn would.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from harness.fhir.access import establishment_certificate
from harness.fields.pki import IssuedCert, TestPKI

EHPAD = "990000016"  # EHPAD Les Tilleuls (fixtures/essms.json)
SSIAD = "990000024"  # SSIAD du Val, same organisme gestionnaire (990000008)
STRANGER = "990000115"  # a valid FINESS the grappe does not declare


@lru_cache(maxsize=1)
def session_pki() -> TestPKI:
    """One PKI for the test session: ESSMS certificates of the grappe, one of an unknown ESSMS, one non-ESSMS."""
    pki = TestPKI.create(Path(tempfile.mkdtemp(prefix="socle-pki-")), organisation_clients=())
    for finess in (EHPAD, SSIAD, STRANGER):
        pki.issue_client(establishment_certificate(finess), structure_id=f"1{finess}")
    pki.issue_client("INSI-AUTO", structure_id=f"1{EHPAD}")  # right OU, wrong name: not an establishment certificate
    return pki


def certificate(name: str) -> IssuedCert:
    return session_pki().client(name)


def essms(finess: str) -> IssuedCert:
    return certificate(establishment_certificate(finess))


def presenting(app: Any, cert: IssuedCert | None) -> Any:
    """``app`` as reached over mutual TLS with ``cert`` (``None``: a TLS connection without a client certificate)."""
    chain = [cert.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")] if cert is not None else []
    tls = {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": cert.cert.subject.rfc4514_string() if cert is not None else None,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": None,
    }

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": tls}}
        await app(scope, receive, send)

    return wrapped
