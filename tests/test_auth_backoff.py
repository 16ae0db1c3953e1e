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
    assert delays == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
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
    assert [d.delay for d in decisions] == [0.0, 0.0, 1.0, 2.0, 4.0]
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
