"""The indicators HTML report: one chart per indicator (periods on x, the value and the target line) for the grappe
and for each ESSMS, drawn as static SVG on the server side: readable without JavaScript, self-contained (no network
at view time), French first.

Why not a charting library: pygal (the static-SVG one) cannot draw a reference line over a bar chart and always
embeds a ``<script>`` block; Chart.js, plotly and Vega need JavaScript in the page; matplotlib is a large dependency
for seven bar charts. The axis is what such a library would compute: it extends beyond 100 % when a rate does
(225,8 % is drawn as 225,8 %, not cut at 100), and a count axis has integer ticks only (:func:`axis`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from harness.analytics.forecast import FundingForecast
from harness.analytics.indicators import (
    INDICATORS,
    READINGS,
    STATUS_LABELS,
    TARGET_LOST,
    Figure,
    IndicatorReport,
    Kind,
    TargetStatus,
    format_value,
)

TEMPLATES_DIR = Path(__file__).parent / "templates"
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 18, 44
COLORS = {
    TargetStatus.MET: "#1a7f37",
    TargetStatus.NOT_MET: "#c62828",
    TargetStatus.NO_TARGET: "#1f5fa8",
    TargetStatus.TARGET_MISSING: "#1f5fa8",
    TargetStatus.NOT_COMPUTABLE: "#8a8a8a",
}


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def axis(highest: float, kind: Kind) -> tuple[float, ...]:
    """The ticks of the value axis, from 0 to a top at or above ``highest`` (and at least 100 % for a rate), with
    a « nice » step (1, 2, 2.5 or 5 × 10ⁿ) giving at most five intervals; a count's step is a whole number, so
    that its ticks are 0, 1, 2… never 0.6 or 1.1."""
    highest = max(highest, 100.0 if kind is Kind.RATE else 1.0)
    rough = highest / 5
    magnitude = 10 ** math.floor(math.log10(rough))
    factors = (1, 2, 5, 10) if kind is Kind.COUNT else (1, 2, 2.5, 5, 10)
    step = next(f * magnitude for f in factors if f * magnitude >= rough)
    if kind is Kind.COUNT:
        step = max(1, round(step))
    intervals = math.ceil(highest / step - 1e-9)
    return tuple(step * i for i in range(intervals + 1))


def svg_chart(series: list[Figure], *, title: str, kind: Kind, target: float | None) -> Markup:
    """A bar chart of ``series`` (one bar per period) with a dashed target line; text labels on every bar; the
    axis (:func:`axis`) reaches the highest bar and the target, whatever they are."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [f.value for f in series]
    ticks = axis(max([v or 0 for v in values] + [target or 0]), kind)
    top = ticks[-1]
    n = max(len(series), 1)
    slot = plot_w / n
    bar = min(48.0, slot * 0.6)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for value in ticks:
        y = TOP + plot_h - plot_h * value / top
        label = f"{_number(value)} %" if kind is Kind.RATE else _number(value)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#555">{escape(label)}</text>'
        )
    for i, figure in enumerate(series):
        x = LEFT + slot * i + (slot - bar) / 2
        value = figure.value
        color = COLORS[figure.status] if figure.observed else COLORS[TargetStatus.NOT_COMPUTABLE]
        label_x = LEFT + slot * i + slot / 2
        if value is not None:
            h = plot_h * value / top
            y = TOP + plot_h - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(figure.period.label)}: {escape(format_value(figure))}</title></rect>"
            )
            parts.append(
                f'<text x="{label_x:.1f}" y="{y - 4:.1f}" font-size="11" text-anchor="middle" fill="#222">'
                f"{escape(format_value(figure))}</text>"
            )
        else:
            parts.append(
                f'<text x="{label_x:.1f}" y="{TOP + plot_h - 6:.1f}" font-size="11" text-anchor="middle" '
                f'fill="#8a8a8a">—</text>'
            )
        parts.append(
            f'<text x="{label_x:.1f}" y="{TOP + plot_h + 16:.1f}" font-size="11" text-anchor="middle" '
            f'fill="#333">{escape(figure.period.label)}</text>'
        )
    if target is not None:
        y = TOP + plot_h - plot_h * target / top
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#b26a00" '
            f'stroke-width="2" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{LEFT + plot_w - 4}" y="{y - 5:.1f}" font-size="11" text-anchor="end" fill="#b26a00">'
            f"cible {escape(_number(target))}{' %' if kind is Kind.RATE else ''}</text>"
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle" fill="#555">'
        "période de mesure / measurement period</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class ChartBlock:
    key: str
    label: str
    label_en: str
    target: float | None
    observed: bool
    svg: Markup
    series: list[Figure]
    quote: str = ""
    section: str = ""


@dataclass(frozen=True)
class EssmsCharts:
    """The charts of one ESSMS (FINESS, name): one per indicator, like the grappe's."""

    finess: str
    name: str
    charts: list[ChartBlock]


def _charts(report: IndicatorReport, essms: str | None, scope: str) -> list[ChartBlock]:
    charts = []
    for d in INDICATORS:
        series = report.series(d.key, essms)
        target = report.targets.get(d.key)
        charts.append(
            ChartBlock(
                d.key if essms is None else f"{d.key}-{essms}",
                d.label,
                d.label_en,
                target,
                report.observed.get(d.key, False),
                svg_chart(series, title=f"{d.label} — {scope}", kind=d.kind, target=target),
                series,
                d.quote,
                d.section,
            )
        )
    return charts


def render_indicators_html(
    report: IndicatorReport,
    *,
    names: dict[str, str] | None = None,
    title: str = "",
    journal_url: str = "",
    forecast: FundingForecast | None = None,
) -> bytes:
    names = names or {}
    charts = _charts(report, None, "grappe")
    per_essms = [EssmsCharts(e, names.get(e, e), _charts(report, e, f"{names.get(e, e)} ({e})")) for e in report.essms]
    latest = report.periods[-1] if report.periods else None
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("indicators.html.j2").render(
        report=report,
        charts=charts,
        per_essms=per_essms,
        names=names,
        title=title or "Indicateurs d'usage ESMS numérique",
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        journal_url=journal_url,
        latest=latest,
        indicators=INDICATORS,
        fmt=format_value,
        status_labels=STATUS_LABELS,
        forecast=forecast,
        TargetStatus=TargetStatus,
        readings=READINGS,
        target_lost=TARGET_LOST,
    )
    return html.encode("utf-8")
