"""socle-harness as a pytest plugin (entry point ``pytest11: socle_harness``).

Provides the options ``--socle-sut``, ``--socle-config``, ``--socle-journal``, ``--socle-run-dir``,
``--socle-run-id`` and ``--socle-events``; the fixtures ``socle_config``, ``socle_env`` (running simulators,
journal, PKI, fixtures), ``socle_sut`` (the SUT driver) and ``socle`` (the per-scenario context); and the
bilingual step library. With ``--socle-events FILE`` it writes the run's typed event stream
(:mod:`harness.core.events`) as JSON lines, which ``socle-harness run`` turns into progress and reports.
"""

from __future__ import annotations

import atexit
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pytest

from harness import __version__
from harness.core.config import HarnessConfig, load_config
from harness.core.events import (
    Event,
    RunFinished,
    RunStarted,
    ScenarioFinished,
    ScenarioStarted,
    Status,
    StepFinished,
)
from harness.core.messages import bilingual
from harness.host.simulator import simulator_names
from harness.runtime import bdd_lookup
from harness.runtime.claims import ScenarioClaims
from harness.runtime.drivers import make_driver
from harness.runtime.environment import ScenarioContext, SocleEnvironment, SutUnavailable, not_observable
from harness.runtime.guided import OperatorChannel, ReplyBox, StepBlocked
from harness.runtime.selection import TagExpression, item_tags, title_matches
from harness.steps import SHARED_STEP_MODULES
from harness.sut import SutDriver
from harness.sut.plugins import check_settings, services

