"""Hostile corpus, MSSanté IMAP (issue 15 items 7 and 9): commands whose parenthesised lists nest too deep are
answered ``BAD`` (RFC 9051 §7.1.5) and journaled (``imap.protocol``), the connection goes on; quoted parentheses
are text, not nesting."""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator

import pytest

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter, Outcome
from harness.runtime.environment import SocleEnvironment
from mock_services.mssante.imap import MAX_NESTING, nesting_depth

ORG, ORG_PASSWORD = "secretariat@ehpad-tilleuls.mssante.fr", "tilleuls-test"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("hostile-mail")
    env = SocleEnvironment(HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/j.sqlite", services=("mssante",)))
    env.start()
    yield env
    env.stop()


@pytest.fixture
def imap(env: SocleEnvironment) -> Iterator[imaplib.IMAP4]:
    client = imaplib.IMAP4("127.0.0.1", int(env.endpoints["mssante"]["imap"].rpartition(":")[2]))
    client.starttls(ssl_context=ssl.create_default_context(cafile=str(env.pki.ca_bundle_path)))
    client.login(ORG, ORG_PASSWORD)
    client.select("INBOX")
    yield client
    client.logout()


def test_nesting_depth_skips_quoted_text() -> None:
    assert nesting_depth(b'a SEARCH ((ALL) (SUBJECT "(((((")))\r\n') == 2
    assert nesting_depth(b'a SEARCH SUBJECT "\\"((("\r\n') == 0
    assert nesting_depth(b"a SEARCH " + b"(" * 40 + b"ALL" + b")" * 40) == 40


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 300, 5000])
def test_deeply_nested_search_is_bad_and_journaled(env: SocleEnvironment, imap: imaplib.IMAP4, depth: int) -> None:
    before = env.journal.last_seq()
    with pytest.raises(imaplib.IMAP4.error, match="imbriqu"):
        imap.search(None, "(" * depth + "ALL" + ")" * depth)
    assert imap.noop()[0] == "OK"  # same connection, still in sync
    assert imap.search(None, "(" * MAX_NESTING + "ALL" + ")" * MAX_NESTING)[0] == "OK"
    rows = env.journal.query(JournalFilter(service="mssante", operation="imap.protocol", since_seq=before))
    assert [(r.outcome, r.error_code) for r in rows] == [(Outcome.REJECTED, "BAD")]


def test_quoted_parentheses_are_searched_as_text(imap: imaplib.IMAP4) -> None:
    typ, data = imap.search(None, "SUBJECT", '"' + "(" * 200 + '"')
    assert (typ, data) == ("OK", [b""])
