"""The reference DUI's FHIR client: HTTPS with the establishment's organisation certificate, JSON by default.

Independent of the simulators' FHIR layer (plain ``httpx`` and ``json``), so that the reference DUI tests the
simulators from the outside. The DUI presents the test-PKI certificate ``ESSMS-<FINESS>`` of the establishment it
works for (an IGC-Santé-like organisation certificate whose OU is ``1`` + FINESS) when it exists.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.sut.base import SutEnvironment

FHIR_JSON = "application/fhir+json"
TIMEOUT = 30.0


@dataclass(frozen=True)
class FhirReply:
    status: int | None  # None: transport error
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def problem(self) -> str:
        """A short French description of a failure (OperationOutcome diagnostics when present)."""
        if self.status is None:
            return f"service injoignable : {self.error}"
        data = self.json()
        issues = [i.get("diagnostics") or i.get("code") for i in data.get("issue") or [] if isinstance(i, dict)]
        return f"HTTP {self.status}" + (f" : {'; '.join(str(i) for i in issues if i)}" if issues else "")


def organisation_certificate(env: SutEnvironment, finess: str) -> str | None:
    """The name of the establishment's organisation certificate ``ESSMS-<finess>`` in ``env``, if it has one."""
    name = f"ESSMS-{finess}"
    return name if name in env.client_certificates else None


class FhirClient:
    """Calls one FHIR base URL on behalf of one establishment."""

    def __init__(
        self,
        env: SutEnvironment,
        base: str,
        finess: str,
        *,
        certificate: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: the DUI's TLS context when it keeps one (the reference DUI's ``tls_context``); else one is built
        trusting the environment's test PKI, with the ``ESSMS-<finess>`` organisation certificate if it has one."""
        context = tls
        if context is None:
            context = ssl.create_default_context(cafile=str(env.ca_bundle))
            name = f"ESSMS-{finess}"
            if certificate and name in env.client_certificates:
                cert, key = env.client_certificates[name]
                context.load_cert_chain(str(cert), str(key))
        self.base = base.rstrip("/")
        self._client = httpx.Client(verify=context, timeout=TIMEOUT)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        resource: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        accept: str = FHIR_JSON,
    ) -> FhirReply:
        sent = {"Accept": accept, **(headers or {})}
        content = None
        if resource is not None:
            sent["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
            content = json.dumps(resource, ensure_ascii=False).encode("utf-8")
        try:
            response = self._client.request(
                method,
                f"{self.base}/{path.lstrip('/')}" if path else self.base + "/",
                params=params,
                content=content,
                headers=sent,
            )
        except httpx.HTTPError as exc:
            return FhirReply(None, error=f"{type(exc).__name__}: {exc}")
        return FhirReply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)
