"""Shared helpers of the Pro Santé Connect simulator tests: a running host with only ``psc``, and an HTTPS client
that plays a relying party step by step (httpx; PKCE values computed here)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from harness.core.config import HarnessConfig
from harness.core.journal import Exchange, JournalFilter
from harness.host.admin import admin_headers
from harness.runtime.environment import SocleEnvironment
from mock_services.psc.provider import Provider

CLIENT_ID = "dui-reference"
SECRET = "dui-reference-secret-essai"
REDIRECT = "https://dui-reference.test/psc/callback"
LOGOUT_REDIRECT = "https://dui-reference.test/psc/deconnexion"


def start_env(tmp: Path, **settings: Any) -> SocleEnvironment:
    cfg = HarnessConfig(
        run_dir=tmp,
        journal=f"sqlite:///{tmp}/journal.sqlite",
        services=("psc",),
        settings={"psc": settings} if settings else {},
    )
    env = SocleEnvironment(cfg)
    env.start()
    return env


def provider(env: SocleEnvironment) -> Provider:
    return env.host.simulators["psc"].provider  # type: ignore[attr-defined,no-any-return]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class RP:
    """A relying party driven by hand, for protocol tests."""

    env: SocleEnvironment
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        context = ssl.create_default_context(cafile=str(self.env.pki.ca_bundle_path))
        self.http = httpx.Client(verify=context, timeout=30, follow_redirects=False)
        # the harness's own client of the /_admin endpoints: the host's admin token
        self.admin = httpx.Client(verify=context, timeout=30, headers=admin_headers(self.env.admin_token))

    def close(self) -> None:
        self.http.close()
        self.admin.close()

    def url(self, name: str) -> str:
        return self.env.endpoints["psc"][name]

    def authorize(self, login: str | None = "claire.durand", **overrides: str | None) -> tuple[httpx.Response, str]:
        verifier, challenge = pkce()
        params: dict[str, str | None] = {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid scope_all",
            "acr_values": "eidas1",
            "state": "etat-1",
            "nonce": "nonce-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "login_hint": login,
        }
        params.update(overrides)
        clean = {k: v for k, v in params.items() if v is not None}
        return self.http.get(self.url("authorize"), params=clean), verifier

    @staticmethod
    def callback(response: httpx.Response) -> dict[str, str]:
        assert response.status_code == 302, response.text[:300]
        return {k: v[0] for k, v in parse_qs(urlparse(response.headers["location"]).query).items()}

    def token(
        self, data: dict[str, str], auth: tuple[str, str] | None = (CLIENT_ID, SECRET), **kw: Any
    ) -> httpx.Response:
        return self.http.post(self.url("token"), data=data, auth=auth, **kw)

    def code_exchange(self, code: str, verifier: str | None, **extra: str) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        if verifier is not None:
            data["code_verifier"] = verifier
        data.update(extra)
        return self.token(data)

    def login(self, login: str = "claire.durand") -> dict[str, Any]:
        response, verifier = self.authorize(login)
        answer = self.code_exchange(self.callback(response)["code"], verifier)
        assert answer.status_code == 200, answer.text
        tokens: dict[str, Any] = answer.json()
        return tokens

    def userinfo(self, access_token: str, **headers: str) -> httpx.Response:
        return self.http.get(self.url("userinfo"), headers={"Authorization": f"Bearer {access_token}", **headers})

    def introspect(self, token: str) -> dict[str, Any]:
        response = self.http.post(self.url("introspect"), data={"token": token}, auth=(CLIENT_ID, SECRET))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def alive(self) -> bool:
        return self.http.get(self.url("discovery")).status_code == 200


class JournalMark:
    """The exchanges journaled after this point."""

    def __init__(self, env: SocleEnvironment) -> None:
        self.env = env
        self.seq = env.journal.last_seq()

    def new(self, operation: str | None = None) -> list[Exchange]:
        return self.env.journal.query(JournalFilter(service="psc", operation=operation, since_seq=self.seq))
