"""MSSanté mailboxes and test sessions (issue 19 item 4): a connection whose certificate is in one open session may
not log in (SMTP AUTH, IMAP LOGIN / AUTHENTICATE) to a mailbox of another, nor a sender of one session address a
mailbox of another (RCPT TO); each refusal in the protocol's form, journaled in the caller's session. Without
sessions, or once the other session is closed, the same exchanges are served as before."""

from __future__ import annotations

import base64
import imaplib
import smtplib
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from harness.core.journal import Exchange, JournalFilter, Outcome
from harness.core.sessions import Members, Session
from harness.host.simulator import Fault
from harness.runtime.environment import ScenarioContext, SocleEnvironment

TILLEULS = "990000016"  # the EHPAD: certificate MSS-990000016
DUI = "dui@ehpad-tilleuls.mssante.fr"  # APP mailbox of the EHPAD
DUI_PASSWORD = "dui-tilleuls-test"
SSIAD = "coordination@ssiad-val.mssante.fr"  # ORG mailbox of the SSIAD (990000024)
SSIAD_PASSWORD = "ssiad-test"
DOCTOR = "jean.dupont@medecin.mssante.fr"  # a professional in no session
REFUSAL_SSIAD = (
    f"boîte aux lettres {SSIAD} appartient à une autre session de test que ESSMS {TILLEULS} (session {{mine}}) : "
    "ses données ne lui sont pas accessibles / the data belongs to another test session"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    from harness.core.config import HarnessConfig

    tmp = tmp_path_factory.mktemp("sessions-mail")
    env = SocleEnvironment(HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/journal.sqlite", services=("mssante",)))
    env.start()
    yield env
    env.stop()


@pytest.fixture
def sessions(env: SocleEnvironment) -> Iterator[list[Session]]:
    """Sessions a test opens (``env.host.sessions.create``) are closed after it."""
    opened: list[Session] = []
    yield opened
    for session in opened:
        env.host.sessions.close(session.id)
    env.host.faults.clear()


def _open(env: SocleEnvironment, opened: list[Session], dui: str, members: Members) -> Session:
    session = env.host.sessions.create(dui, members)
    opened.append(session)
    return session


def _tls(env: SocleEnvironment, certificate: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    if certificate is not None:
        cert, key = env.pki.clients[certificate].cert_path, env.pki.clients[certificate].key_path
        context.load_cert_chain(str(cert), str(key))
    return context


def _smtp_login(env: SocleEnvironment, login: str, password: str, certificate: str | None = None) -> tuple[int, str]:
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=15) as smtp:
        smtp.starttls(context=_tls(env, certificate))
        smtp.ehlo()
        blob = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
        code, text = smtp.docmd("AUTH", f"PLAIN {blob}")
        return code, text.decode("ascii")


def _smtp_external(env: SocleEnvironment, certificate: str, authzid: str) -> tuple[int, str]:
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=15) as smtp:
        smtp.starttls(context=_tls(env, certificate))
        smtp.ehlo()
        code, text = smtp.docmd("AUTH", f"EXTERNAL {base64.b64encode(authzid.encode()).decode()}")
        return code, text.decode("ascii")


def _rcpt(env: SocleEnvironment, address: str) -> tuple[int, str]:
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=15) as smtp:
        smtp.starttls(context=_tls(env))
        smtp.login(DUI, DUI_PASSWORD)
        smtp.mail(DUI)
        code, text = smtp.rcpt(address)
        smtp.rset()
        return code, text.decode("ascii")


def _imap(env: SocleEnvironment, certificate: str | None, login: str, password: str | None) -> str:
    """``OK`` or the tagged refusal's text of LOGIN (``password``) or AUTHENTICATE EXTERNAL (``None``)."""
    host, _, port = env.endpoints["mssante"]["imap"].rpartition(":")
    imap = imaplib.IMAP4(host, int(port), timeout=15)
    try:
        imap.starttls(ssl_context=_tls(env, certificate))
        if password is None:
            imap.authenticate("EXTERNAL", lambda _challenge: login.encode())
        else:
            imap.login(login, password)
        return "OK"
    except imaplib.IMAP4.error as refused:
        return str(refused)
    finally:
        imap.shutdown()


