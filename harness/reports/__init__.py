"""Report writers: independent :class:`~harness.core.events.EventHandler` s, each writing one file at ``close()``.

``junit`` -> ``junit.xml``, ``json`` -> ``results.json``, ``html`` -> ``report.html``, ``cucumber`` ->
``cucumber.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from harness.core.events import EventHandler
from harness.reports.cucumber import CucumberWriter
from harness.reports.html import HtmlWriter
from harness.reports.json_report import JsonWriter, ReportWriter
from harness.reports.junit import JUnitWriter

WRITERS: Mapping[str, Callable[[Path], EventHandler]] = MappingProxyType(
    {"junit": JUnitWriter, "json": JsonWriter, "html": HtmlWriter, "cucumber": CucumberWriter}
)


def writers_for(report_dir: Path, names: Iterable[str] = ("junit", "json", "html", "cucumber")) -> list[EventHandler]:
    """One fresh writer per name, all writing into ``report_dir``; unknown names raise ``ValueError``."""
    names = tuple(names)
    unknown = [n for n in names if n not in WRITERS]
    if unknown:
        raise ValueError(f"unknown report format(s): {', '.join(unknown)} (known: {', '.join(WRITERS)})")
    return [WRITERS[n](Path(report_dir)) for n in names]


__all__ = ["WRITERS", "CucumberWriter", "HtmlWriter", "JUnitWriter", "JsonWriter", "ReportWriter", "writers_for"]
