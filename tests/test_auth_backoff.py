"""Password back-off (issue 15 item 3): progressive delay, then a temporary refusal, per account and per peer."""

from __future__ import annotations

from mock_services.mssante.auth_backoff import AuthBackoff, BackoffPolicy, Decision


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delay_grows_then_the_account_is_refused_for_a_while() -> None:
    clock = Clock()
    backoff = AuthBackoff(BackoffPolicy(), clock=clock)
    delays = [backoff.failure("dui@ehpad.mssante.fr", "10.0.0.1").delay for _ in range(9)]
    assert delays == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.check("dui@ehpad.mssante.fr", "10.0.0.1").refused is False
    tenth = backoff.failure("DUI@ehpad.mssante.fr", "10.0.0.1")  # accounts compare case-insensitively
    assert (tenth.refused, tenth.locked, tenth.retry_after) == (True, ("account", "peer"), 900.0)
    clock.now += 600
    assert backoff.check("dui@ehpad.mssante.fr", "10.0.0.2") == Decision(True, 300.0, 0.0, 0, 0, ("account",))
    assert backoff.check("autre@ehpad.mssante.fr", "10.0.0.1").locked == ("peer",)
    clock.now += 301
    assert backoff.check("dui@ehpad.mssante.fr", "10.0.0.1").refused is False


def test_one_peer_guessing_many_accounts_is_refused_too() -> None:
    backoff = AuthBackoff(BackoffPolicy(lockout_failures=5), clock=Clock())
    decisions = [backoff.failure(f"compte{n}@ehpad.mssante.fr", "192.0.2.7") for n in range(5)]
    assert [d.delay for d in decisions] == [0.0] * 5  # each account failed once: no delay, but the peer is locked
    assert decisions[-1].locked == ("peer",)
    assert backoff.check("compte9@ehpad.mssante.fr", "192.0.2.7").refused
    assert not backoff.check("compte9@ehpad.mssante.fr", "192.0.2.8").refused


def test_success_forgets_the_account_and_old_failures_expire() -> None:
    clock = Clock()
    backoff = AuthBackoff(BackoffPolicy(window_seconds=60), clock=clock)
    for _ in range(4):
        backoff.failure("a@x.mssante.fr", "10.0.0.1")
    backoff.success("a@x.mssante.fr", "10.0.0.1")
    assert backoff.failure("a@x.mssante.fr", "10.0.0.2").account_failures == 1
    assert backoff.check("b@x.mssante.fr", "10.0.0.1").peer_failures == 4  # the peer's failures stay
    clock.now += 61
    assert backoff.check("b@x.mssante.fr", "10.0.0.1").peer_failures == 0
    assert backoff.failure("b@x.mssante.fr", "10.0.0.1").details() == {
        "backoff": {
            "refused": False,
            "retry_after": 0.0,
            "delay": 0.0,
            "account_failures": 1,
            "peer_failures": 1,
            "locked": [],
        }
    }


def test_memory_is_bounded() -> None:
    backoff = AuthBackoff(BackoffPolicy(max_tracked=100), clock=Clock())
    for n in range(1000):
        backoff.failure(f"c{n}@x.mssante.fr", f"10.0.{n // 256}.{n % 256}")
    assert backoff.check("c999@x.mssante.fr", "10.0.3.231").account_failures == 1
    assert backoff.check("c0@x.mssante.fr", "10.0.0.0").account_failures == 0  # forgotten first
    assert BackoffPolicy.from_mapping({"lockout_failures": "3", "inconnu": 1}).lockout_failures == 3


def test_smtp_and_imap_delay_then_refuse_a_guesser(tmp_path) -> None:  # noqa: ANN001
    import imaplib
    import smtplib
    import ssl
    import time

    import pytest

    from harness.core.config import HarnessConfig
    from harness.core.journal import JournalFilter
    from harness.runtime.environment import SocleEnvironment

    policy = {"free_failures": 1, "base_delay": 0.4, "lockout_failures": 3, "lockout_seconds": 60}
    config = HarnessConfig(
        run_dir=tmp_path,
        journal=f"sqlite:///{tmp_path}/j.sqlite",
        services=("mssante",),
        settings={"mssante": {"auth_backoff": policy}},
    )
    env = SocleEnvironment(config)
    dui, right = "dui@ehpad-tilleuls.mssante.fr", "dui-tilleuls-test"
    try:
        endpoints = env.start()["mssante"]
        context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
        smtp = smtplib.SMTP("127.0.0.1", int(endpoints["smtp"].rpartition(":")[2]), timeout=15)
        smtp.starttls(context=context)
        smtp.ehlo()
        answers, waited = [], []
        for password in ("faux-1", "faux-2", "faux-3", right):
            started = time.monotonic()
            smtp.user, smtp.password = dui, password
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                smtp.auth("PLAIN", smtp.auth_plain)
            waited.append(time.monotonic() - started)
            answers.append((refused.value.smtp_code, refused.value.smtp_error.split()[0]))
        smtp.close()
        assert answers == [(535, b"5.7.8"), (535, b"5.7.8"), (535, b"5.7.8"), (454, b"4.7.0")]
        assert waited[2] >= 0.35  # the command after the 2nd failure was read 0.4 s later
        imap = imaplib.IMAP4("127.0.0.1", int(endpoints["imap"].rpartition(":")[2]))
        imap.starttls(ssl_context=context)
        with pytest.raises(imaplib.IMAP4.error, match=r"UNAVAILABLE"):
            imap.login("secretariat@ehpad-tilleuls.mssante.fr", "mot-de-passe-quelconque")  # the peer is locked
        imap.logout()
        rows = env.journal.query(JournalFilter(service="mssante", operation="smtp.auth", run_id=env.run_id))
        assert [r.error_code for r in rows] == ["535 5.7.8", "535 5.7.8", "535 5.7.8", "454 4.7.0"]
        assert [r.details["backoff"]["delay"] for r in rows] == [0.0, 0.4, 0.8, 0.0]
        assert rows[-1].details["backoff"]["locked"] == ["account", "peer"]
        [imap_row] = env.journal.query(JournalFilter(service="mssante", operation="imap.auth", run_id=env.run_id))
        assert (imap_row.error_code, imap_row.details["backoff"]["locked"]) == ("NO [UNAVAILABLE]", ["peer"])
    finally:
        env.stop()
