"""The ``junit.xml`` writer (the JUnit schema Jenkins and GitLab read): one testsuite per feature."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from harness.core.events import Status
from harness.reports.json_report import ReportWriter, ScenarioRecord

# Characters XML 1.0 forbids (control characters from logs, lone surrogates...).
_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _system_out(rec: ScenarioRecord) -> str:
    lines: list[str] = []
    for step in rec.steps:
        lines.append(f"[{step.status}] {step.keyword} {step.text} ({_seconds(step.duration)}s)")
        if step.message:
            lines.append(f"    {step.message}")
        for ev in step.evidence:
            ref = f" (exchange {ev.exchange_id})" if ev.exchange_id else ""
            lines.append(f"    --- {ev.label}{ref} [{ev.media_type}]")
            lines.extend(f"    {line}" for line in ev.text.splitlines())
    return "\n".join(lines)


def _totals(elem: ET.Element, recs: list[ScenarioRecord], time: float) -> None:
    statuses = [r.status for r in recs]
    elem.set("tests", str(len(recs)))
    elem.set("failures", str(statuses.count(Status.FAILED)))
    elem.set("errors", str(statuses.count(Status.ERROR)))
    elem.set("skipped", str(statuses.count(Status.SKIPPED)))
    elem.set("time", _seconds(time))


class JUnitWriter(ReportWriter):
    """Writes ``junit.xml``: a testcase per scenario, step lines and evidence in ``<system-out>``."""

    filename = "junit.xml"

    def build(self) -> ET.Element:
        info = self.run_info()
        root = ET.Element("testsuites", name=_clean(f"socle-harness {info['run_id']}".strip()))
        _totals(root, list(self.scenarios.values()), info["duration"])
        for feature, recs in self.by_feature().items():
            suite = ET.SubElement(root, "testsuite", name=_clean(feature))
            _totals(suite, recs, sum(r.duration for r in recs))
            if info["started_at"]:
                suite.set("timestamp", info["started_at"])
            for rec in recs:
                case = ET.SubElement(suite, "testcase", classname=_clean(feature), name=_clean(rec.name))
                case.set("time", _seconds(rec.duration))
                tag = {Status.FAILED: "failure", Status.ERROR: "error", Status.SKIPPED: "skipped"}.get(rec.status)
                if tag:
                    outcome = ET.SubElement(case, tag, message=_clean(rec.message))
                    if tag != "skipped":
                        outcome.set("type", "ConformanceFailure" if tag == "failure" else "HarnessError")
                        outcome.text = _clean(rec.message)
                if out := _system_out(rec):
                    ET.SubElement(case, "system-out").text = _clean(out)
        return root

    def render(self) -> bytes:
        root = self.build()
        ET.indent(root)
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