def _last(env: SocleEnvironment, operation: str) -> Exchange:
    return env.journal.query(JournalFilter(service="mssante", operation=operation))[-1]


def test_smtp_auth_to_a_mailbox_of_another_session_is_535(env: SocleEnvironment, sessions: list[Session]) -> None:
    assert _smtp_login(env, SSIAD, SSIAD_PASSWORD, "MSS-990000016")[0] == 235  # no session: as before
    mine = _open(env, sessions, "DUI de l'EHPAD", Members(essms=(TILLEULS,)))
    assert _smtp_login(env, SSIAD, SSIAD_PASSWORD, "MSS-990000016")[0] == 235  # the SSIAD's mailbox is in none
    theirs = _open(env, sessions, "DUI du SSIAD", Members(mailboxes=(SSIAD,)))
    assert _smtp_login(env, SSIAD, SSIAD_PASSWORD, "MSS-990000016") == (
        535,
        "5.7.8 Authentication credentials invalid: BAL d'une autre session de test",
    )
    refused = _last(env, "smtp.auth")
    assert (refused.outcome, refused.error_code, refused.error_message, refused.session_id, refused.actor) == (
        Outcome.REJECTED,
        "535 5.7.8",
        REFUSAL_SSIAD.format(mine=mine.id),
        mine.id,
        SSIAD,
    )
    assert refused.details["autre_session"] is True and "backoff" not in str(refused.details)
    assert _smtp_login(env, SSIAD, SSIAD_PASSWORD)[0] == 235  # a password alone names nothing but the mailbox
    assert _smtp_login(env, SSIAD, SSIAD_PASSWORD, "MSS-990000024")[0] == 235  # the SSIAD's own certificate
    env.host.sessions.close(theirs.id)
    assert _smtp_login(env, SSIAD, SSIAD_PASSWORD, "MSS-990000016")[0] == 235


def test_smtp_auth_external_to_a_mailbox_of_another_session_is_535(
    env: SocleEnvironment, sessions: list[Session]
) -> None:
    assert _smtp_external(env, "MSS-990000016", DUI)[0] == 235
    mine = _open(env, sessions, "DUI A", Members(essms=(TILLEULS,)))
    _open(env, sessions, "DUI B", Members(mailboxes=(DUI,)))  # the EHPAD's APP mailbox claimed by another DUI
    assert _smtp_external(env, "MSS-990000016", DUI) == (
        535,
        "5.7.8 Authentication credentials invalid: BAL d'une autre session de test",
    )
    refused = _last(env, "smtp.auth")
    assert (refused.error_code, refused.session_id, refused.details["mechanism"]) == ("535 5.7.8", mine.id, "EXTERNAL")
    assert refused.error_message == (
        f"boîte aux lettres {DUI} appartient à une autre session de test que ESSMS {TILLEULS} (session {mine.id}) : "
        "ses données ne lui sont pas accessibles / the data belongs to another test session"
    )


def test_imap_login_and_authenticate_to_a_mailbox_of_another_session_are_refused(
    env: SocleEnvironment, sessions: list[Session]
) -> None:
    assert _imap(env, "MSS-990000016", SSIAD, SSIAD_PASSWORD) == "OK"
    assert _imap(env, "MSS-990000016", DUI, None) == "OK"
    mine = _open(env, sessions, "DUI A", Members(essms=(TILLEULS,)))
    _open(env, sessions, "DUI B", Members(mailboxes=(SSIAD, DUI)))
    # imaplib raises the text of a tagged NO (a BAD would read "... command error: BAD ...")
    refusal = "[AUTHENTICATIONFAILED] Authentication credentials invalid: BAL d'une autre session de test"
    assert _imap(env, "MSS-990000016", DUI, None) == refusal
    assert _imap(env, "MSS-990000016", SSIAD, SSIAD_PASSWORD) == str(refusal.encode())  # LOGIN: the bytes
    refused = _last(env, "imap.auth")
    assert (refused.outcome, refused.error_code, refused.error_message, refused.session_id) == (
        Outcome.REJECTED,
        "NO [AUTHENTICATIONFAILED]",
        REFUSAL_SSIAD.format(mine=mine.id),
        mine.id,
    )
    assert _imap(env, None, SSIAD, SSIAD_PASSWORD) == "OK"  # no certificate: nothing tells the caller apart


