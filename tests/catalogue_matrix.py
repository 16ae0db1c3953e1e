"""The self-test pattern every capability's catalogue follows.

All its scenarios pass against the reference DUI; each named defect of the faulty DUI makes exactly the expected
scenarios fail as conformance failures (never errors); every scenario is failed by at least one defect.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from pathlib import Path

from harness.core.config import HarnessConfig
from harness.core.events import Status
from harness.front.runner import RunResult, run_catalogue


def run_tagged(
    tmp_path: Path, sut: str, tags: str | None, *, config_file: Path | None = None, scenarios: Path | None = None
) -> RunResult:
    config = HarnessConfig(run_dir=tmp_path / ".socle", journal=f"sqlite:///{tmp_path}/journal.sqlite", sut=sut)
    if scenarios is not None:
        config = config.with_overrides(scenarios_dir=scenarios)
    return run_catalogue(config, tags=tags, config_file=config_file, timeout=300)


def assert_all_pass(result: RunResult, expected: Set[str]) -> None:
    statuses = {s.name: s.status for s in result.scenarios}
    assert set(statuses) == expected, (
        f"catalogue changed: missing {expected - set(statuses)}, extra {set(statuses) - expected}"
    )
    failing = {s.name: (s.status, s.message) for s in result.scenarios if s.status is not Status.PASSED}
    assert not failing, failing
    assert result.ok and result.exit_code == 0


def assert_fails_exactly(result: RunResult, expected_failed: Set[str]) -> None:
    errored = {
        s.name: (s.status, s.message) for s in result.scenarios if s.status not in (Status.FAILED, Status.PASSED)
    }
    assert not errored, f"a defect must give conformance failures, not errors: {errored}"
    failed = {s.name: s.message for s in result.scenarios if s.status is Status.FAILED}
    assert set(failed) == expected_failed, failed
    assert not result.ok and result.exit_code == 1


def assert_matrix_covers(
    expected_failures: Mapping[str, Set[str]], all_scenarios: Set[str], defect_names: Set[str]
) -> None:
    covered = set().union(*expected_failures.values())
    assert covered == all_scenarios, f"scenarios no defect can fail: {all_scenarios - covered}"
    assert defect_names == set(expected_failures)
