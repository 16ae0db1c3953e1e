"""Oversized requests (a 60 KB header, a 1 MB query) get each protocol's error shape and are journaled, on every HTTP
simulator (harness.host.limits), instead of uvicorn's plain-text 400 or a dropped connection."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter, Outcome
from harness.host.limits import MAX_HEAD_BYTES, RequestLimits, error_response
from harness.runtime.environment import SocleEnvironment

BIG_HEADER = {"X-Remplissage": "a" * 60_000}

# service -> (a path of its HTTP app, the error shape of its protocol)
SERVICES = {
    "psc": ("/auth/realms/esante-wallet/protocol/openid-connect/token", "oauth"),
    "insi": ("/lps", "soap12"),
    "dmp": ("/", "soap12"),
    "tddui": ("/metadata", "fhir"),
    "eparcours": ("/metadata", "fhir"),
    "eprescription": ("/metadata", "fhir"),
    "mssante": ("/", "fhir"),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("limits")
    config = HarnessConfig(
        run_dir=tmp,
        journal=f"sqlite:///{tmp}/journal.sqlite",
        services=tuple(SERVICES),
        settings={"insi": {"synthetic_identities": 0}},
    )
    environment = SocleEnvironment(config)
    environment.start()
    yield environment
    environment.stop()


@pytest.fixture(scope="module")
def client(env: SocleEnvironment) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    with httpx.Client(verify=context, timeout=60) as http:
        yield http


def _raw_get(env: SocleEnvironment, url: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, context=context, timeout=60)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _url(env: SocleEnvironment, service: str) -> str:
    return env.endpoints[service]["base"] + SERVICES[service][0]


def test_error_shapes_are_exact() -> None:
    assert error_response("oauth", 431, "trop grand") == (
        b'{"error": "invalid_request", "error_description": "trop grand"}',
        "application/json",
    )
    body, media = error_response("fhir", 414, "trop long")
    assert media == "application/fhir+json" and json.loads(body) == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "too-long", "diagnostics": "trop long"}],
    }
    body, media = error_response("soap12", 431, "a < b")
    assert media == "application/soap+xml; charset=utf-8"
    assert b"<env:Value>env:Sender</env:Value>" in body and b"a &lt; b" in body
    assert error_response("text", 431, "x") == (b"x\n", "text/plain; charset=utf-8")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_60_kb_header_gets_431_in_the_protocol_shape_and_is_journaled(
    env: SocleEnvironment, client: httpx.Client, service: str
) -> None:
    mark = env.journal.last_seq()
    answer = client.post(_url(env, service), headers=BIG_HEADER, content=b"")
    limits = RequestLimits()
    _, expected_type = error_response(SERVICES[service][1], 431, "")
    assert answer.status_code == 431
    assert answer.headers["content-type"] == expected_type
    [exchange] = env.journal.query(JournalFilter(service=service, since_seq=mark))
    assert (exchange.operation, exchange.outcome, exchange.error_code) == (
        "http.oversized",
        Outcome.REJECTED,
        "HTTP-431",
    )
    size = exchange.details["header_bytes"]
    assert 60_000 < size < 61_000 and exchange.details["max_header_bytes"] == limits.max_header_bytes
    assert exchange.error_message == f"requête refusée : en-têtes de {size} octets (au plus {limits.max_header_bytes})"
    assert answer.content == error_response(SERVICES[service][1], 431, exchange.error_message)[0]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_1_mb_query_gets_414_in_the_protocol_shape_and_is_journaled(
    env: SocleEnvironment, client: httpx.Client, service: str
) -> None:
    mark = env.journal.last_seq()
    status, content = _raw_get(env, _url(env, service) + "?q=" + "b" * 1_000_000)  # httpx caps URLs at 64 KiB
    assert status == 414
    [exchange] = env.journal.query(JournalFilter(service=service, since_seq=mark))
    assert (exchange.operation, exchange.error_code, exchange.details["query_bytes"]) == (
        "http.oversized",
        "HTTP-414",
        1_000_002,
    )
    assert content == error_response(SERVICES[service][1], 414, exchange.error_message or "")[0]


def test_the_services_keep_serving_after_oversized_requests(env: SocleEnvironment, client: httpx.Client) -> None:
    client.post(_url(env, "psc"), headers=BIG_HEADER, content=b"")
    discovery = env.endpoints["psc"]["discovery"]
    assert client.get(discovery).status_code == 200
    assert client.get(env.endpoints["tddui"]["base"] + "/metadata").status_code in (200, 403)


def _raw_exchange(env: SocleEnvironment, service: str, payload: bytes) -> bytes:
    """Send ``payload`` as is on a fresh TLS connection to ``service``'s port; everything read until the server closes."""
    parts = urlsplit(_url(env, service))
    context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    with (
        socket.create_connection((parts.hostname or "", parts.port or 443), timeout=60) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        with contextlib.suppress(OSError):  # the server may close while the head is still being sent
            tls.sendall(payload)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := tls.recv(65536):
                answer += chunk
        return answer


def test_a_head_over_the_host_bound_gets_uvicorns_plain_400_and_the_connection_closes(env: SocleEnvironment) -> None:
    path = urlsplit(_url(env, "psc")).path
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Remplissage: ".encode() + b"a" * (MAX_HEAD_BYTES + 1)
    answer = _raw_exchange(env, "psc", head)
    message = b"Invalid HTTP request received."
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"content-type: text/plain; charset=utf-8\r\n" in answer and b"connection: close\r\n" in answer
    assert answer.endswith(b"\r\n\r\n" + message)  # then the server closed (recv returned b"")


def test_the_head_bound_does_not_count_bodies_nor_earlier_requests(env: SocleEnvironment) -> None:
    """A 3 MiB body after a small head, and three such requests on one keep-alive connection: none is refused (the
    bound is on the head of each request, not on the bytes of the connection)."""
    path = urlsplit(_url(env, "dmp")).path
    body = b"grant_type=password&x=" + b"c" * (3 * 1024 * 1024)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    last = request.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n", 1)
    answer = _raw_exchange(env, "dmp", request * 2 + last)
    assert answer.count(b"HTTP/1.1 ") == 3 and b"400 Bad Request" not in answer
    assert answer.count(b"HTTP/1.1 404 Not Found\r\n") == 3  # the mount's own answer: each head was parsed
