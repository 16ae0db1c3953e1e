"""The ``report.html`` writer: a static, self-contained, bilingual (French first) report."""

from __future__ import annotations

from pathlib import Path

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


class HtmlWriter(ReportWriter):
    """Writes ``report.html`` from ``templates/report.html.j2`` (autoescaped, no JavaScript)."""

    filename = "report.html"

    def render(self) -> bytes:
        env = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR),
            autoescape=select_autoescape(["html", "j2"], default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        html = env.get_template("report.html.j2").render(
            run=self.run_info(),
            features=self.by_feature(),
            labels=STATUS_LABELS,
            limit=EVIDENCE_LIMIT,
        )
        return html.encode("utf-8")