# The step libraries: the shared steps, then the step module each service plugin names (harness.sut.plugins).
pytest_plugins = list(dict.fromkeys([*SHARED_STEP_MODULES, *(plugin.steps for plugin in services().values())]))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("socle", "socle-harness (DUI conformance)")
    group.addoption(
        "--socle-sut",
        default=None,
        help=bilingual(
            "DUI testé : reference (défaut) ou faulty:<défaut>[,...]",
            "SUT driver: reference (default) or faulty:<defect>[,...]",
        ),
    )
    group.addoption(
        "--socle-config",
        default=None,
        help=bilingual("Fichier de configuration TOML", "socle-harness TOML configuration file"),
    )
    group.addoption(
        "--socle-journal",
        default=None,
        help=bilingual("URL du journal", "journal URL, e.g. sqlite:///.socle/journal.sqlite"),
    )
    group.addoption(
        "--socle-run-dir",
        default=None,
        help=bilingual(
            "Dossier du journal, de la PKI et des fichiers du run", "folder for the journal, PKI and run files"
        ),
    )
    group.addoption(
        "--socle-run-id",
        default=None,
        help=bilingual("Identifiant de ce run dans le journal", "identifier of this run in the journal"),
    )
    group.addoption(
        "--socle-events",
        default=None,
        help=bilingual(
            "Écrit le flux d'événements du run (JSON lines) dans ce fichier",
            "write the run's event stream (JSON lines) to this file",
        ),
    )
    group.addoption(
        "--socle-step-timeout",
        default=None,
        type=float,
        help=bilingual(
            "Secondes d'attente d'une étape pour un échange déclenché par une personne ou un DUI externe",
            "seconds a step waits for an exchange triggered by a person or an external DUI",
        ),
    )
    group.addoption(
        "--socle-observe-retry",
        default=None,
        help=bilingual(
            "Mode observation : effet d'un refus suivi d'une nouvelle tentative acceptée (avertissement | echec)",
            "observe-only mode: what a refusal followed by an accepted retry does",
        ),
    )
    group.addoption(
        "--socle-tags",
        default=None,
        help=bilingual(
            "Expression sur les étiquettes Gherkin, exigences comprises : 'exigence:MSS-ENVOI-PRO or dmp'",
            "tag expression over the Gherkin tags, requirement ids included",
        ),
    )
    group.addoption(
        "--socle-listening",
        default=None,
        help=bilingual(
            'Où écoutent les simulateurs, JSON : {"bind_host", "public_host", "http_port", "ports"}',
            "where the simulators listen",
        ),
    )
    group.addoption(
        "--socle-title",
        default=None,
        help=bilingual(
            "Ne joue que les scénarios dont le titre contient ce texte",
            "play only the scenarios whose title contains this text",
        ),
    )
    group.addoption(
        "--socle-exit-when-done",
        action="store_true",
        default=False,
        help=bilingual(
            "Quitter dès la fin de la session (processus enfant de socle-harness run)",
            "exit as soon as the session is over (the child process of socle-harness run)",
        ),
    )
    group.addoption(
        "--socle-claims",
        default=None,
        help=bilingual(
            "Dossier partagé par les processus d'un run en parallèle : chacun joue les scénarios qu'il réserve",
            "folder shared by the processes of a parallel run: each plays the scenarios it claims",
        ),
    )
    group.addoption(
        "--socle-operator-replies",
        default=None,
        help=bilingual(
            "Recette guidée : fichier où s'ajoutent les réponses de l'opérateur",
            "guided recette: file the operator's replies are appended to",
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "socle_tag(name): Gherkin tag of a socle-harness scenario")
    for service in (*simulator_names(), "indicateurs"):  # the catalogue's capability tags
        config.addinivalue_line("markers", f"{service}: socle-harness scenarios of {service}")
    events = config.getoption("--socle-events", default=None)
    if events:
        config.pluginmanager.register(EventRecorder(Path(events)), "socle-harness-events")
    claims = config.getoption("--socle-claims", default=None)
    if claims:
        config.pluginmanager.register(ScenarioClaims(Path(claims)), "socle-harness-claims")
    if config.getoption("--socle-exit-when-done", default=False):
        config.pluginmanager.register(ExitWhenDone(), "socle-harness-exit")
    bdd_lookup.install()  # pytest-bdd's step lookup once per step text (harness.runtime.bdd_lookup, issue 18)
    _long_lived()  # the plugins, the step libraries and their imports


def _long_lived() -> None:
    """Move every object that exists now to the permanent generation (``gc.freeze``, Python documentation « gc —
    Garbage Collector interface »), as ``serve`` does after its start (``harness.front.startup``): the modules,
    classes and simulators built at start live as long as the run, and each oldest-generation pass of the cyclic
    collector walked them all again (a 96-scenario run: 6 such passes, 2.3 s of its 3.0 s of collections on a
    loaded machine, issue 18). Called once the plugins are loaded and once the simulators are started."""
    gc.freeze()


def pytest_unconfigure(config: pytest.Config) -> None:
    bdd_lookup.uninstall()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--socle-tags`` / ``--socle-title``: deselect the scenarios the selection leaves out
    (:mod:`harness.runtime.selection`; Gherkin tags such as ``exigence:MSS-ENVOI-PRO`` are beyond ``-m``)."""
    text = config.getoption("--socle-tags", default=None)
    title = config.getoption("--socle-title", default=None)
    if not text and not title:
        return
    expression = TagExpression.parse(text) if text else None
    kept, dropped = [], []
    for item in items:
        tags = item_tags(item)
        doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
        scenario_title = doc.partition(": ")[2] or item.name
        wanted = (expression is None or expression.evaluate(tags)) and (
            not title or title_matches(scenario_title, title)
        )
        (kept if wanted else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_bdd_apply_tag(tag: str, function: Any) -> bool:
    """Keep every Gherkin tag (``@mssante``, ``@exigence:MSS-01``) as a ``socle_tag`` mark; tags that are
    identifiers also become plain marks, so that ``-m "mssante and not lent"`` selects scenarios by tag."""
    pytest.mark.socle_tag(tag)(function)
    if tag.isidentifier():
        getattr(pytest.mark, tag)(function)
    return True


def _config_from(pytestconfig: pytest.Config) -> HarnessConfig:
    path = pytestconfig.getoption("--socle-config")
    config = load_config(Path(path) if path else None)
    check_settings(config.settings)
    run_dir = pytestconfig.getoption("--socle-run-dir")
    overrides: dict[str, Any] = {
        "sut": pytestconfig.getoption("--socle-sut"),
        "journal": pytestconfig.getoption("--socle-journal"),
        "step_timeout": pytestconfig.getoption("--socle-step-timeout"),
        "observe_retry": pytestconfig.getoption("--socle-observe-retry"),
    }
    listening = pytestconfig.getoption("--socle-listening", default=None)
    if listening:
        chosen = json.loads(listening)
        overrides.update({k: chosen[k] for k in ("bind_host", "public_host", "http_port", "ports") if k in chosen})
    if run_dir:
        overrides["run_dir"] = Path(run_dir)
        if not pytestconfig.getoption("--socle-journal"):
            overrides["journal"] = f"sqlite:///{Path(run_dir).resolve() / 'journal.sqlite'}"
    return config.with_overrides(**overrides)


@pytest.fixture(scope="session")
def socle_config(pytestconfig: pytest.Config) -> HarnessConfig:
    return _config_from(pytestconfig)


@pytest.fixture(scope="session")
def socle_env(socle_config: HarnessConfig, pytestconfig: pytest.Config) -> Iterator[SocleEnvironment]:
    # the run's own simulators: their state stays in this process, whatever the journal (HostOptions.share_state)
    env = SocleEnvironment(socle_config, run_id=pytestconfig.getoption("--socle-run-id"), share_state=False)
    env.start()
    _long_lived()
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture(scope="session")
def socle_sut(
    socle_env: SocleEnvironment, socle_config: HarnessConfig, pytestconfig: pytest.Config
) -> Iterator[SutDriver]:
    channel = None
    recorder = pytestconfig.pluginmanager.get_plugin("socle-harness-events")
    replies = pytestconfig.getoption("--socle-operator-replies")
    if recorder is not None and replies:
        channel = OperatorChannel(recorder.emit, ReplyBox(Path(replies)), timeout=socle_config.step_timeout)
    driver = make_driver(
        socle_config.sut, timeout=socle_config.sut_timeout, retries=socle_config.sut_retries, channel=channel
    )
    driver.setup(socle_env.sut_environment())
    if getattr(driver, "window", None) is not None:  # observe-only mode: a past activity had no injected fault
        socle_env.host.faults.guard = lambda service, fault: not_observable(
            f"le scénario injecte une panne ({service}: {fault.kind})"
        )
    try:
        yield driver
    finally:
        socle_env.host.faults.guard = None
        driver.close()


@pytest.fixture
def socle(
    socle_env: SocleEnvironment, socle_sut: SutDriver, request: pytest.FixtureRequest
) -> Iterator[ScenarioContext]:
    ctx = ScenarioContext(env=socle_env, sut=socle_sut, scenario_id=request.node.nodeid)
    socle_env.run.scenario_id = ctx.scenario_id
    try:
        yield ctx
    finally:
        socle_env.run.scenario_id = None
        socle_env.host.faults.clear()  # a fault a scenario injected but never triggered must not leak


def _template_of(item: pytest.Item) -> Any | None:
    """The pytest-bdd scenario template behind a test item (None for ordinary tests)."""
    try:
        from pytest_bdd.scenario import scenario_wrapper_template_registry
    except ImportError:  # pragma: no cover - pytest-bdd internals moved
        return None
    function = getattr(item, "function", None)
    return scenario_wrapper_template_registry.get(function) if function is not None else None


def _tags(scenario: Any) -> list[str]:
    return sorted(set(scenario.tags) | set(scenario.feature.tags))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _archived_config(config: HarnessConfig) -> dict[str, Any]:
    """The configuration a recette archive records (every field, paths as text; no secrets live there)."""
    return {f.name: (str(v) if isinstance(v, Path) else v) for f in fields(config) for v in [getattr(config, f.name)]}


class ExitWhenDone:
    """``socle-harness run``'s child skips the interpreter's teardown (``--socle-exit-when-done``).

    When Python runs its exit handlers the run is over: the simulators are stopped and the journal closed
    (``socle_env``), the event stream closed (``RunFinished``), pytest has written its summary and run its own
    clean-ups, the threads are joined. What remained was freeing the ~10^5 objects of the simulators, modules and
    run one by one (0.1-0.4 s during which the parent only waited for the exit code, issue 18): the last exit
    handler flushes the output streams and ends the process with pytest's exit status (``os._exit``)."""

    def __init__(self) -> None:
        self._session: pytest.Session | None = None

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._session = session

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._session is not None:  # registered last, run first among the exit handlers (atexit is LIFO)
            atexit.register(_exit_now, int(self._session.exitstatus))


def _exit_now(status: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


class EventRecorder:
    """pytest hooks -> typed events, one JSON line each (flushed, so the parent can follow live)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: TextIO = path.open("w", encoding="utf-8")
        self._started_run = False
        self._t0 = time.monotonic()
        self._run_id = ""
        self._scenario_t0: dict[str, float] = {}
        self._scenarios: dict[str, Any] = {}
        self._steps_done: dict[str, int] = {}
        self._step_t0: dict[str, float] = {}
        self._failure: dict[str, tuple[Status, str]] = {}
        # observe-only mode: a step whose action became an expectation, and the steps after it, wait for the
        # scenario's verdict (the step shows it: « non observé » is not « réussi »); True marks that step
        self._held: dict[str, list[tuple[StepFinished, bool]]] = {}
        self._warnings: dict[str, list[str]] = {}  # what a passed scenario shows beside its verdict
        self._counts = {s.value: 0 for s in Status}
        self._total = 0

    def emit(self, event: Event) -> None:
        self._out.write(event.to_json() + "\n")
        self._out.flush()

    def _ensure_run_started(self, request: pytest.FixtureRequest | None) -> None:
        if self._started_run:
            return
        self._started_run = True
        env: SocleEnvironment | None = None
        if request is not None:
            try:
                env = request.getfixturevalue("socle_env")
            except Exception:  # noqa: BLE001 - the setup error is reported on the scenario itself
                env = None
        self._run_id = env.run_id if env else ""
        self.emit(
            RunStarted(
                run_id=self._run_id,
                started_at=datetime.now(UTC).isoformat(),
                sut=env.config.sut if env else "",
                journal_url=env.journal.url if env else "",
                harness_version=__version__,
                scenarios_dir=str(env.config.scenarios_dir) if env else "",
                endpoints=env.endpoints if env else {},
                config=_archived_config(env.config) if env else {},
                scenarios_total=self._total,
            )
        )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._total = len(session.items)

    # pytest-bdd hooks ----------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_bdd_before_scenario(self, request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
        self._ensure_run_started(request)
        sid = request.node.nodeid
        self._scenarios[sid] = scenario
        self._scenario_t0[sid] = time.monotonic()
        self._step_t0[sid] = time.monotonic()
        self._steps_done[sid] = 0
        self.emit(ScenarioStarted(sid, feature.name, scenario.name, _tags(scenario), feature.rel_filename, _now()))

    @staticmethod
    def _ctx(request: pytest.FixtureRequest) -> ScenarioContext | None:
        try:
            return request.getfixturevalue("socle")
        except Exception:  # noqa: BLE001
            return None

    def _step_event(self, request: pytest.FixtureRequest, step: Any, status: Status, message: str = "") -> None:
        sid = request.node.nodeid
        now = time.monotonic()
        duration = now - self._step_t0.get(sid, now)
        self._step_t0[sid] = now
        self._steps_done[sid] = self._steps_done.get(sid, 0) + 1
        ctx = self._ctx(request)
        evidence = ctx.drain_evidence() if ctx is not None else []
        if ctx is not None and ctx.warnings:
            self._warnings[sid] = list(ctx.warnings)
        event = StepFinished(sid, step.keyword.strip(), step.name, status, duration, message, evidence)
        observed = ctx is not None and ctx.take_observation_actions() > 0 and status is Status.PASSED
        if observed or sid in self._held:
            self._held.setdefault(sid, []).append((event, observed))
            return
        self.emit(event)

    def pytest_bdd_after_step(
        self,
        request: pytest.FixtureRequest,
        feature: Any,
        scenario: Any,
        step: Any,
        step_func: Any,
        step_func_args: Any,
    ) -> None:
        self._step_event(request, step, Status.PASSED)

    def pytest_bdd_step_error(
        self,
        request: pytest.FixtureRequest,
        feature: Any,
        scenario: Any,
        step: Any,
        step_func: Any,
        step_func_args: Any,
        exception: BaseException,
    ) -> None:
        if isinstance(exception, AssertionError):
            status, message = Status.FAILED, str(exception)
        elif isinstance(exception, StepBlocked):
            status, message = (
                Status.ERROR,
                bilingual("étape bloquée par l'opérateur", "step blocked by the operator") + f": {exception}",
            )
        elif isinstance(exception, SutUnavailable):
            status, message = Status.ERROR, f"SUT injoignable ou en erreur / SUT unreachable or failing: {exception}"
        else:
            status, message = Status.ERROR, f"{type(exception).__name__}: {exception}"
        self._failure[request.node.nodeid] = (status, message)
        self._step_event(request, step, status, message)

    def pytest_bdd_step_func_lookup_error(
        self, request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any, exception: BaseException
    ) -> None:
        message = bilingual("étape non définie", "undefined step") + f": {step.keyword.strip()} {step.name}"
        self._failure[request.node.nodeid] = (Status.ERROR, message)
        self._step_event(request, step, Status.ERROR, message)

    # pytest hooks --------------------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        sid = item.nodeid
        scenario = self._scenarios.get(sid) or _template_of(item)
        if scenario is None:
            return
        done = report.when == "call" or (report.when == "setup" and not report.passed)
        if not done:
            return
        if sid not in self._scenario_t0:  # failed before the scenario started (fixture/setup error)
            self._ensure_run_started(None)
            self._scenario_t0[sid] = time.monotonic()
            self.emit(
                ScenarioStarted(
                    sid, scenario.feature.name, scenario.name, _tags(scenario), scenario.feature.rel_filename, _now()
                )
            )
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            status, message = Status.SKIPPED, str(reason).removeprefix("Skipped: ")[-1500:]
        elif report.passed:
            warnings = self._warnings.pop(sid, [])
            status, message = (
                Status.PASSED,
                "".join(bilingual("avertissement", "warning") + f" : {w}\n" for w in warnings).strip(),
            )
        else:
            status, message = self._failure.get(sid, (Status.ERROR, str(report.longrepr)[-2000:]))
        self._warnings.pop(sid, None)
        for event, observed in self._held.pop(sid, []):  # an observed action shows its scenario's verdict
            self.emit(replace(event, status=status, message=message or event.message) if observed else event)
        for index, step in enumerate(scenario.steps[self._steps_done.get(sid, 0) :]):
            skipped_here = index == 0 and report.skipped and report.when == "call"  # the step that skipped
            why = message if skipped_here else bilingual("non exécutée", "not run")
            self.emit(StepFinished(sid, step.keyword.strip(), step.name, Status.SKIPPED, 0.0, why))
        self._counts[status.value] += 1
        self.emit(
            ScenarioFinished(
                sid,
                scenario.feature.name,
                scenario.name,
                status,
                time.monotonic() - self._scenario_t0[sid],
                message,
                _tags(scenario),
                _now(),
            )
        )

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._ensure_run_started(None)
        self.emit(
            RunFinished(
                run_id=self._run_id,
                finished_at=datetime.now(UTC).isoformat(),
                duration=time.monotonic() - self._t0,
                counts=dict(self._counts),
            )
        )
        self._out.close()
