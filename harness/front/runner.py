"""Runs the scenario catalogue in a child pytest process and turns its event stream into reports.

The child is ``python -m pytest harness/runtime/catalogue.py`` with only pytest-bdd and the socle-harness plugin loaded
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD``, an ini file of our own) so that the user's pytest setup cannot change the
verdicts. It writes typed events as JSON lines; this module follows that file while the child runs and hands
each event to every handler (console progress, JUnit, JSON, HTML writers).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from harness.core.config import HarnessConfig
from harness.core.events import (
    ORDER_FILE,
    Event,
    EventHandler,
    RunFinished,
    ScenarioFinished,
    Status,
    event_from_json,
    read_order,
)
from harness.front.ordered_events import OrderedMerge

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
    log_path: Path | None = None  # the first child's pytest output
    log_paths: list[Path] = field(default_factory=list)  # every child's, in a parallel run
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
_RUN_FILES = ("events-*.jsonl", "pytest-*.log", "operator-*", "claims-*")


def prune_run_files(run_dir: Path, keep: int = KEEP_RUNS) -> list[Path]:
    """Delete the per-run files of all but the ``keep`` most recent runs (the journal is never touched).

    A run's files share the name's part between the first ``-`` and the first ``.`` (``events-<run>.jsonl``,
    ``events-<run>.2.jsonl`` and ``pytest-<run>.2.log`` of a parallel run's second child, its ``claims-<run>``
    folder), so a parallel run counts once."""
    runs: dict[tuple[str, str], list[Path]] = {}
    for pattern in _RUN_FILES:
        for path in run_dir.glob(pattern):
            run = path.name.partition("-")[2].partition(".")[0]
            runs.setdefault((pattern, run), []).append(path)
    removed: list[Path] = []
    for pattern in _RUN_FILES:
        groups = [paths for (kind, _), paths in runs.items() if kind == pattern]
        groups.sort(key=lambda paths: max(_mtime(p) for p in paths), reverse=True)
        for old in (path for paths in groups[keep:] for path in paths):
            try:
                shutil.rmtree(old) if old.is_dir() else old.unlink()  # claims-<run>: a parallel run's folder
            except OSError:
                continue
            removed.append(old)
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


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
    jobs: int = 1,
    spread_from: int | None = None,
) -> RunResult:
    """Run every scenario of ``config.scenarios_dir`` against ``config.sut``; feed ``handlers`` live.

    ``select`` is a pytest ``-k`` expression over scenario test names, ``tags`` a tag expression over the
    Gherkin tags, requirement ids included (``"mssante and not dmp"``, ``"exigence:MSS-ENVOI-PRO"``,
    :mod:`harness.runtime.selection`), ``title`` a text the scenario title must contain; all optional.
    ``jobs`` > 1 plays the catalogue in that many child processes, each with its own simulators and DUI
    (:mod:`harness.runtime.claims`), reported as one run in catalogue order (:mod:`harness.front.ordered_events`).
    ``spread_from``: the first child starts alone and the others only once it has collected at least that many
    scenarios (``run --jobs auto`` with a selection: a second process costs about a second of CPU for its start,
    which a few scenarios never pay back and a busy machine feels); None starts them all at once.
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
    if jobs <= 1:
        command = [*cmd, "--socle-events", str(events_path)]
        return play_children([command], [events_path], [log_path], env, handlers, run_id, timeout, merge=None)
    claims = run_dir / f"claims-{run_id}"
    streams = [events_path, *(run_dir / f"events-{run_id}.{part}.jsonl" for part in range(2, jobs + 1))]
    logs = [log_path, *(run_dir / f"pytest-{run_id}.{part}.log" for part in range(2, jobs + 1))]
    for stream in streams[1:]:
        stream.write_text("", encoding="utf-8")
    commands = [[*cmd, "--socle-events", str(stream), "--socle-claims", str(claims)] for stream in streams]
    spread = None
    if spread_from is not None:

        def spread() -> bool | None:
            return len(read_order(claims)) >= spread_from if (claims / ORDER_FILE).exists() else None

    try:
        return play_children(commands, streams, logs, env, handlers, run_id, timeout, merge=claims, spread=spread)
    finally:
        shutil.rmtree(claims, ignore_errors=True)


