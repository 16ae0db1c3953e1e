"""The self-test pattern every capability's catalogue follows, and the helpers that run it.

All its scenarios pass against the reference DUI; each named defect of the faulty DUI makes exactly the expected
scenarios fail as conformance failures (never errors); every scenario is failed by at least one defect. Each
capability states its :class:`Matrix` in ``tests/catalogue_matrices/<tag>.py``; ``tests/test_catalogue_defects.py``
runs them all (child pytest runs: marked ``slow``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from pathlib import Path

from harness.core.config import HarnessConfig
from harness.core.events import Status
from harness.front.runner import RunResult, run_catalogue


@dataclass(frozen=True)
class English:
    """A feature written with the English aliases: all its scenarios pass against the reference DUI and, with
    ``defects`` switched on, all fail (none when ``defects`` is empty)."""

    feature: str
    scenarios: int
    defects: tuple[str, ...] = ()


@dataclass(frozen=True)
class Matrix:
    """The scenarios of one tag, and for each defect the scenarios it must make fail (the others pass).

    ``service``: the plugin whose defects must all appear among ``failures``; ``config``: the run's TOML."""

    tag: str
    service: str
    scenarios: frozenset[str]
    failures: Mapping[str, frozenset[str]]
    config: str = ""
    english: English | None = None
    reference_check: Callable[[Path], None] | None = None  # more checks on the reference run's folder


def matrices() -> list[Matrix]:
    """Every capability's matrix (one module per tag in ``tests/catalogue_matrices``)."""
    import catalogue_matrices

    found = []
    for module in pkgutil.iter_modules(catalogue_matrices.__path__):
        found.append(importlib.import_module(f"catalogue_matrices.{module.name}").MATRIX)
    return sorted(found, key=lambda m: m.tag)


def run_tagged(
    tmp_path: Path,
    sut: str,
    tags: str | None,
    *,
    config_file: Path | None = None,
    scenarios: Path | None = None,
    config: str = "",
) -> RunResult:
    if config:
        config_file = tmp_path / "socle-harness.toml"
        config_file.write_text(config, encoding="utf-8")
    harness_config = HarnessConfig(run_dir=tmp_path / ".socle", journal=f"sqlite:///{tmp_path}/journal.sqlite", sut=sut)
    if scenarios is not None:
        harness_config = harness_config.with_overrides(scenarios_dir=scenarios)
    return run_catalogue(harness_config, tags=tags, config_file=config_file, timeout=300)


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
    expected_failures: Mapping[str, Set[str]], all_scenarios: Set[str], own_defects: Set[str]
) -> None:
    """Every scenario is failed by some defect, and every defect of the capability is in the matrix."""
    covered = set().union(*expected_failures.values())
    assert covered == all_scenarios, f"scenarios no defect can fail: {all_scenarios - covered}"
    assert own_defects <= set(expected_failures), (
        f"defects without expectations: {own_defects - set(expected_failures)}"
    )
