"""harness.host.asgi_tls: the client certificate of the (optional) mutual-TLS connection reaches ASGI apps."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from harness.core.config import package_root
from harness.core.journal import open_journal
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.host.asgi_tls import client_common_name
from harness.host.service_host import BackgroundHost, HostOptions, ServiceHost
from harness.host.simulator import RunState, Simulator


class Echo(Simulator):
    name = "echo"
    title = "echo"

    def http_app(self) -> ASGIApp:
        async def echo(request: Request) -> JSONResponse:
            tls = (request.scope.get("extensions") or {}).get("tls")
            return JSONResponse({"cn": client_common_name(request.scope), "tls": tls})

        return Starlette(routes=[Route("/", echo)])


def _host(tmp: Path, tls: bool) -> tuple[BackgroundHost, TestPKI, int]:
    pki = TestPKI.ensure(tmp / "pki", organisation_clients=("INSI-AUTO", "AUTRE"))
    host = ServiceHost(
        open_journal("sqlite:///:memory:"),
        pki,
        load_testdata(package_root() / "fixtures"),
        HostOptions(tls=tls),
        RunState("r"),
        registry={"echo": Echo},
    )
    background = BackgroundHost(host)
    endpoints = background.start()
    port = int(endpoints["echo"]["base"].rsplit(":", 1)[1].split("/")[0])
    return background, pki, port


@pytest.fixture(scope="module")
def tls_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestPKI, int]]:
    background, pki, port = _host(tmp_path_factory.mktemp("tls"), tls=True)
    yield pki, port
    background.stop()


def _get(port: int, context: ssl.SSLContext | None) -> dict:
    connection = (
        http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        if context
        else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    )
    try:
        connection.request("GET", "/echo/")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def _context(pki: TestPKI, client: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
    if client:
        context.load_cert_chain(str(pki.client(client).cert_path), str(pki.client(client).key_path))
    return context


@pytest.mark.parametrize("client", ["INSI-AUTO", "AUTRE"])
def test_client_certificate_reaches_the_app(tls_host: tuple[TestPKI, int], client: str) -> None:
    pki, port = tls_host
    seen = _get(port, _context(pki, client))
    assert seen["cn"] == client
    tls = seen["tls"]
    assert tls["client_cert_name"].startswith(f"CN={client},")
    [pem] = tls["client_cert_chain"]
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert ssl.PEM_cert_to_DER_cert(pem) == pki.client(client).cert.public_bytes(Encoding.DER)
    assert tls["tls_version"] in (0x0303, 0x0304)


def test_no_client_certificate_is_allowed_and_visible(tls_host: tuple[TestPKI, int]) -> None:
    pki, port = tls_host
    seen = _get(port, _context(pki, None))
    assert seen["cn"] is None and seen["tls"]["client_cert_chain"] == []


def test_plain_http_has_no_tls_extension(tmp_path: Path) -> None:
    background, _pki, port = _host(tmp_path, tls=False)
    try:
        assert _get(port, None) == {"cn": None, "tls": None}
    finally:
        background.stop()