def play_children(
    commands: list[list[str]],
    streams: list[Path],
    logs: list[Path],
    env: dict[str, str],
    handlers: Sequence[EventHandler],
    run_id: str,
    timeout: float,
    merge: Path | None,
    spread: Callable[[], bool | None] | None = None,
) -> RunResult:
    """Start one child per command, follow their event streams until they have all exited, hand the events on
    (through :class:`OrderedMerge` when there are several children); Ctrl-C stops them all.

    With ``spread``, the first child starts alone and the others when ``spread()`` says True (None: not known
    yet, asked again); False, or the first child ending first, means they never start."""
    result = RunResult(run_id=run_id, exit_code=-1, events_path=streams[0], log_path=logs[0], log_paths=list(logs))

    def emit(event: Event) -> None:
        _dispatch(event, handlers, result)

    merger = OrderedMerge(len(commands), lambda: read_order(merge), emit) if merge is not None else None
    started = time.monotonic()
    deadline = started + timeout
    with ExitStack() as stack:
        children = _Children(commands, logs, env, stack, spread)
        procs, ended = children.procs, children.ended
        follow = _Follow([stack.enter_context(stream.open("r", encoding="utf-8")) for stream in streams])

        def hand_on(part: int, event: Event) -> None:
            if merger is not None:
                merger.feed(part, event)
            else:
                emit(event)

        def settle() -> None:
            if children.settle():  # a small selection, or the first child already gone: it played alone
                result.log_paths = logs[:1]
                if merger is not None:
                    merger.only_first(1)

        try:
            while not all(ended):
                settle()
                for part, proc in enumerate(procs):
                    if ended[part]:
                        continue
                    finished = proc.poll() is not None
                    for event in follow.new_events(part):
                        hand_on(part, event)
                    if finished:
                        ended[part] = True
                        if merger is not None:
                            merger.child_ended(part)
                if all(ended):
                    break
                if time.monotonic() > deadline:
                    for proc in procs:
                        proc.kill()
                        proc.wait()
                    break
                time.sleep(0.05)
            settle()
            if merger is not None:
                merger.finish(time.monotonic() - started)
        except KeyboardInterrupt:
            _stop(procs)
            for part in range(len(procs)):  # what the children wrote since the last look, their own end aside
                for event in follow.new_events(part):
                    if not isinstance(event, RunFinished):
                        hand_on(part, event)
            if merger is not None:  # the scenarios a child finished behind a running one are reported too
                merger.flush()
            _interrupt(handlers, result, run_id, time.monotonic() - started)
    result.exit_code = _combined_exit_code([proc.returncode for proc in procs])
    return result


class _Children:
    """The child processes of a run: all started at once, or, with ``spread``, the first alone and the others when
    ``spread()`` says True (None: not known yet, asked again); False, or the first child ending first, means never."""

    def __init__(
        self,
        commands: list[list[str]],
        logs: list[Path],
        env: dict[str, str],
        stack: ExitStack,
        spread: Callable[[], bool | None] | None,
    ) -> None:
        self._commands, self._logs, self._env, self._stack = commands, logs, env, stack
        self._waiting = spread
        self.procs: list[subprocess.Popen] = []
        self.ended: list[bool] = []  # per started child: its process has exited and its stream has been read
        self._start(1 if spread is not None else len(commands))

    def _start(self, count: int) -> None:
        first = len(self.procs)
        for command, log_file in zip(self._commands[first:count], self._logs[first:count], strict=True):
            log = self._stack.enter_context(log_file.open("w", encoding="utf-8"))
            self.procs.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._env)
            )
            self.ended.append(False)

    def settle(self) -> bool:
        """Start the other children if ``spread`` now says so; True the one time it is decided they never will."""
        if self._waiting is None:
            return False
        wanted = False if self.ended[0] else self._waiting()
        if wanted is None:
            return False
        self._waiting = None
        if wanted:
            self._start(len(self._commands))
        return not wanted


def _combined_exit_code(codes: list[int | None]) -> int:
    """One exit code for the children (pytest's codes): a usage or internal error first, then a failure, then
    « no test » only if every child had none, else 0."""
    known = [-1 if code is None else code for code in codes]
    if len(known) == 1:
        return known[0]
    worst = [code for code in known if code not in (0, 1, 5)]
    if worst:
        return worst[0]
    if 1 in known:
        return 1
    return 5 if all(code == 5 for code in known) else 0


class _Follow:
    """Reads the children's event streams as they grow: whole JSON lines only, a partial last line kept."""

    def __init__(self, readers: list[TextIO]) -> None:
        self._readers = readers
        self._partial = [""] * len(readers)

    def new_events(self, part: int) -> list[Event]:
        chunk = self._readers[part].read()
        if not chunk:
            return []
        *lines, self._partial[part] = (self._partial[part] + chunk).split("\n")
        return [event_from_json(line) for line in lines if line.strip()]


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _interrupt(handlers: Sequence[EventHandler], result: RunResult, run_id: str, duration: float) -> None:
    """Ctrl-C (the children stopped): close the run for every handler so the reports are written, partial and
    marked interrupted (the scenarios judged so far keep their verdicts)."""
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
