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
