"""The typed event stream of a scenario run.

The runner (inside the pytest process) emits these events as JSON lines; the CLI reads them back into the
same dataclasses and hands each one to independent handlers (console progress, JUnit, JSON, HTML writers).
Model: schemathesis's event handlers. Nothing here depends on any other harness module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # a conformance check failed: the DUI (or the exchange) is not conformant
    ERROR = "error"  # the harness or the SUT driver broke: no conformance verdict
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Evidence:
    """Something a step saw, attached to its result: a journal exchange, a message, a finding."""

    label: str
    text: str = ""
    exchange_id: str | None = None
    media_type: str = "text/plain"


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"

    def to_json(self) -> str:
        data = asdict(self)
        data["kind"] = self.kind
        return json.dumps(data, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    run_id: str
    started_at: str
    sut: str
    journal_url: str
    harness_version: str
    scenarios_dir: str
    endpoints: dict[str, dict[str, str]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the run's configuration, for the archive
    scenarios_total: int = 0  # scenarios selected for the run (0 when unknown)


@dataclass(frozen=True)
class ScenarioStarted(Event):
    kind: ClassVar[str] = "scenario_started"
    scenario_id: str
    feature: str
    name: str
    tags: list[str] = field(default_factory=list)
    feature_file: str = ""
    started_at: str = ""  # ISO 8601, UTC


@dataclass(frozen=True)
class StepFinished(Event):
    kind: ClassVar[str] = "step_finished"
    scenario_id: str
    keyword: str
    text: str
    status: Status
    duration: float
    message: str = ""
    evidence: list[Evidence] = field(default_factory=list)


@dataclass(frozen=True)
class ScenarioFinished(Event):
    kind: ClassVar[str] = "scenario_finished"
    scenario_id: str
    feature: str
    name: str
    status: Status
    duration: float
    message: str = ""
    tags: list[str] = field(default_factory=list)
    finished_at: str = ""  # ISO 8601, UTC


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    run_id: str
    finished_at: str
    duration: float
    counts: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False  # the operator stopped the run (Ctrl-C): the reports are partial, « interrompue »


@dataclass(frozen=True)
class OperatorPrompt(Event):
    """Guided recette: the harness asks the person at the DUI to act (``action``) or to say what the DUI showed
    (``question``, with ``choices``), and waits up to ``timeout`` seconds from ``asked_at`` (epoch seconds)."""

    kind: ClassVar[str] = "operator_prompt"
    prompt_id: str
    scenario_id: str
    step: str
    mode: str  # "action" | "question"
    text: str
    timeout: float
    asked_at: float
    choices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OperatorPromptClosed(Event):
    """The prompt is over: the exchange arrived, the operator answered or blocked the step, or time ran out."""

    kind: ClassVar[str] = "operator_prompt_closed"
    prompt_id: str
    outcome: str  # "observed" | "answered" | "blocked" | "timeout"
    comment: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        ScenarioStarted,
        StepFinished,
        ScenarioFinished,
        RunFinished,
        OperatorPrompt,
        OperatorPromptClosed,
    )
}


def event_from_json(line: str) -> Event:
    """Inverse of :meth:`Event.to_json`."""
    data = json.loads(line)
    cls = EVENT_TYPES[data.pop("kind")]
    known = {f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in known}
    if "status" in kwargs:
        kwargs["status"] = Status(kwargs["status"])
    if "evidence" in kwargs:
        kwargs["evidence"] = [Evidence(**e) for e in kwargs["evidence"]]
    return cls(**kwargs)


class EventHandler(Protocol):
    """A consumer of the run's events (a report writer, the console...)."""

    def handle(self, event: Event) -> None: ...

    def close(self) -> None: ...


#: In a parallel run's shared folder (:mod:`harness.runtime.claims`): the selected scenarios' ids in catalogue order.
ORDER_FILE = "order.json"


def read_order(folder: Path) -> list[str]:
    """The scenario order the children of a parallel run collected ([] until one of them has written it)."""
    try:
        return list(json.loads((folder / ORDER_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return []
