"""Hostile corpus, SOAP services (issue 15 item 9): INSi and the DMP's three endpoints under XML attacks (billion
laughs, external entity, 5,000-deep nesting), garbage and empty bodies, with and without the client certificate.

Each case asserts the pinned HTTP status, a SOAP 1.2 fault body (``application/soap+xml``, ``Fault`` element), one
journal row for the service, and that the endpoint answers the next request (a second request gets the same
answer: the service kept running and its state is unchanged). Statuses are each simulator's: the DMP answers
``400`` (SOAP 1.2 Part 2 §7.5.1: ``env:Sender``), INSi ``500`` as its guide writes for every fault, ``413`` for a
document beyond its parser's bounds once the caller is authenticated.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest
from hostile import BILLION_LAUGHS

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter
from harness.runtime.environment import SocleEnvironment

SOAP = "http://www.w3.org/2003/05/soap-envelope"
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<soap:Envelope xmlns:soap="' + SOAP.encode() + b'"><soap:Body>&x;</soap:Body></soap:Envelope>'
)
DEEP = (
    b'<soap:Envelope xmlns:soap="' + SOAP.encode() + b'"><soap:Body>'
    + b"<a>" * 5000 + b"</a>" * 5000 + b"</soap:Body></soap:Envelope>"
)  # fmt: skip
BODIES = {"billion-laughs": BILLION_LAUGHS, "xxe": XXE, "deep": DEEP, "garbage": b"\x00\xff" * 100, "empty": b""}
TARGETS = {  # endpoint -> certificate the caller presents
    ("insi", "soap"): "INSI-AUTO",
    ("dmp", "repository"): "ESSMS-990000016",
    ("dmp", "registry"): "ESSMS-990000016",
    ("dmp", "patients"): "ESSMS-990000016",
}


def expected(service: str, body: str, authenticated: bool) -> int:
    if service == "dmp":
        return 400
    return 413 if (body, authenticated) == ("deep", True) else 500


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("hostile-soap")
    env = SocleEnvironment(HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/j.sqlite", services=("insi", "dmp")))
    env.start()
    yield env
    env.stop()


def _client(env: SocleEnvironment, certificate: str | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    if certificate:
        issued = env.pki.client(certificate)
        context.load_cert_chain(str(issued.cert_path), str(issued.key_path))
    return httpx.Client(verify=context, timeout=30)


CASES = [(s, e, b, a) for (s, e) in TARGETS for b in BODIES for a in (True, False)]


@pytest.mark.parametrize(
    ("service", "endpoint", "body", "authenticated"),
    CASES,
    ids=[f"{s}-{e}-{b}-{'cert' if a else 'anonymous'}" for s, e, b, a in CASES],
)
def test_hostile_soap_request(
    env: SocleEnvironment, service: str, endpoint: str, body: str, authenticated: bool
) -> None:
    url = env.endpoints[service][endpoint]
    flt = JournalFilter(service=service)
    before = env.journal.count(flt)
    with _client(env, TARGETS[(service, endpoint)] if authenticated else None) as http:
        headers = {"content-type": "application/soap+xml; charset=utf-8"}
        first = http.post(url, content=BODIES[body], headers=headers)
        again = http.post(url, content=BODIES[body], headers=headers)
    status = expected(service, body, authenticated)
    assert (first.status_code, again.status_code) == (status, status)
    assert first.headers["content-type"].startswith("application/soap+xml")
    assert b"Fault" in first.content and SOAP.encode() in first.content
    assert b"root:" not in first.content and b"lol" not in first.content  # nothing expanded nor disclosed
    assert env.journal.count(flt) == before + 2


def _raw_post(env: SocleEnvironment, url: str, certificate: str | None, head_only_of: int) -> tuple[bytes, float]:
    """POST announcing ``head_only_of`` bytes but sending 1 KB of them: the answer (until the server closes) and
    how long it took."""
    import socket
    import time

    context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    if certificate:
        issued = env.pki.client(certificate)
        context.load_cert_chain(str(issued.cert_path), str(issued.key_path))
    host, port_path = url.removeprefix("https://").split(":", 1)
    port, _, path = port_path.partition("/")
    started = time.monotonic()
    with context.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=host) as sock:
        sock.sendall(
            f"POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/soap+xml; charset=utf-8\r\n"
            f"Content-Length: {head_only_of}\r\n\r\n".encode()
            + b"<" * 1024
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer, time.monotonic() - started


UNKNOWN_CALLERS = [
    ("insi", "soap", None, "desir_560"),
    ("insi", "soap", "ESSMS-990000016", "desir_560"),
    ("dmp", "repository", None, "TLS-CLIENT-CERT"),
    ("dmp", "registry", "INSI-AUTO", "TLS-CERT-ROLE"),
]


@pytest.mark.parametrize(
    ("service", "endpoint", "certificate", "code"), UNKNOWN_CALLERS, ids=[f"{c[0]}-{c[2]}" for c in UNKNOWN_CALLERS]
)
def test_a_caller_without_the_right_certificate_is_refused_before_its_body_is_read(
    env: SocleEnvironment, service: str, endpoint: str, certificate: str | None, code: str
) -> None:
    """60 MB announced, 1 KB sent: the fault comes at once (the server does not wait for, nor hold, the body), the
    connection is closed, the refusal journaled without a payload; the service answers the next caller."""
    mark = env.journal.last_seq()
    answer, took = _raw_post(env, env.endpoints[service][endpoint], certificate, 60_000_000)
    head, _, body = answer.partition(b"\r\n\r\n")
    status = 500 if service == "insi" else 400
    assert (
        head.split(b"\r\n")[0]
        == f"HTTP/1.1 {status} {'Internal Server Error' if status == 500 else 'Bad Request'}".encode()
    )
    assert b"\r\nconnection: close" in head.lower() and took < 5
    assert b"Fault" in body and code.encode() in body
    [row] = env.journal.query(JournalFilter(since_seq=mark, service=service))
    assert (row.error_code, row.payload) == (code, None)
    assert row.details.get("request_bytes", 0) == 0
    with _client(env, TARGETS[(service, endpoint)]) as http:  # the next, authenticated caller is served
        again = http.post(
            env.endpoints[service][endpoint], content=b"", headers={"content-type": "application/soap+xml"}
        )
    assert again.status_code == expected(service, "empty", True) and b"Fault" in again.content


# MTOM malformations at the DMP repository, authenticated (issue 15 item 9): a SOAP 1.2 fault naming the problem,
# journaled, the same answer to the same request (the service kept running), and bounded peak memory
MTOM_TYPE = 'multipart/related; boundary="B"; type="application/xop+xml"; start="<root>"'
ROOT_PART = (
    b'--B\r\nContent-Type: application/xop+xml; type="application/soap+xml"\r\nContent-ID: <root>\r\n\r\n'
    b'<env:Envelope xmlns:env="' + SOAP.encode() + b'"><env:Body/></env:Envelope>\r\n'
)


def _part(cid: str, data: bytes = b"x", extra: bytes = b"") -> bytes:
    return (
        b"--B\r\nContent-Type: application/octet-stream\r\nContent-ID: <"
        + cid.encode()
        + b">\r\n"
        + extra
        + (b"\r\n" + data + b"\r\n")
    )


MTOM_CASES = {
    "10000-parts": (ROOT_PART + b"".join(_part(f"p{i}") for i in range(10_000)) + b"--B--\r\n", "MTOM-TOO-MANY-PARTS"),
    "duplicate-content-id": (ROOT_PART + _part("a") + _part("a") + b"--B--\r\n", "MTOM-CONTENT-ID"),
    "start-names-no-part": (ROOT_PART.replace(b"<root>", b"<autre>") + b"--B--\r\n", "MTOM-START"),
    "part-header-over-8kb": (
        ROOT_PART + _part("a", extra=b"X-Long: " + b"h" * 9000 + b"\r\n") + b"--B--\r\n",
        "MTOM-MALFORMED",
    ),
    # parsed whole (under the 64 MB bound), then refused on its empty envelope: WS-Addressing headers missing
    "30mb-part": (
        ROOT_PART + _part("big", b"\x00" * 30 * 1024 * 1024) + b"--B--\r\n",
        "MessageAddressingHeaderRequired",
    ),
    "base64-garbage-part": (
        ROOT_PART
        + _part("b", b"%%% pas du base64 %%%" * 1000, b"Content-Transfer-Encoding: base64\r\n")
        + b"--B--\r\n",
        "MTOM-BASE64",
    ),
}


@pytest.mark.parametrize("case", sorted(MTOM_CASES))
def test_hostile_mtom_at_the_repository(env: SocleEnvironment, case: str) -> None:
    from pathlib import Path

    body, code = MTOM_CASES[case]
    url = env.endpoints["dmp"]["repository"]

    def rss() -> dict[str, int]:
        lines = Path("/proc/self/status").read_text().splitlines()
        return {k: int(v.split()[0]) for k, _, v in (x.partition(":") for x in lines) if k in ("VmRSS", "VmHWM")}

    mark = env.journal.last_seq()
    with _client(env, TARGETS[("dmp", "repository")]) as http:
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS (VmHWM), Linux >= 4.0
        before = rss()["VmRSS"]
        first = http.post(url, content=body, headers={"content-type": MTOM_TYPE})
        grown_mb = (rss()["VmHWM"] - before) / 1024
        again = http.post(url, content=body, headers={"content-type": MTOM_TYPE})
    assert (first.status_code, again.status_code) == (400, 400)
    assert first.headers["content-type"].startswith("application/soap+xml") and b"Fault" in first.content
    rows = env.journal.query(JournalFilter(since_seq=mark, service="dmp"))
    assert [r.outcome.value for r in rows] == ["rejected", "rejected"]
    assert [r.error_code for r in rows] == [code, code]
    assert grown_mb < 8 * len(body) / 1048576 + 48  # a few copies of the body at most (client included)
