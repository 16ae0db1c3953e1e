"""Pro Santé Connect and test sessions (issue 19 item 4): a client of one open session introspecting a token issued
to a client of another gets ``{"active": false}`` (RFC 7662 §2.2: "the protected resource is not allowed to
introspect this particular token"), journaled in its session; codes, refresh tokens and sessions were bound to their
client already. Without sessions, or once the other is closed, the answer is as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from psc_helpers import CLIENT_ID, RP, start_env

from harness.core.journal import JournalFilter
from harness.core.sessions import Members
from harness.runtime.environment import SocleEnvironment

OTHER, OTHER_SECRET = "dui-recette-es256", "dui-recette-es256-secret-essai"  # client_secret_post


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    env = start_env(tmp_path_factory.mktemp("psc-sessions"))
    yield env
    env.stop()


def _introspect_as_other(rp: RP, token: str) -> dict[str, Any]:
    answer = rp.http.post(
        rp.url("introspect"), data={"token": token, "client_id": OTHER, "client_secret": OTHER_SECRET}
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_a_token_of_another_sessions_client_is_inactive_to_introspection(env: SocleEnvironment) -> None:
    rp = RP(env)
    try:
        tokens = rp.login("claire.durand")
        access, refresh = tokens["access_token"], tokens["refresh_token"]
        assert _introspect_as_other(rp, access)["active"] is True  # no session: as before
        book = env.host.sessions
        mine = book.create("DUI de recette", Members(clients=(OTHER,)))
        theirs = book.create("DUI de référence", Members(clients=(CLIENT_ID,)))
        assert _introspect_as_other(rp, access) == {"active": False}
        assert _introspect_as_other(rp, refresh) == {"active": False}
        [journaled] = env.journal.query(JournalFilter(service="psc", operation="oidc.introspect", session=mine.id))[-1:]
        assert (journaled.details["active"], journaled.person, journaled.actor) == (False, None, OTHER)
        assert journaled.details["autre_session"] == (
            f"client PSC {CLIENT_ID} appartient à une autre session de test que client PSC {OTHER} (session "
            f"{mine.id}) : ses données ne lui sont pas accessibles / the data belongs to another test session"
        )
        assert rp.introspect(access)["active"] is True  # the token's own client
        book.close(theirs.id)
        assert _introspect_as_other(rp, access)["active"] is True
        book.close(mine.id)
    finally:
        rp.close()


def _inject(rp: RP, body: dict[str, Any]) -> Any:
    return rp.admin.post(rp.env.endpoints["harness"]["base"] + "/_harness/faults", json=body)


def test_a_psc_fault_aimed_at_a_session_is_taken_by_its_clients_only(env: SocleEnvironment) -> None:
    rp = RP(env)
    book = env.host.sessions
    other = book.create("DUI de recette", Members(clients=(OTHER,)))
    try:
        injected = _inject(rp, {"service": "psc", "kind": "psc.wrong-state", "session": other.id})
        assert (injected.status_code, injected.json()["session"]) == (201, other.id)
        assert rp.callback(rp.authorize()[0])["state"] == "etat-1"  # dui-reference is in no session: not taken
        mine = book.create("DUI de référence", Members(clients=(CLIENT_ID,)))
        assert rp.callback(rp.authorize()[0])["state"] == "etat-1"  # in another session: not taken either
        aimed = _inject(rp, {"service": "psc", "kind": "psc.wrong-state", "session": mine.id})
        assert aimed.status_code == 201
        assert rp.callback(rp.authorize()[0])["state"].startswith("etat-altere-")  # its own session's
        assert rp.callback(rp.authorize()[0])["state"] == "etat-1"
        down = _inject(rp, {"service": "psc", "kind": "psc.down", "session": mine.id})
        assert (down.status_code, down.json()["erreur"]) == (
            400,
            "la panne psc.down survient avant que le DUI ne s'identifie : elle ne peut viser une session (pannes de "
            "psc qui le peuvent : ['psc.acr-not-met', 'psc.code-expired', 'psc.introspection-inactive', "
            "'psc.no-activity', 'psc.wrong-audience', 'psc.wrong-state'])",
        )
        book.close(mine.id)
    finally:
        book.close(other.id)
        env.host.faults.clear()
        rp.close()


def test_the_psc_admin_fault_endpoint_aims_at_a_session_as_the_host_does(env: SocleEnvironment) -> None:
    """``/psc/_admin/faults`` takes the same optional ``session`` as ``/_harness/faults``: the fault is taken by the
    clients of that open session only and its injection journaled there; psc.down or an unknown session: 400."""
    rp = RP(env)
    book = env.host.sessions
    other = book.create("DUI de recette", Members(clients=(OTHER,)))
    url = rp.url("admin") + "/faults"
    try:
        injected = rp.admin.post(url, json={"kind": "psc.wrong-state", "session": other.id})
        assert (injected.status_code, injected.json()) == (
            200,
            {"kind": "psc.wrong-state", "count": 1, "session": other.id},
        )
        [journaled] = env.journal.query(JournalFilter(service="psc", operation="admin.fault"))[-1:]
        assert (journaled.outcome.value, journaled.session_id, journaled.details["session"]) == (
            "accepted",
            other.id,
            other.id,
        )
        assert rp.callback(rp.authorize()[0])["state"] == "etat-1"  # dui-reference is in no session: not taken
        mine = book.create("DUI de référence", Members(clients=(CLIENT_ID,)))
        assert rp.callback(rp.authorize()[0])["state"] == "etat-1"  # in another session: not taken either
        assert rp.admin.post(url, json={"kind": "psc.wrong-state", "session": mine.id}).status_code == 200
        assert rp.callback(rp.authorize()[0])["state"].startswith("etat-altere-")  # its own session's
        assert rp.callback(rp.authorize()[0])["state"] == "etat-1"
        down = rp.admin.post(url, json={"kind": "psc.down", "session": mine.id})
        assert (down.status_code, down.json()["error"], down.json()["error_description"]) == (
            400,
            "invalid_request",
            "la panne psc.down survient avant que le DUI ne s'identifie : elle ne peut viser une session (pannes de "
            "psc qui le peuvent : ['psc.acr-not-met', 'psc.code-expired', 'psc.introspection-inactive', "
            "'psc.no-activity', 'psc.wrong-audience', 'psc.wrong-state'])",
        )
        unknown = rp.admin.post(url, json={"kind": "psc.wrong-state", "session": "pas-une-session"})
        assert (unknown.status_code, unknown.json()["error_description"]) == (
            400,
            "session « pas-une-session » : aucune session de test ouverte de ce nom (socle-harness session list)",
        )
        refused = env.journal.query(JournalFilter(service="psc", operation="admin.fault"))[-2:]
        assert [(r.outcome.value, r.error_code) for r in refused] == [("rejected", "invalid_request")] * 2
        book.close(mine.id)
    finally:
        book.close(other.id)
        env.host.faults.clear()
        rp.close()
