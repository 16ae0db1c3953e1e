"""``socle-harness run --jobs N``: the catalogue shared by N child processes, reported as one run (issue 18).

The merge of the children's event streams (catalogue order, the head scenario live, one RunStarted, one RunFinished
with the summed counts), the exclusive claims, the choice of ``--jobs auto``, the PKI created once when the
children start together, and a real two-process run whose reports equal a one-process run's.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from processes import interruptible

from harness.core.config import HarnessConfig
from harness.core.events import (
    ORDER_FILE,
    Event,
    RunFinished,
    RunStarted,
    ScenarioFinished,
    ScenarioStarted,
    Status,
    StepFinished,
    read_order,
)
from harness.fields.pki import TestPKI
from harness.front.ordered_events import OrderedMerge
from harness.front.preflight import AUTO_SPREAD_FROM, PreflightError, parallel_jobs, spread_from
from harness.front.runner import RunResult, play_children, run_catalogue
from harness.runtime.claims import ScenarioClaims, claim_order

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def _started(run_id: str = "r1", port: int = 1000) -> RunStarted:
    return RunStarted(
        run_id=run_id,
        started_at="2026-12-03T08:00:00+00:00",
        sut="reference",
        journal_url="sqlite:///j",
        harness_version="0",
        scenarios_dir="s",
        endpoints={"insi": {"soap": f"https://h:{port}/insi"}} if run_id else {},
        scenarios_total=3,
    )


def _scenario(sid: str, status: Status = Status.PASSED) -> list[Event]:
    return [
        ScenarioStarted(sid, "F", sid),
        StepFinished(sid, "Soit", "x", status, 0.1),
        ScenarioFinished(sid, "F", sid, status, 0.1),
    ]


def _finished(passed: int, failed: int = 0) -> RunFinished:
    return RunFinished("r1", "2026-12-03T08:00:05+00:00", 1.0, {"passed": passed, "failed": failed})


def _shape(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.kind, getattr(e, "scenario_id", "")) for e in events]


def test_the_merged_stream_is_in_catalogue_order_with_the_head_scenario_live() -> None:
    out: list[Event] = []
    merge = OrderedMerge(2, lambda: ["a", "b", "c"], out.append)
    merge.feed(0, _started(port=1000))
    a_started, a_step, a_done = _scenario("a")
    merge.feed(0, a_started)
    assert out == []  # the merged RunStarted waits for the second child
    merge.feed(1, _started(port=2000))
    assert _shape(out) == [("run_started", ""), ("scenario_started", "a")]
    assert out[0].endpoints == {
        "insi": {"soap": "https://h:1000/insi"},
        "processus 2": {"insi.soap": "https://h:2000/insi"},
    }
    assert out[0].scenarios_total == 3
    for event in _scenario("b", Status.FAILED):  # played by the second child while a is still running
        merge.feed(1, event)
    merge.feed(0, a_step)
    assert _shape(out)[-1] == ("step_finished", "a")  # the head scenario goes on live, b is held
    merge.feed(0, a_done)
    merge.feed(1, _finished(0, 1))
    for event in _scenario("c"):
        merge.feed(0, event)
    merge.feed(0, _finished(2))
    merge.child_ended(0)
    merge.child_ended(1)
    merged = merge.finish(4.5)
    assert _shape(out) == [
        ("run_started", ""),
        *[(kind, "a") for kind in ("scenario_started", "step_finished", "scenario_finished")],
        *[(kind, "b") for kind in ("scenario_started", "step_finished", "scenario_finished")],
        *[(kind, "c") for kind in ("scenario_started", "step_finished", "scenario_finished")],
        ("run_finished", ""),
    ]
    assert merged == out[-1]
    assert merged.counts == {"passed": 2, "failed": 1, "error": 0, "skipped": 0}
    assert merged.duration == 4.5 and merged.run_id == "r1"


def test_a_child_that_played_nothing_adds_no_endpoints_and_the_run_starts_when_it_ends() -> None:
    out: list[Event] = []
    merge = OrderedMerge(2, lambda: ["a"], out.append)
    merge.feed(0, _started())
    for event in _scenario("a"):
        merge.feed(0, event)
    assert out == []
    merge.child_ended(1)  # ended before sending anything (the other child had taken every scenario)
    assert _shape(out)[:2] == [("run_started", ""), ("scenario_started", "a")]
    assert out[0].endpoints == {"insi": {"soap": "https://h:1000/insi"}}
    merge.feed(0, _finished(1))
    merge.child_ended(0)
    assert merge.finish(1.0) is None  # the second child never finished its session: the run did not complete
    assert _shape(out)[-1] == ("scenario_finished", "a")


def test_a_child_without_scenarios_sends_an_empty_run_started_that_the_others_override() -> None:
    out: list[Event] = []
    merge = OrderedMerge(2, lambda: ["a"], out.append)
    merge.feed(1, _started(run_id=""))  # a child that claimed nothing starts its run at its session's end
    merge.feed(1, RunFinished("", "2026-12-03T08:00:01+00:00", 0.5, {"passed": 0}))
    merge.feed(0, _started())
    assert out[0].run_id == "r1" and set(out[0].endpoints) == {"insi"}
    for event in _scenario("a"):
        merge.feed(0, event)
    merge.feed(0, _finished(1))
    merged = merge.finish(2.0)
    assert merged is not None and merged.run_id == "r1" and merged.counts["passed"] == 1


def test_ctrl_c_passes_on_the_scenarios_held_behind_a_running_one() -> None:
    out: list[Event] = []
    merge = OrderedMerge(2, lambda: ["a", "b"], out.append)
    merge.feed(0, _started())
    merge.feed(1, _started(port=2000))
    merge.feed(0, _scenario("a")[0])
    for event in _scenario("b"):
        merge.feed(1, event)
    assert _shape(out)[-1] == ("scenario_started", "a")
    merge.flush()
    assert _shape(out)[1:] == [
        ("scenario_started", "a"),
        *[(kind, "b") for kind in ("scenario_started", "step_finished", "scenario_finished")],
    ]


def test_events_before_the_order_is_known_wait_for_it() -> None:
    out: list[Event] = []
    order: list[str] = []
    merge = OrderedMerge(1, lambda: list(order), out.append)
    merge.feed(0, _started())
    first = _scenario("b")
    merge.feed(0, first[0])
    assert _shape(out) == [("run_started", "")]
    order.extend(["a", "b"])
    for event in _scenario("a"):
        merge.feed(0, event)
    assert _shape(out)[1:] == [
        *[(kind, "a") for kind in ("scenario_started", "step_finished", "scenario_finished")],
        ("scenario_started", "b"),
    ]


def test_a_scenario_is_claimed_once(tmp_path: Path) -> None:
    first, second = ScenarioClaims(tmp_path / "claims"), ScenarioClaims(tmp_path / "claims")
    assert [first.claim(0), second.claim(0), second.claim(1), first.claim(1)] == [True, False, True, False]
    assert read_order(tmp_path / "claims") == []
    (tmp_path / "claims" / ORDER_FILE).write_text('["x", "y"]', encoding="utf-8")
    assert read_order(tmp_path / "claims") == ["x", "y"]


class _Tagged:
    """A collected scenario as :func:`claim_order` sees it: its Gherkin tags as ``socle_tag`` marks."""

    def __init__(self, *tags: str) -> None:
        self.tags = tags

    def iter_markers(self, name: str) -> list[pytest.Mark]:
        return [pytest.mark.socle_tag(tag).mark for tag in self.tags] if name == "socle_tag" else []


def test_the_slow_scenarios_are_claimed_first_then_the_catalogue_order() -> None:
    items = [_Tagged("mssante"), _Tagged("exigence:MSS-SERVEUR-LENT", "lent"), _Tagged(), _Tagged("lent")]
    assert claim_order(items) == [1, 3, 0, 2]  # type: ignore[arg-type]
    assert claim_order([_Tagged("lenteur"), _Tagged()]) == [0, 1]  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("sut", "requested", "cores", "ports", "expected"),
    [
        ("reference", "auto", 2, {}, 2),
        ("faulty:insi-sans-traits", "auto", 8, {"mssante": {"smtp": 0}}, 2),
        ("reference", "auto", 1, {}, 1),
        ("reference", "auto", 2, {"mssante": {"smtp": 2525}}, 1),
        ("http:http://127.0.0.1:9", "auto", 2, {}, 1),
        ("manual", "auto", 2, {}, 1),
        ("observe:2026-01-01/2026-01-02", "auto", 2, {}, 1),
        ("reference", "3", 2, {}, 3),
        ("http:http://127.0.0.1:9", "1", 2, {}, 1),
    ],
)
def test_jobs_auto_and_explicit(
    monkeypatch: pytest.MonkeyPatch, sut: str, requested: str, cores: int, ports: dict, expected: int
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert parallel_jobs(HarnessConfig(sut=sut, ports=ports), requested) == expected


def test_a_runs_simulators_keep_their_state_on_a_postgresql_journal(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two children of a parallel run on one PostgreSQL journal: a fault one injects is not taken by the other
    (with the shared state of ``serve`` it was: « Un message renvoyé après une réponse perdue est compté une fois »
    failed, its mssante.reply_lost fault taken by the other child's message). ``serve``'s processes still share it."""
    from harness.host.simulator import Fault
    from harness.runtime.environment import SocleEnvironment

    def environment(name: str, share_state: bool) -> SocleEnvironment:
        return SocleEnvironment(HarnessConfig(journal=pg_url, run_dir=tmp_path / name), share_state=share_state)

    pairs = {
        False: (environment("a", False), environment("b", False)),
        True: (environment("c", True), environment("d", True)),
    }
    try:
        for shared, (first, second) in pairs.items():
            first.host.faults.inject("mssante", Fault("mssante.reply_lost", remaining=1))
            assert (second.host.faults.take("mssante", "mssante.reply_lost") is not None) is shared
            assert (first.host.faults.take("mssante", "mssante.reply_lost") is not None) is not shared
    finally:
        for pair in pairs.values():
            for env in pair:
                env.journal.close()
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert parallel_jobs(HarnessConfig(journal=pg_url), "auto") == 2


