"""A tiny example of a DUI test build implementing the socle-harness control API (contract 1).

Written from ``docs/control-api.openapi.json`` and the public specifications only: it imports nothing from
``harness`` or ``mock_services`` (only third-party libraries), so that running the catalogue through it proves
the contract end to end over real HTTP. Editors can read it as a starting point for their own test build.

Every module of this package is a capability (``mssante``, ``psc``, ``insi``, ``dmp``, ``fhir_services``...,
found by :func:`capability_modules`, so that a new service only adds its module) and exposes ``ACTIONS``:
action name (the URL segment) -> ``handler(session, body) -> outcome``, where ``outcome`` is the JSON answer
``{"status": "done"|"failed", "detail": "...", "data": {...}}``.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Outcome = dict[str, Any]
Handler = Callable[["Session", dict[str, Any]], Outcome]


def capability_modules() -> list[str]:
    """The capability modules of this package: every module beside this one (a new service adds its own)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and not m.ispkg)


@dataclass
class Session:
    """What the harness gave the DUI in ``POST /socle/v1/session``, plus the DUI's own state between actions."""

    body: dict[str, Any]
    workdir: Path
    state: dict[str, Any] = field(default_factory=dict)  # one entry per capability module

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.pem"

    def endpoint(self, service: str, name: str) -> str:
        try:
            return self.body["endpoints"][service][name]
        except KeyError as exc:
            raise LookupError(f"point d'accès {service}/{name} absent de la session") from exc

    def certificate(self, name: str) -> tuple[Path, Path]:
        """Files of the organisation certificate ``name`` (cert, key), written on first use."""
        cert, key = self.workdir / f"{name}.crt", self.workdir / f"{name}.key"
        if not cert.exists():
            entry = self.body["client_certificates"][name]
            cert.write_text(entry["cert_pem"], encoding="ascii")
            key.write_text(entry["key_pem"], encoding="ascii")
        return cert, key

    def ssl_context(self, client_certificate: str | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if client_certificate:
            context.load_cert_chain(*map(str, self.certificate(client_certificate)))
        return context

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class ExampleDUI:
    """The control API server: session, idempotency, dispatch of each action to its capability module."""

    def __init__(self) -> None:
        self.session: Session | None = None
        self.seen_keys: dict[str, Outcome] = {}
        self.handlers: dict[str, Handler] = {}
        for name in capability_modules():
            actions = importlib.import_module(f"{__name__}.{name}").ACTIONS
            clash = set(actions) & set(self.handlers)
            if clash:
                raise ValueError(f"action(s) {sorted(clash)} implemented twice (module {name})")
            self.handlers.update(actions)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/socle/v1/session", self.open_session, methods=["POST"]),
                Route("/socle/v1/actions/{action}", self.action, methods=["POST"]),
            ]
        )

    def close(self) -> None:
        if self.session is not None:
            self.session.close()

    async def open_session(self, request: Request) -> Response:
        body = await request.json()
        if body.get("contract") != "1" or request.headers.get("X-Socle-Contract") != "1":
            return JSONResponse({"title": "contrat non pris en charge (1 attendu)"}, status_code=400)
        self.close()
        self.session = Session(body, Path(tempfile.mkdtemp(prefix="example-dui-")))
        self.session.ca_file.write_text(body["ca_bundle_pem"], encoding="ascii")
        return Response(status_code=204)

    async def action(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key", "")
        if key and key in self.seen_keys:
            return JSONResponse(self.seen_keys[key])
        handler = self.handlers.get(request.path_params["action"])
        if handler is None:
            return JSONResponse({"title": "action inconnue de ce DUI"}, status_code=404)
        if self.session is None:
            return JSONResponse({"title": "aucune session ouverte"}, status_code=409)
        outcome = await run_in_threadpool(handler, self.session, await request.json())
        if key:
            self.seen_keys[key] = outcome
        return JSONResponse(outcome)
