"""Indicator charts (issue 16 item 12): a rate above 100 % is drawn at its value on an axis extended to it, a count
axis has integer ticks only, and each ESSMS has its charts; the page stays one static file without JavaScript."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from harness.analytics.indicators import DEFAULT_TARGETS, INDICATORS, Figure, IndicatorReport, Kind, Period
from harness.reports.indicators_html import BOTTOM, HEIGHT, TOP, axis, render_indicators_html, svg_chart

SVG = "{http://www.w3.org/2000/svg}"
A, B = "750000001", "750000002"
PERIODS = (Period(end="2025-03", start="2025-01"), Period(end="2025-04", start="2025-04"))
PLOT_H = HEIGHT - TOP - BOTTOM


@pytest.mark.parametrize(
    ("highest", "kind", "ticks"),
    [
        (225.8, Kind.RATE, (0, 50, 100, 150, 200, 250)),  # beyond 100 %: the axis goes on
        (101, Kind.RATE, (0, 25, 50, 75, 100, 125)),
        (100, Kind.RATE, (0, 20, 40, 60, 80, 100)),
        (40, Kind.RATE, (0, 20, 40, 60, 80, 100)),  # a rate's axis always shows 100 %
        (0, Kind.COUNT, (0, 1)),
        (2, Kind.COUNT, (0, 1, 2)),  # never 0.6, 1.1…
        (7, Kind.COUNT, (0, 2, 4, 6, 8)),
        (13, Kind.COUNT, (0, 5, 10, 15)),
        (1234, Kind.COUNT, (0, 500, 1000, 1500)),
    ],
)
def test_the_axis_reaches_the_highest_value_with_round_ticks(highest: float, kind: Kind, ticks: tuple) -> None:
    assert axis(highest, kind) == ticks


def _report() -> IndicatorReport:
    """Establishment A sends 2.258 messages per person (225,8 %), B 1 in 4; one and two e-prescriptions."""
    figures = []
    for p in PERIODS:
        for essms, mssante, prescriptions in ((A, (1129, 500), 1), (B, (1, 4), 2), (None, (1130, 504), 3)):
            figures.append(Figure("mssante", p, essms, *mssante, DEFAULT_TARGETS["mssante"], True))
            figures.append(Figure("eprescription", p, essms, prescriptions, None, None, True))
            for d in INDICATORS:
                if d.key not in ("mssante", "eprescription"):
                    figures.append(Figure(d.key, p, essms, 0, 0 if d.kind is Kind.RATE else None, None, False))
    return IndicatorReport(
        "2025-01", PERIODS, (A, B), tuple(figures), {d.key: True for d in INDICATORS}, dict(DEFAULT_TARGETS)
    )


def _chart(svg: str) -> tuple[list[str], list[tuple[float, str]]]:
    """(tick labels, [(bar height, bar label)]) of a chart."""
    root = etree.fromstring(svg.encode())
    texts = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end" and t.get("fill") == "#555"]
    bars = [
        (float(r.get("height")), r.find(f"{SVG}title").text)
        for r in root.iter(f"{SVG}rect")
        if r.get("fill") != "#fafafa"
    ]
    return texts, bars


def test_a_rate_above_100_percent_is_drawn_at_its_value() -> None:
    series = _report().series("mssante", A)
    ticks, bars = _chart(str(svg_chart(series, title="MSSanté — A", kind=Kind.RATE, target=70.0)))
    assert ticks == ["0 %", "50 %", "100 %", "150 %", "200 %", "250 %"]
    assert bars == [
        (round(PLOT_H * 225.8 / 250, 1), "2025-01..2025-03: 225,8 %"),
        (round(PLOT_H * 225.8 / 250, 1), "2025-04: 225,8 %"),
    ]
    assert "cible 70 %" in svg_chart(series, title="t", kind=Kind.RATE, target=70.0)


def test_a_count_axis_has_integer_ticks() -> None:
    series = _report().series("eprescription", B)
    ticks, bars = _chart(str(svg_chart(series, title="e-Prescription — B", kind=Kind.COUNT, target=None)))
    assert ticks == ["0", "1", "2"]
    assert bars == [(float(PLOT_H), "2025-01..2025-03: 2"), (float(PLOT_H), "2025-04: 2")]


def test_each_essms_has_its_charts_in_one_static_page(tmp_path: Path) -> None:
    page = render_indicators_html(_report(), names={A: "EHPAD Les Tilleuls", B: "IME <Soleil>"}).decode()
    assert page.count("<svg") == len(INDICATORS) * 3  # the grappe, A and B
    assert "<script" not in page.lower() and not re.search(r"""(?:src|href)=["']?https?:""", page)
    sections = re.findall(r'<details class="essms" id="essms-(\d+)">\s*<summary>(.*?)</summary>', page)
    assert sections == [(A, f"EHPAD Les Tilleuls <small>{A}</small>"), (B, f"IME &lt;Soleil&gt; <small>{B}</small>")]
    own = page[page.index(f'id="essms-{A}"') : page.index(f'id="essms-{B}"')]
    assert re.findall(r'id="(mssante|eprescription)-(\d+)"', own) == [("mssante", A), ("eprescription", A)]
    assert "MSSanté" in own and own.count(">225,8 %</text>") == 2 and ">250 %</text>" in own
    html = tmp_path / "indicateurs.html"
    html.write_text(page, encoding="utf-8")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium absent (paquet Debian « chromium ») : capture d'écran non faite")
    shot = tmp_path / "indicateurs.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 10_000
