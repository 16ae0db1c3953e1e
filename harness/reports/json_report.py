"""The run's results, collected from the event stream, and the ``results.json`` writer.

:class:`ReportWriter` folds the events into :class:`ScenarioRecord` objects; every report writer
(JSON, JUnit, HTML) is a ``ReportWriter`` that renders that same model to its own file at ``close()``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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

UNFINISHED = bilingual("scénario interrompu", "scenario did not finish")


@dataclass
class ScenarioRecord:
    """One scenario's result and its steps, in the order they ran."""

    id: str
    feature: str
    name: str
    tags: list[str] = field(default_factory=list)
    status: Status = Status.ERROR  # until a ScenarioFinished says otherwise
    duration: float = 0.0
    message: str = UNFINISHED
    feature_file: str = ""
    started_at: str = ""
    finished_at: str = ""
    steps: list[StepFinished] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "feature": self.feature,
            "name": self.name,
            "tags": list(self.tags),
            "status": str(self.status),
            "duration": self.duration,
            "message": self.message,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "steps": [
                {
                    "keyword": s.keyword,
                    "text": s.text,
                    "status": str(s.status),
                    "duration": s.duration,
                    "message": s.message,
                    "evidence": [asdict(e) for e in s.evidence],
                }
                for s in self.steps
            ],
        }


class ReportWriter:
    """Base EventHandler: collects the run, then writes ``report_dir / filename`` at :meth:`close`."""

    filename: ClassVar[str] = ""

    def __init__(self, report_dir: Path) -> None:
        self.report_dir = Path(report_dir)
        self.run: RunStarted | None = None
        self.finished: RunFinished | None = None
        self.scenarios: dict[str, ScenarioRecord] = {}

    @property
    def path(self) -> Path:
        return self.report_dir / self.filename

    def _record(self, scenario_id: str, feature: str = "", name: str = "") -> ScenarioRecord:
        if scenario_id not in self.scenarios:
            self.scenarios[scenario_id] = ScenarioRecord(scenario_id, feature, name or scenario_id)
        return self.scenarios[scenario_id]

    def handle(self, event: Event) -> None:
        match event:
            case RunStarted():
                self.run = event
            case RunFinished():
                self.finished = event
            case ScenarioStarted():
                rec = self._record(event.scenario_id, event.feature, event.name)
                rec.tags, rec.feature_file, rec.started_at = list(event.tags), event.feature_file, event.started_at
            case StepFinished():
                self._record(event.scenario_id).steps.append(event)
            case ScenarioFinished():
                rec = self._record(event.scenario_id)
                rec.feature, rec.name = event.feature, event.name
                rec.status, rec.duration, rec.message = event.status, event.duration, event.message
                rec.tags = list(event.tags) or rec.tags
                rec.finished_at = event.finished_at

    def counts(self) -> dict[str, int]:
        """Totals computed from the scenarios seen (``total`` + one key per :class:`Status`)."""
        counts = {"total": len(self.scenarios)} | {str(s): 0 for s in Status}
        for rec in self.scenarios.values():
            counts[str(rec.status)] += 1
        extra = self.finished.counts if self.finished else {}
        return counts | {k: v for k, v in extra.items() if k not in counts}

    def by_feature(self) -> dict[str, list[ScenarioRecord]]:
        """Scenarios grouped by feature, both in first-seen order."""
        groups: dict[str, list[ScenarioRecord]] = {}
        for rec in self.scenarios.values():
            groups.setdefault(rec.feature, []).append(rec)
        return groups

    def coverage(self) -> dict[str, dict[str, int]]:
        """Verdicts per Gherkin tag (``@mssante``, ``@exigence:...``): the traceability table."""
        table: dict[str, dict[str, int]] = {}
        for rec in self.scenarios.values():
            for tag in rec.tags:
                row = table.setdefault(tag, {"total": 0} | {str(s): 0 for s in Status})
                row["total"] += 1
                row[str(rec.status)] += 1
        return dict(sorted(table.items()))

    def run_info(self) -> dict[str, Any]:
        """The run's metadata (``run`` object of results.json)."""
        r, f = self.run, self.finished
        return {
            "run_id": r.run_id if r else (f.run_id if f else ""),
            "started_at": r.started_at if r else "",
            "finished_at": f.finished_at if f else "",
            "duration": f.duration if f else sum(s.duration for s in self.scenarios.values()),
            "sut": r.sut if r else "",
            "journal_url": r.journal_url if r else "",
            "harness_version": r.harness_version if r else "",
            "endpoints": dict(r.endpoints) if r else {},
            "config": dict(r.config) if r else {},
            "counts": self.counts(),
            "coverage": self.coverage(),
            "interrupted": bool(f and f.interrupted),
        }

    def render(self) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(self.render())


class JsonWriter(ReportWriter):
    """Writes ``results.json``: ``{"run": {...}, "scenarios": [...]}``."""

    filename = "results.json"

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run_info(), "scenarios": [s.to_dict() for s in self.scenarios.values()]}

    def render(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