def test_rcpt_to_a_mailbox_of_another_session_is_550_5_7_1(env: SocleEnvironment, sessions: list[Session]) -> None:
    assert _rcpt(env, SSIAD)[0] == 250  # no session: as before
    mine = _open(env, sessions, "DUI A", Members(mailboxes=(DUI,)))
    assert _rcpt(env, SSIAD)[0] == 250  # the recipient is in no session
    _open(env, sessions, "DUI B", Members(essms=("990000024",)))  # the SSIAD: its ORG mailbox with it
    env.host.faults.inject("mssante", Fault("mssante.mailbox_full", {"address": SSIAD}))
    assert _rcpt(env, SSIAD) == (550, f"5.7.1 {SSIAD}: destinataire d'une autre session de test, remise non autorisee")
    refused = _last(env, "smtp.submit")
    assert (refused.outcome, refused.error_code, refused.session_id, refused.details["recipient"]) == (
        Outcome.REJECTED,
        "550 5.7.1",
        mine.id,
        SSIAD,
    )
    assert refused.details["autre_session"] == (
        f"ESSMS 990000024 appartient à une autre session de test que boîte aux lettres {DUI} (session {mine.id}) : "
        "ses données ne lui sont pas accessibles / the data belongs to another test session"
    )
    assert _rcpt(env, DOCTOR)[0] == 250  # a professional of no session is still reachable
    assert env.host.faults.take("mssante", "mssante.mailbox_full", match={"address": SSIAD}) is not None  # untold


def test_a_scenario_aims_its_faults_at_the_session_of_its_establishment(
    env: SocleEnvironment, sessions: list[Session]
) -> None:
    """The steps inject through ``ScenarioContext.inject_fault``: without sessions, for everyone as before; with the
    scenario's establishment in an open session, aimed at it (a kind that cannot be aimed stays for everyone)."""
    socle = ScenarioContext(env=env, sut=None, scenario_id="s", establishment=env.testdata.establishment(TILLEULS))  # type: ignore[arg-type]

    def inject() -> Any:
        socle.inject_fault("mssante", Fault("mssante.mailbox_full", {"address": DOCTOR}))
        socle.inject_fault("mssante", Fault("mssante.slow_server", {"seconds": 1}))
        snapshot = env.host.faults.snapshot()
        env.host.faults.clear()
        return snapshot

    assert inject() == {
        "mssante": [["mssante.mailbox_full", {"address": DOCTOR}, 1], ["mssante.slow_server", {"seconds": 1}, 1]]
    }
    mine = _open(env, sessions, "DUI", Members(essms=(TILLEULS,)))
    assert inject() == {
        "mssante": [
            ["mssante.mailbox_full", {"address": DOCTOR}, 1, mine.id],
            ["mssante.slow_server", {"seconds": 1}, 1],
        ]
    }