@pytest.mark.parametrize(
    ("sut", "requested", "ports", "http_port", "says"),
    [
        ("reference", "0", {}, 0, "« auto » ou un nombre de processus >= 1"),
        ("reference", "deux", {}, 0, "« auto » ou un nombre de processus >= 1"),
        ("manual", "2", {}, 0, "se joue dans un seul processus"),
        ("http:http://127.0.0.1:9", "2", {}, 0, "se joue dans un seul processus"),
        ("reference", "2", {"mssante": {"smtp": 2525}}, 0, "des ports fixes sont configurés"),
        ("reference", "2", {}, 8443, "des ports fixes sont configurés"),
    ],
)
def test_jobs_that_cannot_work_are_refused_with_what_to_do(
    sut: str, requested: str, ports: dict, http_port: int, says: str
) -> None:
    with pytest.raises(PreflightError, match=says) as refused:
        parallel_jobs(HarnessConfig(sut=sut, ports=ports, http_port=http_port), requested)
    assert "--jobs" in str(refused.value) and refused.value.exit_code == 2


def _roots_of(directories: list[str], together: Any, queue: multiprocessing.Queue) -> None:
    for directory in directories:
        together.wait(timeout=60)
        queue.put((directory, TestPKI.ensure(directory).root.cert.fingerprint(hashes.SHA256())))


