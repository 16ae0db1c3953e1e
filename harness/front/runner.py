"""Runs the scenario catalogue in a child pytest process and turns its event stream into reports.

The child is ``python -m pytest harness/runtime/catalogue.py`` with only pytest-bdd and the socle-harness plugin loaded
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD``, an ini file of our own) so that the user's pytest setup cannot change the
verdicts. It writes typed events as JSON lines; this module follows that file while the child runs and hands
each event to every handler (console progress, JUnit, JSON, HTML writers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness.core.config import HarnessConfig
from harness.core.events import Event, EventHandler, RunFinished, ScenarioFinished, Status, event_from_json

CATALOGUE_MODULE = Path(__file__).resolve().parents[1] / "runtime" / "catalogue.py"  # imported by the child pytest only

_INI = """[pytest]
disable_test_id_escaping_and_forfeit_all_rights_to_community_support = true
console_output_style = classic
filterwarnings = ignore::pytest.PytestUnknownMarkWarning
"""


@dataclass
class RunResult:
    run_id: str
    exit_code: int  # the child pytest's exit code
    counts: dict[str, int] = field(default_factory=dict)
    events_path: Path | None = None
    log_path: Path | None = None
    scenarios: list[ScenarioFinished] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C: the scenarios seen so far were reported, marked « interrompue »

    @property
    def ok(self) -> bool:
        return (
            not self.interrupted
            and self.exit_code == 0
            and self.counts.get(Status.FAILED.value, 0) == 0
            and self.counts.get(Status.ERROR.value, 0) == 0
        )


#: How many runs' event streams, pytest logs and operator files ``run_dir`` keeps (older ones are deleted).
KEEP_RUNS = 10
_RUN_FILES = ("events-*.jsonl", "pytest-*.log", "operator-*")


def prune_run_files(run_dir: Path, keep: int = KEEP_RUNS) -> list[Path]:
    """Delete the per-run files of all but the ``keep`` most recent runs (the journal is never touched)."""
    removed: list[Path] = []
    for pattern in _RUN_FILES:
        files = sorted(run_dir.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[keep:]:
            try:
                old.unlink()
            except OSError:
                continue
            removed.append(old)
    return removed


def run_catalogue(
    config: HarnessConfig,
    handlers: Sequence[EventHandler] = (),
    *,
    run_id: str | None = None,
    config_file: Path | None = None,
    select: str | None = None,
    tags: str | None = None,
    title: str | None = None,
    operator_replies: Path | None = None,
    timeout: float = 3600.0,
) -> RunResult:
    """Run every scenario of ``config.scenarios_dir`` against ``config.sut``; feed ``handlers`` live.

    ``select`` is a pytest ``-k`` expression over scenario test names, ``tags`` a tag expression over the
    Gherkin tags, requirement ids included (``"mssante and not dmp"``, ``"exigence:MSS-ENVOI-PRO"``,
    :mod:`harness.runtime.selection`), ``title`` a text the scenario title must contain; all optional.
    """
    run_id = run_id or uuid.uuid4().hex[:12]
    run_dir = Path(config.run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    prune_run_files(run_dir)
    events_path = run_dir / f"events-{run_id}.jsonl"
    log_path = run_dir / f"pytest-{run_id}.log"
    ini_path = run_dir / "pytest-socle.ini"
    ini_path.write_text(_INI, encoding="utf-8")
    events_path.write_text("", encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(CATALOGUE_MODULE),
        "-c",
        str(ini_path),
        "--rootdir",
        str(run_dir),
        "-p",
        "pytest_bdd.plugin",
        "-p",
        "harness.runtime.pytest_plugin",
        "-p",
        "no:cacheprovider",
        # pytest's unraisable-exception plugin collects the whole heap twice as the child ends (0.2-0.4 s on the
        # run's critical path, issue 18) to turn exceptions raised in finalizers into warnings, which a run never
        # reports; without it they go to the child's log (pytest-<run>.log) as Python prints them
        "-p",
        "no:unraisableexception",
        "-q",
        "--no-header",
        "-rN",
        "--socle-events",
        str(events_path),
        "--socle-exit-when-done",
        "--socle-run-id",
        run_id,
        "--socle-run-dir",
        str(run_dir),
        "--socle-journal",
        config.journal,
        "--socle-sut",
        config.sut,
        "--socle-listening",
        json.dumps(
            {
                "bind_host": config.bind_host,
                "public_host": config.public_host,
                "http_port": config.http_port,
                "ports": config.ports,
            }
        ),
    ]
    if config_file is not None:
        cmd += ["--socle-config", str(config_file.resolve())]
    if select:
        cmd += ["-k", select]
    if config.sut.startswith("observe:"):  # observe-only mode judges only the scenarios that can be observed
        # imported here only: observe brings the control API and the plugins (0.2 s before the child could start)
        from harness.runtime.observe import OBSERVABLE_TAG

        tags = f"({tags}) and {OBSERVABLE_TAG}" if tags else OBSERVABLE_TAG
        cmd += ["--socle-observe-retry", config.observe_retry]
    if tags:
        cmd += ["--socle-tags", tags]
    if title:
        cmd += ["--socle-title", title]
    if operator_replies is not None:
        cmd += ["--socle-operator-replies", str(operator_replies.resolve())]
    cmd += ["--socle-step-timeout", str(config.step_timeout)]
    # The child inherits the user's PYTHONDONTWRITEBYTECODE: forcing it made every run of a source checkout
    # compile the ~150 modules only the child imports (steps, simulators, validators: about 0.5 s CPU, issue 18).
    env = {
        **os.environ,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "SOCLE_SCENARIOS_DIR": str(Path(config.scenarios_dir).resolve()),
    }
    result = RunResult(run_id=run_id, exit_code=-1, events_path=events_path, log_path=log_path)
    with log_path.open("w", encoding="utf-8") as log, events_path.open("r", encoding="utf-8") as events:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        started = time.monotonic()
        deadline = started + timeout
        buffer = ""
        try:
            while True:
                finished = proc.poll() is not None
                chunk = events.read()
                if chunk:
                    buffer += chunk
                    *lines, buffer = buffer.split("\n")
                    for line in lines:
                        if line.strip():
                            _dispatch(event_from_json(line), handlers, result)
                if finished:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    break
                time.sleep(0.05)
        except KeyboardInterrupt:
            _interrupt(proc, handlers, result, run_id, time.monotonic() - started)
        result.exit_code = proc.returncode
    return result


def _interrupt(
    proc: subprocess.Popen, handlers: Sequence[EventHandler], result: RunResult, run_id: str, duration: float
) -> None:
    """Ctrl-C: stop the child, then close the run for every handler so the reports are written, partial and
    marked interrupted (the scenarios judged so far keep their verdicts)."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    counts = {s.value: 0 for s in Status}
    for scenario in result.scenarios:
        counts[scenario.status.value] += 1
    result.interrupted = True
    _dispatch(RunFinished(run_id, datetime.now(UTC).isoformat(), duration, counts, interrupted=True), handlers, result)


def _dispatch(event: Event, handlers: Sequence[EventHandler], result: RunResult) -> None:
    if isinstance(event, ScenarioFinished):
        result.scenarios.append(event)
    if isinstance(event, RunFinished):
        result.counts = dict(event.counts)
    for handler in handlers:
        handler.handle(event)
