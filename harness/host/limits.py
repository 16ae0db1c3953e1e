"""Bounded request heads for every HTTP simulator: an oversized request is answered in the simulator's own error
shape and journaled, instead of uvicorn's plain-text 400 or a dropped connection.

uvicorn's h11 protocol refused a request head larger than ``h11_max_incomplete_event_size`` (16 KiB by default)
before any application saw it: a 60 KB header got ``400 Invalid HTTP request received.`` in plain text, a 1 MB query
a reset connection, and neither reached the journal. The service host's HTTP protocol
(:class:`harness.host.asgi_tls.TLSAwareHttpToolsProtocol`) lets heads up to :data:`MAX_HEAD_BYTES` through (the bound
past which uvicorn's own plain 400 answers) and wraps each simulator's ASGI app in :class:`RequestLimitGuard`, which
refuses, before the app runs:

- a query string longer than ``max_query_bytes``: HTTP 414 URI Too Long (RFC 9110 §15.5.15);
- header fields larger than ``max_header_bytes`` in total: HTTP 431 Request Header Fields Too Large (RFC 6585 §5);

in the error shape of the simulator's protocol (:attr:`harness.host.simulator.Simulator.http_error_shape`): OAuth
JSON ``{"error": "invalid_request", ...}`` (RFC 6749 §5.2, Pro Santé Connect), a FHIR ``OperationOutcome`` with
issue code ``too-long`` (FHIR R4 IssueType), a SOAP 1.2 ``env:Sender`` fault (INSi, DMP), or plain text. Each
refusal is journaled (operation ``http.oversized``) with the path, the sizes and the limits.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from starlette.types import ASGIApp, Receive, Scope, Send

from harness.core.journal import Direction, Exchange, Outcome

__all__ = ["MAX_HEAD_BYTES", "RequestLimitGuard", "RequestLimits", "error_response"]

#: The host's bound on a request head: larger heads get uvicorn's own plain 400 and the connection closed.
MAX_HEAD_BYTES = 2 * 1024 * 1024
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


@dataclass(frozen=True)
class RequestLimits:
    """The bounds of a request head (:attr:`harness.host.service_host.HostOptions.limits`; not read from the TOML)."""

    max_query_bytes: int = 16 * 1024
    max_header_bytes: int = 32 * 1024


def error_response(shape: str, status: int, message: str) -> tuple[bytes, str]:
    """Body and media type of a refusal in a protocol's error shape (``oauth``, ``fhir``, ``soap12``, ``text``)."""
    if shape == "oauth":
        return json.dumps({"error": "invalid_request", "error_description": message}, ensure_ascii=False).encode(), (
            "application/json"
        )
    if shape == "fhir":
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "too-long", "diagnostics": message}],
        }
        return json.dumps(outcome, ensure_ascii=False).encode(), "application/fhir+json"
    if shape == "soap12":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<env:Envelope xmlns:env="{SOAP12}"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value>'
            f'</env:Code><env:Reason><env:Text xml:lang="fr">{escape(message)}</env:Text></env:Reason></env:Fault>'
            "</env:Body></env:Envelope>"
        )
        return body.encode(), "application/soap+xml; charset=utf-8"
    return (message + "\n").encode(), "text/plain; charset=utf-8"


class RequestLimitGuard:
    """ASGI middleware in front of one simulator's app: refuse oversized request heads, journaled (see module)."""

    def __init__(self, app: ASGIApp, *, shape: str, limits: RequestLimits, record: Callable[[Exchange], Any]) -> None:
        self.app = app
        self.shape = shape
        self.limits = limits
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = len(scope.get("query_string") or b"")
        headers = sum(len(name) + len(value) + 4 for name, value in scope.get("headers") or ())
        if query > self.limits.max_query_bytes:
            status, code = 414, "HTTP-414"
            message = f"requête refusée : chaîne de requête de {query} octets (au plus {self.limits.max_query_bytes})"
        elif headers > self.limits.max_header_bytes:
            status, code = 431, "HTTP-431"
            message = f"requête refusée : en-têtes de {headers} octets (au plus {self.limits.max_header_bytes})"
        else:
            await self.app(scope, receive, send)
            return
        path = str(scope.get("root_path", "")) + str(scope.get("path", ""))
        await asyncio.to_thread(  # the journal commit blocks: not on the event loop
            self.record,
            Exchange(
                service="",  # stamped by the simulator's context
                operation="http.oversized",
                direction=Direction.FROM_DUI,
                outcome=Outcome.REJECTED,
                error_code=code,
                error_message=message,
                details={
                    "method": scope.get("method"),
                    "path": path[:300],
                    "query_bytes": query,
                    "header_bytes": headers,
                    "max_query_bytes": self.limits.max_query_bytes,
                    "max_header_bytes": self.limits.max_header_bytes,
                    "http_status": status,
                },
            ),
        )
        body, media_type = error_response(self.shape, status, message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", media_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