def test_processes_ensuring_a_new_pki_at_once_share_one(tmp_path: Path) -> None:
    """The children of a first parallel run create the PKI at the same moment: one creates it, the others wait
    and load it (without the lock each wrote its own, and a child's DUI trusted another child's root)."""
    context = multiprocessing.get_context("spawn")
    queue, together = context.Queue(), context.Barrier(4)
    directories = [str(tmp_path / f"pki-{round_}") for round_ in range(6)]
    children = [context.Process(target=_roots_of, args=(directories, together, queue)) for _ in range(4)]
    for child in children:
        child.start()
    roots: dict[str, set[bytes]] = {}
    for _ in range(4 * len(directories)):
        directory, root = queue.get(timeout=120)
        roots.setdefault(directory, set()).add(root)
    for child in children:
        child.join(timeout=60)
    assert {d: len(r) for d, r in roots.items()} == dict.fromkeys(directories, 1)
    for directory in directories:
        assert TestPKI.load(directory).root.cert.fingerprint(hashes.SHA256()) in roots[directory]


@pytest.mark.slow
def test_two_processes_report_the_same_run_as_one(tmp_path: Path) -> None:
    """The INSi and MSSanté incident features (18 scenarios, the 2-second ``@lent`` one claimed first) played by
    one process, then by two: same scenarios, same order, same verdicts, steps and messages; each scenario played
    once; two event streams and one merged report."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    for name in ("insi.feature", "mssante_incidents.feature"):
        shutil.copy(SCENARIOS / name, scenarios / name)

    def played(folder: str, jobs: int) -> tuple[list[tuple], list[Event]]:
        config = HarnessConfig(
            run_dir=tmp_path / folder, journal=f"sqlite:///{tmp_path}/{folder}.sqlite", scenarios_dir=scenarios
        )
        events: list[Event] = []

        class Keep:
            def handle(self, event: Event) -> None:
                events.append(event)

        result = run_catalogue(config, [Keep()], timeout=300, jobs=jobs)
        assert result.ok and result.exit_code == 0, [
            (s.name, s.message) for s in result.scenarios if s.status is not Status.PASSED
        ]
        verdicts = [(s.scenario_id, s.name, s.status, s.message) for s in result.scenarios]
        return verdicts, events

    alone, alone_events = played("one", 1)
    shared, shared_events = played("two", 2)
    assert shared == alone and len(alone) == 18
    steps = [(e.scenario_id, e.text, e.status, e.message) for e in shared_events if isinstance(e, StepFinished)]
    assert steps == [(e.scenario_id, e.text, e.status, e.message) for e in alone_events if isinstance(e, StepFinished)]
    kinds = [e.kind for e in shared_events]
    assert kinds[0] == "run_started" and kinds.count("run_started") == 1
    assert kinds[-1] == "run_finished" and kinds.count("run_finished") == 1
    assert shared_events[-1].counts == {"passed": 18, "failed": 0, "error": 0, "skipped": 0}
    streams = sorted((tmp_path / "two").glob("events-*.jsonl"))
    assert len(streams) == 2
    started = [
        json.loads(line)["scenario_id"]
        for stream in streams
        for line in stream.read_text(encoding="utf-8").splitlines()
        if json.loads(line)["kind"] == "scenario_started"
    ]
    assert sorted(started) == sorted(s[0] for s in alone)  # every scenario played once, by one of the children
    assert not list((tmp_path / "two").glob("claims-*"))  # the shared folder is removed after the run


@pytest.mark.slow
def test_ctrl_c_stops_both_children_and_reports_what_they_finished(tmp_path: Path) -> None:
    """SIGINT while one child waits in the 2-second ``@lent`` scenario and the other goes on: exit 130, both
    children stopped, the partial report lists every scenario either of them finished, once, marked interrupted."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.front.cli", "run", "--jobs", "2", "--tags", "mssante"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 120
    finished: list[str] = []
    while time.monotonic() < deadline:
        lines = [line for stream in (tmp_path / ".socle").glob("events-*.jsonl") for line in _lines(stream)]
        slow_started = any(e["kind"] == "scenario_started" and "lent" in e["tags"] for e in lines)
        finished = [e["scenario_id"] for e in lines if e["kind"] == "scenario_finished"]
        if slow_started and len(finished) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    results = json.loads((tmp_path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert results["run"]["interrupted"] is True
    reported = [s["id"] for s in results["scenarios"]]
    assert len(reported) == len(set(reported)) and set(finished) <= set(reported)
    assert subprocess.run(["pgrep", "-f", "--", f"--socle-run-dir {tmp_path}"], capture_output=True).returncode == 1


def _lines(stream: Path) -> list[dict]:
    events = []
    for line in stream.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:  # a line being written
            continue
    return events


_FAKE_CHILD = """
import json, sys, time
stream, claims, behaviour = sys.argv[1], sys.argv[2], sys.argv[3]
from pathlib import Path
Path(claims).mkdir(exist_ok=True)
(Path(claims) / "order.json").write_text(json.dumps(["a", "b"]))
def emit(**event):
    with open(stream, "a", encoding="utf-8") as out:
        out.write(json.dumps(event) + "\\n")
emit(kind="run_started", run_id="r1", started_at="t", sut="reference", journal_url="j", harness_version="0",
     scenarios_dir="s", endpoints={}, config={}, scenarios_total=2)
sid = "a" if behaviour == "a" else "b"
emit(kind="scenario_started", scenario_id=sid, feature="F", name=sid)
hold = Path(claims).parent / "hold"  # the first child waits in its scenario until the test lets it go
while sid == "a" and hold.exists() and not (Path(claims).parent / "go").exists():
    time.sleep(0.01)
if behaviour == "dies":
    print("child 2 died here")
    sys.exit(1)
emit(kind="scenario_finished", scenario_id=sid, feature="F", name=sid, status="passed", duration=0.1)
emit(kind="run_finished", run_id="r1", finished_at="t", duration=0.2, counts={"passed": 1})
"""


#: the merged stream of the two fake children when both play their scenario
BOTH_PLAYED = [
    ("run_started", ""),
    ("scenario_started", "a"),
    ("scenario_finished", "a"),
    ("scenario_started", "b"),
    ("scenario_finished", "b"),
    ("run_finished", ""),
]


def _fake_children(tmp_path: Path, second: str, spread: Any = None) -> tuple[RunResult, list[Event]]:
    claims = tmp_path / "claims"
    script = tmp_path / "child.py"
    script.write_text(_FAKE_CHILD, encoding="utf-8")
    streams = [tmp_path / "events.jsonl", tmp_path / "events.2.jsonl"]
    logs = [tmp_path / "pytest.log", tmp_path / "pytest.2.log"]
    for stream in streams:
        stream.write_text("", encoding="utf-8")
    commands = [[sys.executable, str(script), str(streams[0]), str(claims), "a"]]
    commands.append([sys.executable, str(script), str(streams[1]), str(claims), second])
    events: list[Event] = []

    class Keep:
        def handle(self, event: Event) -> None:
            events.append(event)

    result = play_children(commands, streams, logs, dict(os.environ), [Keep()], "r1", 60.0, merge=claims, spread=spread)
    return result, events


def test_two_children_that_finish_make_one_run(tmp_path: Path) -> None:
    result, events = _fake_children(tmp_path, "b")
    assert _shape(events) == BOTH_PLAYED
    assert result.ok and result.exit_code == 0 and result.counts["passed"] == 2
    assert result.log_paths == [tmp_path / "pytest.log", tmp_path / "pytest.2.log"]


def test_a_child_that_dies_leaves_the_run_incomplete_and_names_its_log(tmp_path: Path) -> None:
    """The second child dies in its scenario: no RunFinished is made up (the CLI says the run could not complete,
    exit 3), the scenarios that did finish are still handed on, and its own log is among the logs named."""
    result, events = _fake_children(tmp_path, "dies")
    assert _shape(events) == [
        ("run_started", ""),
        ("scenario_started", "a"),
        ("scenario_finished", "a"),
        ("scenario_started", "b"),
    ]
    assert not result.ok and result.exit_code == 1 and result.counts == {}
    assert "child 2 died here" in (tmp_path / "pytest.2.log").read_text(encoding="utf-8")
    assert tmp_path / "pytest.2.log" in result.log_paths


@pytest.mark.parametrize(
    ("requested", "processes", "selection", "expected"),
    [
        ("auto", 2, ("x", None, None), AUTO_SPREAD_FROM),  # --select
        ("auto", 2, (None, "dmp", None), AUTO_SPREAD_FROM),  # --tags
        ("auto", 2, (None, None, "perdue"), AUTO_SPREAD_FROM),  # --titre
        ("auto", 2, (None, None, None), None),  # the whole catalogue: both at once
        ("2", 2, (None, "dmp", None), None),  # asked for: both at once
        ("auto", 1, (None, "dmp", None), None),
    ],
)
def test_jobs_auto_spreads_a_selection_only_once_it_is_big_enough(
    requested: str, processes: int, selection: tuple, expected: int | None
) -> None:
    assert spread_from(requested, processes, *selection) == expected


def test_a_small_selection_is_played_by_the_first_child_alone(tmp_path: Path) -> None:
    """``spread`` says no: the second child never starts (no log), the first one's run is the whole run."""
    asked: list[int] = []

    def spread() -> bool | None:
        asked.append(1)
        return None if len(asked) < 3 else False

    result, events = _fake_children(tmp_path, "b", spread)
    assert _shape(events) == [
        ("run_started", ""),
        ("scenario_started", "a"),
        ("scenario_finished", "a"),
        ("run_finished", ""),
    ]
    assert result.ok and result.exit_code == 0 and result.counts["passed"] == 1
    assert result.log_paths == [tmp_path / "pytest.log"]
    assert not (tmp_path / "pytest.2.log").exists()


def test_the_other_children_start_when_spread_says_so(tmp_path: Path) -> None:
    asked: list[int] = []
    (tmp_path / "hold").touch()  # the first child stays in its scenario until spread has said yes

    def spread() -> bool | None:
        asked.append(1)
        if len(asked) < 3:
            return None
        (tmp_path / "go").touch()
        return True

    result, events = _fake_children(tmp_path, "b", spread)
    assert _shape(events) == BOTH_PLAYED
    assert result.ok and result.counts["passed"] == 2 and len(asked) == 3
    assert result.log_paths == [tmp_path / "pytest.log", tmp_path / "pytest.2.log"]


def test_the_others_never_start_when_the_first_child_ends_undecided(tmp_path: Path) -> None:
    """The first child exits (its selection played, or an error) before ``spread`` could tell: the run ends with it."""
    result, events = _fake_children(tmp_path, "b", lambda: None)
    assert [kind for kind, _ in _shape(events)][-1] == "run_finished"
    assert result.ok and result.counts["passed"] == 1
    assert not (tmp_path / "pytest.2.log").exists()


def test_run_catalogue_plays_a_selection_below_the_threshold_in_one_process(tmp_path: Path) -> None:
    """The real children: ``spread_from`` above the selection's size, only the first child runs, the claims and
    the merge still make one complete run of it."""
    config = HarnessConfig(scenarios_dir=str(SCENARIOS), reports_dir=str(tmp_path / "r"), run_dir=str(tmp_path / "run"))
    result = run_catalogue(config, tags="dmp", title="DMP actif", jobs=2, spread_from=10_000)
    assert result.ok, result.log_path.read_text(encoding="utf-8")
    assert len(result.log_paths) == 1 and result.counts["passed"] >= 1
    assert not list((tmp_path / "run").glob("pytest-*.2.log"))
