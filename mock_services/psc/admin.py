"""The simulator's admin endpoints (JSON, for recette tools and the control API): professionals, next login, key
rotation, faults."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from harness.core.journal import Outcome
from harness.host.simulator import Fault, aimed_session
from mock_services.psc.model import FixtureError, Professional
from mock_services.psc.params import RequestReader
from mock_services.psc.realm import (
    FAULT_KINDS,
    SESSION_FAULTS,
    OAuthError,
    Realm,
)


class AdminEndpoints:
    """The ``/_admin`` endpoints of the realm."""

    def __init__(self, realm: Realm, reader: RequestReader) -> None:
        self.realm = realm
        self.reader = reader

    async def admin_users(self, request: Request) -> Response:
        users = self.realm.users()
        self.realm.record("admin.users", Outcome.ACCEPTED, actor="admin", details={"count": len(users)})
        return JSONResponse({"users": [{"login": u.login, **u.userinfo()} for u in users]})

    async def admin_put_user(self, request: Request) -> Response:
        raw = await self.reader.json_body(request)
        try:
            user = Professional.from_fixture(
                {**raw, "login": request.path_params["login"]} if isinstance(raw, dict) else raw
            )
        except (FixtureError, TypeError, ValueError, AttributeError) as exc:
            raise OAuthError("invalid_request", f"professionnel invalide: {exc}") from None
        self.realm.put_user(user)
        return JSONResponse({"login": user.login, "SubjectNameID": user.id_nat_ps})

    async def admin_next_login(self, request: Request) -> Response:
        raw = await self.reader.json_body(request) if request.method == "POST" else {}
        if not isinstance(raw, dict):
            raise OAuthError("invalid_request", "objet JSON attendu")
        client_id = raw.get("client_id") or request.query_params.get("client_id")
        login = raw.get("login") if request.method == "POST" else None
        if request.method == "POST" and not login:
            raise OAuthError("invalid_request", "login absent")
        try:
            self.realm.set_next_login(login, client_id)
        except LookupError as exc:
            raise OAuthError("invalid_request", str(exc)) from None
        return JSONResponse({"login": login, "client_id": client_id})

    async def admin_rotate(self, request: Request) -> Response:
        return JSONResponse({"kids": self.realm.rotate_keys()})

    async def admin_fault(self, request: Request) -> Response:
        raw = await self.reader.json_body(request)
        if not isinstance(raw, dict) or raw.get("kind") not in FAULT_KINDS:
            raise OAuthError("invalid_request", f"kind attendu parmi {', '.join(FAULT_KINDS)}")
        count = raw.get("count", 1)
        if not isinstance(count, int) or not 1 <= count <= 10000:
            raise OAuthError("invalid_request", "count entre 1 et 10000")
        params = raw.get("params", {})
        if not isinstance(params, dict):
            raise OAuthError("invalid_request", "params doit être un objet")
        ctx = self.realm.ctx
        try:  # aimed at one open test session as through the host's /_harness/faults (issue 19 item 4)
            session = aimed_session(ctx.session_book, ctx.name, raw["kind"], SESSION_FAULTS, raw.get("session"))
        except ValueError as exc:
            raise OAuthError("invalid_request", str(exc)) from None
        ctx.faults.inject(ctx.name, Fault(raw["kind"], params, count, session))
        injected = {"kind": raw["kind"], "count": count, **({"session": session} if session else {})}
        self.realm.record("admin.fault", Outcome.ACCEPTED, actor="admin", details=injected, session=session)
        return JSONResponse(injected)
