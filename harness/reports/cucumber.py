"""The ``cucumber.json`` writer: the Cucumber JSON report format (``cucumber-json-formatter``, as read by
Jenkins' Cucumber reports, Xray, GitLab and ReportPortal): one feature object per ``.feature`` file, one
element per scenario with its tags and steps; step durations in nanoseconds; statuses ``passed``, ``failed``,
``skipped`` (a harness error is ``failed`` with the error message, as the format has no « error » status).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from harness.core.events import Status
from harness.reports.json_report import ReportWriter, ScenarioRecord

_STATUS = {Status.PASSED: "passed", Status.FAILED: "failed", Status.ERROR: "failed", Status.SKIPPED: "skipped"}


def slug(text: str) -> str:
    """Cucumber's element ids: lower case, hyphens for anything not alphanumeric."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def _element(rec: ScenarioRecord, feature_id: str) -> dict[str, Any]:
    steps = [
        {
            "keyword": f"{step.keyword} ",
            "name": step.text,
            "result": {
                "status": _STATUS[step.status],
                "duration": int(step.duration * 1_000_000_000),
                **({"error_message": step.message} if step.message and step.status is not Status.PASSED else {}),
            },
        }
        for step in rec.steps
    ]
    if rec.status is not Status.PASSED and not any(s["result"]["status"] != "passed" for s in steps):
        # the scenario failed outside any step (setup, « non observé »...): say it on a step of its own
        steps.append(
            {
                "keyword": "* ",
                "name": "verdict",
                "result": {"status": _STATUS[rec.status], "duration": 0, "error_message": rec.message},
            }
        )
    return {
        "id": f"{feature_id};{slug(rec.name)}",
        "keyword": "Scénario",
        "type": "scenario",
        "name": rec.name,
        "description": "",
        "line": 0,
        "tags": [{"name": tag if tag.startswith("@") else f"@{tag}", "line": 0} for tag in rec.tags],
        "steps": steps,
        **({"start_timestamp": rec.started_at} if rec.started_at else {}),
    }


class CucumberWriter(ReportWriter):
    """Writes ``cucumber.json``."""

    filename = "cucumber.json"

    def build(self) -> list[dict[str, Any]]:
        features = []
        for feature, recs in self.by_feature().items():
            feature_id = slug(feature)
            uri = next((r.feature_file for r in recs if r.feature_file), "")
            features.append(
                {
                    "uri": uri,
                    "id": feature_id,
                    "keyword": "Fonctionnalité",
                    "name": feature,
                    "description": "",
                    "line": 1,
                    "tags": [],
                    "elements": [_element(rec, feature_id) for rec in recs],
                }
            )
        return features

    def render(self) -> bytes:
        return json.dumps(self.build(), ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
