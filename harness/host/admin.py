"""The admin token of a service host: what every ``/_admin`` endpoint of the simulators requires.

A random token is generated when the host starts (or given by its owner), written with the endpoints to the file
``serve --endpoints-file`` writes (mode 0600) and handed to the harness's own steps and drivers; it is never in
the public endpoints map (``/_harness/endpoints``) nor in a report. It is always required, on loopback too.

Transport: ``Authorization: Bearer <token>`` (RFC 6750 §2.1); a missing or wrong token is answered 401 with
``WWW-Authenticate: Bearer realm="socle-harness-admin"`` (RFC 6750 §3, ``error="invalid_token"`` when one was
presented) and journaled by the endpoint that refuses it.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

REALM = "socle-harness-admin"
TOKEN_BYTES = 32


def new_admin_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def admin_headers(token: str) -> dict[str, str]:
    """The headers a client of the admin endpoints sends."""
    return {"Authorization": f"Bearer {token}"}


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The bearer token of a request (``headers`` with lower-case names, as Starlette gives them)."""
    value = headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def admin_refusal(headers: Mapping[str, str], expected: str) -> tuple[str, str] | None:
    """``None`` when the request carries the admin token, else ``(error, WWW-Authenticate value)`` (RFC 6750 §3.1:
    no error code when no credentials were sent, ``invalid_token`` for a wrong one). An empty ``expected`` token
    authorises no one."""
    token = presented_token(headers)
    if token is not None and expected and hmac.compare_digest(token.encode(), expected.encode()):
        return None
    if token is None:
        return "invalid_request", f'Bearer realm="{REALM}"'
    return "invalid_token", f'Bearer realm="{REALM}", error="invalid_token"'


def write_endpoints_file(path: Path, endpoints: Mapping[str, Mapping[str, str]], admin_token: str) -> None:
    """Write the endpoints and the admin token as JSON, readable by its owner only (mode 0600, created so: the
    token is never on disk with wider rights), replacing the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {name: dict(named) for name, named in endpoints.items()}
    content["harness"] = {**content.get("harness", {}), "admin_token": admin_token}
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2)
    os.chmod(tmp, 0o600)  # whatever the umask
    tmp.replace(path)
