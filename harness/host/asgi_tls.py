"""The client certificate of a mutual-TLS connection, handed to ASGI apps (ASGI "TLS extension" 0.2).

uvicorn 0.54 verifies an optional client certificate when configured with ``ssl_cert_reqs=ssl.CERT_OPTIONAL``
and ``ssl_ca_certs=...``, but none of its HTTP protocols puts the peer certificate in the ASGI scope (its protocols
build ``scope`` without ``extensions``). :class:`TLSAwareHttpToolsProtocol` is uvicorn's httptools (llhttp)
protocol with two additions. (1) When a connection is made (asyncio calls ``connection_made`` once the TLS
handshake, client certificate included, has completed), it reads the certificate from the transport's
``ssl_object`` and wraps this connection's app so that every request scope carries ``scope["extensions"]["tls"]``
as the ASGI TLS extension specifies (asgiref "TLS Extension"):

    {"server_cert": None, "client_cert_chain": [<leaf PEM>], "client_cert_name": "CN=INSI-AUTO,...",
     "client_cert_error": None, "tls_version": 0x0304, "cipher_suite": None}

(2) A bound on the request head, which llhttp does not have: past :data:`harness.host.limits.MAX_HEAD_BYTES`
received before the head is complete, uvicorn's own ``400 Invalid HTTP request received.`` (plain text) and the
connection closed, as uvicorn's h11 protocol does past ``h11_max_incomplete_event_size``; a request target over
64 KiB (``httptools.parse_url``'s bound) is split into path and query here, so that a long query still reaches the
simulator's guard (a path over 64 KiB gets the plain 400). httptools replaced h11 for speed (issue 18: h11's
pure-Python parser was about a sixth of the PSC token endpoint's GIL time).

Python 3.11's ``ssl`` gives the leaf only (``get_verified_chain`` arrived in 3.13), so the chain holds the leaf.
A connection without a client certificate gets ``client_cert_chain == []``. Use it with
``uvicorn.Config(..., http=TLSAwareHttpToolsProtocol)``; plain-HTTP connections get no ``tls`` extension.

The certificate is parsed once per connection: each request scope of the connection also carries the parsed leaf
under :data:`PARSED_KEY` and its subject CN under :data:`CN_KEY` (scope keys outside the ASGI extension, which stays
as specified), which :func:`client_certificate` and :func:`client_common_name` read instead of parsing the PEM on
every request (the INSi profile showed it on each keep-alive request).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from harness.core.journal import Direction, Exchange, Outcome
from harness.host.connections import HEADER_TIMEOUT, ConnectionLimits
from harness.host.limits import MAX_HEAD_BYTES

__all__ = [
    "TLSAwareHttpToolsProtocol",
    "bounded_protocol",
    "client_certificate",
    "client_common_name",
    "handshake_journaling",
    "handshake_refusal",
    "tls_extension",
]

PARSED_KEY = "socle.client_cert"  # scope key: the parsed leaf (cryptography x509.Certificate), once per connection
CN_KEY = "socle.client_cert_cn"  # scope key: its subject CN ("" without one, None without a certificate)

_PARSE_URL_MAX = 65535  # httptools.parse_url's bound on a request target (llhttp's URL offsets are 16-bit)

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension dict for a transport, or ``None`` when the connection is not TLS."""
    facts = _tls_facts(transport)
    return facts[0] if facts is not None else None


