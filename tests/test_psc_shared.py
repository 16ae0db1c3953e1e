"""Pro Santé Connect as shared state (issue 19 item 2): two serving processes on one PostgreSQL database.

"A PSC code issued by A is redeemed on B." Two ``SocleEnvironment`` s, each with its own PostgreSQL journal on the
same database, listen on the same port as ``serve --workers`` does (SO_REUSEPORT: one issuer for both); each
relying party below keeps one keep-alive connection, checked to reach the process it names (``/_harness/health``
names the worker) before and after its requests."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import jwt as pyjwt
import pytest
from psc_helpers import CLIENT_ID, RP, provider

from harness.core.config import HarnessConfig
from harness.core.sessions import Members
from harness.host.admin import admin_headers, new_admin_token
from harness.runtime.environment import SocleEnvironment

Hosts = tuple[SocleEnvironment, SocleEnvironment]


@pytest.fixture()
def two_hosts(pg_url: str, tmp_path: Path) -> Iterator[Hosts]:
    token = new_admin_token()
    started: list[SocleEnvironment] = []
    try:
        first = SocleEnvironment(
            HarnessConfig(run_dir=tmp_path, journal=pg_url, services=("psc",)), admin_token=token, worker=1
        )
        first.start()
        started.append(first)
        port = int(urlparse(first.endpoints["harness"]["base"]).port or 0)
        second = SocleEnvironment(
            HarnessConfig(run_dir=tmp_path, journal=pg_url, services=("psc",), http_port=port),
            admin_token=token,
            worker=2,
        )
        second.start()
        started.append(second)
        yield first, second
    finally:
        for env in started:
            env.stop()


class PinnedRP(RP):
    """A relying party whose one connection reaches serving process ``worker`` (and its admin client too)."""

    def __init__(self, env: SocleEnvironment, worker: int) -> None:
        super().__init__(env)
        self.worker = worker
        self.http.close()
        self.admin.close()
        self.http = self._pinned({})
        self.admin = self._pinned(admin_headers(env.admin_token))

    def _pinned(self, headers: dict[str, str]) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.env.pki.ca_bundle_path))
        for _ in range(64):
            http = httpx.Client(verify=context, timeout=30, headers=headers, limits=httpx.Limits(max_connections=1))
            if self._answering(http) == self.worker:
                return http
            http.close()
        raise AssertionError(f"aucune connexion n'a atteint le processus {self.worker}")

    def _answering(self, http: httpx.Client) -> int:
        health = http.get(self.env.endpoints["harness"]["health"])
        number: int = health.json()["worker"]["number"]
        return number

    def still_pinned(self) -> bool:
        return self._answering(self.http) == self._answering(self.admin) == self.worker


@pytest.fixture()
def rps(two_hosts: Hosts) -> Iterator[tuple[PinnedRP, PinnedRP]]:
    a, b = PinnedRP(two_hosts[0], 1), PinnedRP(two_hosts[1], 2)
    yield a, b
    assert a.still_pinned() and b.still_pinned()  # every request went where the test says
    a.close()
    b.close()


def test_a_code_issued_by_a_is_redeemed_on_b_once(rps: tuple[PinnedRP, PinnedRP]) -> None:
    a, b = rps
    response, verifier = a.authorize("claire.durand")
    code = a.callback(response)["code"]
    redeemed = b.code_exchange(code, verifier)
    assert redeemed.status_code == 200, redeemed.text
    tokens = redeemed.json()
    # signed on B, verified on A (one key ring), for a session A knows
    info = a.userinfo(tokens["access_token"])
    assert info.status_code == 200 and info.json()["SubjectNameID"] == "819900000019"
    replay = a.code_exchange(code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert replay.json()["error_description"].startswith("code d'autorisation déjà utilisé")
    # the replay on A revoked the family B issued
    assert b.introspect(tokens["access_token"]) == {"active": False}
    assert b.introspect(tokens["refresh_token"]) == {"active": False}


def test_a_refresh_token_rotated_on_a_is_refused_on_b(two_hosts: Hosts, rps: tuple[PinnedRP, PinnedRP]) -> None:
    a, b = rps
    alpha = two_hosts[0].host.sessions.create("Logiciel Alpha", Members(clients=(CLIENT_ID,)))
    two_hosts[1].host.sessions.invalidate()
    tokens = a.login()
    rotated = a.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    assert b.introspect(fresh["refresh_token"])["active"] is True
    reused = b.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 400
    assert reused.json() == {"error": "invalid_grant", "error_description": "refresh_token déjà utilisé ou révoqué"}
    assert a.introspect(fresh["refresh_token"]) == {"active": False}  # reuse revoked the session everywhere
    with two_hosts[0].journal.connection() as conn:  # type: ignore[attr-defined]
        log = conn.execute(
            "SELECT op->>'op', session FROM socle_state_op WHERE stream = 'psc.grants' ORDER BY seq"
        ).fetchall()
    # the operations of both processes, in one order, each in the test session holding the client
    assert log == [(op, alpha.id) for op in ("login", "redeem", "tokens", "refresh", "tokens", "refresh")]


def test_admin_changes_and_keys_on_a_apply_on_b(two_hosts: Hosts, rps: tuple[PinnedRP, PinnedRP]) -> None:
    a, b = rps
    chosen = a.admin.post(a.url("admin") + "/next-login", json={"login": "nadia.benali"})
    assert chosen.status_code == 200
    response, verifier = b.authorize(login=None)
    tokens = b.code_exchange(b.callback(response)["code"], verifier).json()
    nadia = provider(two_hosts[1]).user("nadia.benali")
    assert (
        nadia is not None and provider(two_hosts[1]).verify(tokens["id_token"])["preferred_username"] == nadia.id_nat_ps
    )
    added = a.admin.put(
        a.url("admin") + "/users/lea.martin",
        json={"SubjectNameID": "899700123456", "given_name": "Léa", "family_name": "Martin", "acr": "eidas1"},
    )
    assert added.status_code == 200
    lea = provider(two_hosts[1]).user("lea.martin")
    assert lea is not None and lea.display_name == "Léa Martin"
    kids = a.admin.post(a.url("admin") + "/rotate-keys").json()["kids"]
    published = [key["kid"] for key in b.http.get(b.url("jwks")).json()["keys"]]
    assert published[-2:] == kids and len(published) == 4  # the retired pair stays during the grace
    signed_on_a = a.login("lea.martin")
    assert b.userinfo(signed_on_a["access_token"]).json()["SubjectNameID"] == "899700123456"
    assert pyjwt.get_unverified_header(signed_on_a["id_token"])["kid"] == kids[0]
