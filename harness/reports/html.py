"""The ``report.html`` writer: a static, self-contained, bilingual (French first) report."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from harness.reports.json_report import ReportWriter

TEMPLATES_DIR = Path(__file__).parent / "templates"
EVIDENCE_LIMIT = 20_000  # characters of evidence text shown per item

STATUS_LABELS: dict[str, tuple[str, str]] = {
    "passed": ("réussi", "passed"),
    "failed": ("échoué", "failed"),
    "error": ("erreur", "error"),
    "skipped": ("ignoré", "skipped"),
}


PARIS = ZoneInfo("Europe/Paris")
#: Gherkin tags that name a socle service (the summary groups scenarios by the first one they carry).
SERVICE_TAGS = ("mssante", "dmp", "insi", "psc", "eprescription", "eparcours", "tddui", "indicateurs")
WARNING_PREFIX = "avertissement"


def paris_time(value: str) -> str:
    """An ISO 8601 instant shown in French local time (Europe/Paris): ``02/12/2026 09:15:03``."""
    if not value:
        return ""
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if instant.tzinfo is None:
        return value
    return instant.astimezone(PARIS).strftime("%d/%m/%Y %H:%M:%S")


def has_warning(record: object) -> bool:
    """A passed scenario that carries warnings (its message lists them)."""
    return str(getattr(record, "status", "")) == "passed" and str(getattr(record, "message", "")).startswith(
        WARNING_PREFIX
    )


class HtmlWriter(ReportWriter):
    """Writes ``report.html`` from ``templates/report.html.j2`` (autoescaped, no JavaScript)."""

    filename = "report.html"

    def services(self) -> dict[str, dict[str, int]]:
        """Verdicts per socle service (the scenario's first service tag; « autre » without one), warnings counted."""
        table: dict[str, dict[str, int]] = {}
        for rec in self.scenarios.values():
            service = next((t for t in rec.tags if t in SERVICE_TAGS), "autre")
            row = table.setdefault(
                service, {"total": 0, "passed": 0, "failed": 0, "error": 0, "skipped": 0, "warnings": 0}
            )
            row["total"] += 1
            row[str(rec.status)] += 1
            row["warnings"] += has_warning(rec)
        order = {name: index for index, name in enumerate((*SERVICE_TAGS, "autre"))}
        return dict(sorted(table.items(), key=lambda item: order.get(item[0], len(order))))

    def render(self) -> bytes:
        env = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR),
            autoescape=select_autoescape(["html", "j2"], default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["paris"] = paris_time
        env.tests["warned"] = has_warning
        html = env.get_template("report.html.j2").render(
            run=self.run_info(),
            features=self.by_feature(),
            labels=STATUS_LABELS,
            limit=EVIDENCE_LIMIT,
            services=self.services(),
            warnings=sum(has_warning(r) for r in self.scenarios.values()),
        )
        return html.encode("utf-8")