def _tls_facts(transport: asyncio.BaseTransport) -> tuple[dict[str, Any], x509.Certificate | None] | None:
    """The ASGI TLS extension dict and the parsed client certificate, or ``None`` when the connection is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain: list[str] = []
    name: str | None = None
    leaf: x509.Certificate | None = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        try:
            leaf = x509.load_der_x509_certificate(der)
            name = leaf.subject.rfc4514_string()
        except ValueError:
            leaf = name = None
    extension = {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,  # with CERT_OPTIONAL an unverifiable certificate fails the handshake
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }
    return extension, leaf


class _WithTLSExtension:
    """ASGI middleware bound to one connection: adds that connection's TLS facts to each scope (the extension, and
    the certificate parsed once with its CN)."""

    __slots__ = ("app", "cn", "leaf", "tls")

    def __init__(self, app: Any, tls: dict[str, Any], leaf: x509.Certificate | None) -> None:
        self.app = app
        self.tls = tls
        self.leaf = leaf
        self.cn = _common_name(leaf)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["extensions"] = {**(scope.get("extensions") or {}), "tls": self.tls}
        scope[PARSED_KEY] = self.leaf
        scope[CN_KEY] = self.cn
        await self.app(scope, receive, send)


class TLSAwareHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the ASGI TLS extension (client certificate) in every request scope and a
    bound on the request head (see module)."""

    max_head_bytes = MAX_HEAD_BYTES
    _head_bytes = 0  # bytes received since the current request began, while its head is incomplete
    _in_body = False  # between the end of a request's head and the end of its body

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        facts = _tls_facts(transport)
        if facts is not None:
            self.app = _WithTLSExtension(self.app, *facts)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if not self._in_body:
            self._head_bytes += len(data)  # may count the first body bytes too: a bound, not a measure
            if self._head_bytes > self.max_head_bytes:
                self.send_400_response("Invalid HTTP request received.")  # uvicorn's own answer (h11 did the same)
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_body = True
        self._head_bytes = 0
        if len(self.url) <= _PARSE_URL_MAX:
            super().on_headers_complete()
            return
        # httptools.parse_url refuses targets over 64 KiB (a 400 before any app): split the origin-form target
        # (RFC 9112 §3.2.1, path "?" query) here, so that a long query reaches the simulator's guard (414, journaled).
        path, _, query = self.url.partition(b"?")
        self.url = path
        super().on_headers_complete()
        if "query_string" in self.scope:  # the ASGI task reads the scope once this callback has returned
            self.scope["query_string"] = query

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()


def client_certificate(scope: Mapping[str, Any]) -> x509.Certificate | None:
    """The client certificate of the request's connection (``None``: no TLS, or no certificate presented)."""
    if PARSED_KEY in scope:  # parsed once when the connection was made
        return scope[PARSED_KEY]
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    try:
        return x509.load_pem_x509_certificate(chain[0].encode("ascii"))
    except ValueError:
        return None


def client_common_name(scope: Mapping[str, Any]) -> str | None:
    """The subject CN of the request's client certificate, if any."""
    if CN_KEY in scope:
        return scope[CN_KEY]
    return _common_name(client_certificate(scope))