def test_mail_from_a_mailbox_of_another_session_is_550_5_7_1(env: SocleEnvironment, sessions: list[Session]) -> None:
    """The EHPAD's APP mailbox may send for its ORG mailbox, unless another session holds that one (its Sent copy
    would be delivered there)."""
    secretariat = "secretariat@ehpad-tilleuls.mssante.fr"
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")

    def mail_from() -> tuple[int, str]:
        with smtplib.SMTP(host, int(port), timeout=15) as smtp:
            smtp.starttls(context=_tls(env))
            smtp.login(DUI, DUI_PASSWORD)
            code, text = smtp.mail(secretariat)
            return code, text.decode("ascii")

    assert mail_from()[0] == 250
    mine = _open(env, sessions, "DUI A", Members(mailboxes=(DUI,)))
    _open(env, sessions, "DUI B", Members(mailboxes=(secretariat,)))
    assert mail_from() == (550, f"5.7.1 expediteur {secretariat}: BAL d'une autre session de test, envoi non autorise")
    refused = _last(env, "smtp.submit")
    assert (refused.error_code, refused.session_id, refused.details["autre_session"]) == (
        "550 5.7.1",
        mine.id,
        f"boîte aux lettres {secretariat} appartient à une autre session de test que boîte aux lettres {DUI} "
        f"(session {mine.id}) : ses données ne lui sont pas accessibles / the data belongs to another test session",
    )


def test_a_password_login_without_certificate_is_its_mailboxs_session(
    env: SocleEnvironment, sessions: list[Session]
) -> None:
    """The rule of docs/ARCHITECTURE.md « Sessions »: a password names its mailbox only, so a login with it and no
    certificate is that mailbox's session's — journaled there, and held to it: it reaches no mailbox of another."""
    mine = _open(env, sessions, "DUI de l'EHPAD", Members(essms=(TILLEULS,)))  # the EHPAD's mailboxes with it
    theirs = _open(env, sessions, "DUI du SSIAD", Members(mailboxes=(SSIAD,)))
    assert _imap(env, None, SSIAD, SSIAD_PASSWORD) == "OK"
    accepted = _last(env, "imap.auth")
    assert (accepted.outcome, accepted.actor, accepted.session_id) == (Outcome.ACCEPTED, SSIAD, theirs.id)
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=15) as smtp:
        smtp.starttls(context=_tls(env))  # no certificate
        smtp.login(SSIAD, SSIAD_PASSWORD)
        assert smtp.mail(SSIAD)[0] == 250
        code, text = smtp.rcpt(DUI)  # the EHPAD's APP mailbox: the other session's
        smtp.rset()
    assert (code, text.decode("ascii")) == (
        550,
        f"5.7.1 {DUI}: destinataire d'une autre session de test, remise non autorisee",
    )
    refused = _last(env, "smtp.submit")
    assert (refused.outcome, refused.session_id, refused.details["autre_session"]) == (
        Outcome.REJECTED,
        theirs.id,
        f"ESSMS {TILLEULS} appartient à une autre session de test que boîte aux lettres {SSIAD} (session "
        f"{theirs.id}) : ses données ne lui sont pas accessibles / the data belongs to another test session",
    )
    assert mine.id != theirs.id


def test_smtp_plain_refuses_an_authorization_identity_other_than_the_login(env: SocleEnvironment) -> None:
    """RFC 4616 §2: the credentials must "permit the client to act as" the authzid — here the login only, as IMAP —
    so a PLAIN login with the EHPAD's password naming the SSIAD's mailbox as authzid is 535, journaled, uncounted
    (aiosmtpd's built-in PLAIN dropped the authzid and logged the EHPAD in)."""

    def plain(authzid: str) -> tuple[int, str]:
        host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
        with smtplib.SMTP(host, int(port), timeout=15) as smtp:
            smtp.starttls(context=_tls(env))
            smtp.ehlo()
            blob = base64.b64encode(f"{authzid}\0{DUI}\0{DUI_PASSWORD}".encode()).decode()
            code, text = smtp.docmd("AUTH", f"PLAIN {blob}")
            return code, text.decode("ascii")

    assert plain(SSIAD) == (535, "5.7.8 Authentication credentials invalid")
    refused = _last(env, "smtp.auth")
    assert (refused.outcome, refused.actor, refused.error_code, refused.error_message, refused.details) == (
        Outcome.REJECTED,
        DUI,
        "535 5.7.8",
        f"identité d'autorisation {SSIAD} différente du compte authentifié",
        {"mechanism": "PLAIN", "authzid": SSIAD},
    )
    assert plain(DUI.upper())[0] == 235  # the login itself (addresses compare without case)
    assert plain("")[0] == 235  # none: the login