def _common_name(cert: x509.Certificate | None) -> str | None:
    if cert is None:
        return None
    values = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    if not values:
        return ""
    value = values[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def handshake_refusal(service: str, operation: str, address: Any, reason: str, listener: str) -> Exchange:
    """The journal row of a refused TLS handshake, the same on every listener (HTTPS, SMTP STARTTLS, IMAP
    STARTTLS): the peer address and the OpenSSL reason, so that a grappe sees a DUI that cannot connect."""
    peer = _peer(address)
    return Exchange(
        service=service,
        operation=operation,
        direction=Direction.FROM_DUI,
        outcome=Outcome.REJECTED,
        actor=peer,
        error_code="TLS-HANDSHAKE",
        error_message=f"négociation TLS refusée ({peer}) : {reason}",
        details={"peer": peer, "reason": reason, "listener": listener},
    )


def ssl_reason(error: BaseException | None) -> str:
    """The short OpenSSL reason of a handshake error (``CERTIFICATE_VERIFY_FAILED``...), else its text."""
    reason = getattr(error, "reason", None)
    return str(reason) if reason else str(error)


def _peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def handshake_journaling(
    protocol_class: type[asyncio.Protocol],
    context: ssl.SSLContext,
    on_refusal: Callable[[str, str], None],
    *,
    handshake_timeout: float = 30.0,
) -> Callable[..., asyncio.Protocol]:
    """A uvicorn ``http`` protocol factory that does the TLS handshake itself, so that a refused handshake (client
    certificate of another CA, plain HTTP on the HTTPS port, no common protocol version...) is reported to
    ``on_refusal(peer, reason)`` instead of being dropped silently by asyncio; the established connection goes to
    ``protocol_class`` exactly as if uvicorn had made it (``asyncio.loop.start_tls``, Python 3.11 API).

    Use ``uvicorn.Config(http=handshake_journaling(...))`` with no ``ssl_*`` options (this gate owns TLS).
    """

    class _TLSGate(asyncio.Protocol):
        def __init__(self, **kwargs: Any) -> None:
            self._kwargs = kwargs
            self._loop = kwargs.get("_loop") or asyncio.get_event_loop()
            self._transport: asyncio.Transport | None = None
            self._task: asyncio.Task[None] | None = None
            self._early: list[bytes] = []  # application data decrypted before the connection is handed over
            self._eof = False
            self._lost: tuple[Exception | None] | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a stream server
            transport.pause_reading()  # the ClientHello stays in the socket until start_tls reads it
            self._transport = transport
            self._task = self._loop.create_task(self._handshake(transport))

        async def _handshake(self, transport: asyncio.Transport) -> None:
            peer = _peer(transport.get_extra_info("peername"))
            try:
                tls = await self._loop.start_tls(
                    transport, self, context, server_side=True, ssl_handshake_timeout=handshake_timeout
                )
            except ssl.SSLError as exc:
                on_refusal(peer, ssl_reason(exc))
                transport.close()
                return
            except (OSError, TimeoutError, asyncio.CancelledError):
                transport.close()  # closed or silent before any TLS record: no handshake to report
                return
            if tls is None:
                transport.close()
                return
            inner = protocol_class(**self._kwargs)
            tls.set_protocol(inner)
            inner.connection_made(tls)
            for chunk in self._early:  # a request sent right after the handshake's Finished
                inner.data_received(chunk)
            self._early.clear()
            if self._eof:
                inner.eof_received()
            if self._lost is not None:
                inner.connection_lost(self._lost[0])

        def data_received(self, data: bytes) -> None:
            self._early.append(data)

        def eof_received(self) -> bool | None:
            self._eof = True
            return True

        def connection_lost(self, exc: Exception | None) -> None:
            self._lost = (exc,)

    return _TLSGate


_REFUSALS = {
    503: b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    408: b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
}


def bounded_protocol(
    limits: ConnectionLimits, on_refusal: Callable[[str, str, str], None], listener: str = "https"
) -> type[TLSAwareHttpToolsProtocol]:
    """:class:`TLSAwareHttpToolsProtocol` bounded by ``limits`` (:mod:`harness.host.connections`): a connection over the
    listener's or the peer's limit is answered 503 and closed, a request whose header section is not complete
    ``header_timeout`` seconds after the connection (or after the previous response) is answered 408 and closed;
    ``on_refusal(listener, peer, reason)`` is told each time. Idle keep-alive is uvicorn's ``timeout_keep_alive``."""

    class BoundedHTTPProtocol(TLSAwareHttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _peer(self) -> str:
            return str(self.client[0]) if self.client else "?"

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = self._peer()
            live = [
                c for c in self.connections if not c.transport.is_closing()
            ]  # refused ones may linger in TLS shutdown
            same = sum(1 for c in live if c.client and str(c.client[0]) == peer)
            reason = limits.refusal(len(live), same)
            if reason is not None:
                on_refusal(listener, peer, reason)
                transport.write(_REFUSALS[503])
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(limits.header_timeout, self._header_expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_expired(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            on_refusal(listener, self._peer(), HEADER_TIMEOUT)
            self.transport.write(_REFUSALS[408])
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                self._disarm()
            elif self.cycle is None or self.cycle.response_complete:
                self._arm()  # waiting for a request's header section: the clock runs, bytes do not reset it
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return BoundedHTTPProtocol
