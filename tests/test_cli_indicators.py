"""``socle-harness indicators``, ``forecast``, ``simulate``; the funding forecast; the HTML charts."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.analytics.forecast import Grappe, GrappeEssms, ProjectKind, forecast, load_grappe
from harness.analytics.indicators import IndicatorEngine, campaign_periods
from harness.core.journal import Direction, Exchange, Outcome, SQLiteJournal
from harness.fields import dui
from harness.front.cli import app
from harness.reports.indicators_html import render_indicators_html

A, B = "990000016", "990000024"
PERSONS = ["238047505612394", "142036912304505", "229081320107805", "245123306321037"]
runner = CliRunner()


def _fact(kind: dui.FactKind, essms: str, person: str, **fact: str | None) -> Exchange:
    return Exchange(
        service="tddui",
        operation=str(kind),
        direction=Direction.FROM_DUI,
        outcome=Outcome.ACCEPTED,
        essms=essms,
        person=person,
        ts=datetime(2025, 4, 30, 18, tzinfo=UTC),
        details={dui.FACT: {"key": f"{kind}|{person}", **fact}},
    )


@pytest.fixture
def journal_url(tmp_path: Path) -> str:
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    exchanges = [_fact(dui.FactKind.SEJOUR, A, p, start="2024-01-01", date="2024-01-01") for p in PERSONS]
    exchanges.append(_fact(dui.FactKind.SEJOUR, B, "250011305533399", start="2024-01-01", date="2024-01-01"))
    for month, persons in (("01", PERSONS[:1]), ("02", PERSONS[1:2]), ("04", PERSONS[:3])):
        for person in persons:
            exchanges.append(
                Exchange(
                    service="mssante",
                    operation="smtp.submit",
                    direction=Direction.FROM_DUI,
                    outcome=Outcome.ACCEPTED,
                    essms=A,
                    person=person,
                    ts=datetime(2025, int(month), 10, 9, tzinfo=UTC),
                )
            )
    exchanges.append(_fact(dui.FactKind.USAGER, A, PERSONS[0], date="2025-04-02"))
    journal.record_many(exchanges)
    journal.close()
    return f"sqlite:///{tmp_path}/journal.sqlite"


def _grappe_file(tmp_path: Path) -> Path:
    path = tmp_path / "grappe.json"
    path.write_text(
        json.dumps(
            {
                "name": "Grappe test",
                "campaign_start": "2025-01",
                "og_essms": 2,
                "essms": [
                    {"finess": A, "name": "EHPAD Les Tilleuls", "project": "acquisition", "editeur_referenced": True},
                    {"finess": B, "name": "SSIAD du Val", "project": "conformite"},
                ],
            }
        ),
        encoding="utf-8",
    )
    return path


def test_indicators_csv_and_json(journal_url: str, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["indicators", "--journal", journal_url, "--start", "2025-01", "--to", "2025-04", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    rows = {(r["period_end"], r["essms"], r["indicator"]): r for r in csv.DictReader(io.StringIO(result.stdout))}
    first = rows[("2025-03", A, "mssante")]
    assert (first["period_start"], first["numerator"], first["denominator"], first["status"]) == (
        "2025-01",
        "2",
        "4",
        "not_met",
    )
    april = rows[("2025-04", "grappe", "mssante")]
    assert (april["numerator"], april["denominator"], april["value"]) == ("3", "5", "60.0")
    result = runner.invoke(
        app,
        [
            "indicators",
            "--journal",
            journal_url,
            "--month",
            "2025-04",
            "--start",
            "2025-01",
            "--essms",
            A,
            "--format",
            "json",
            "--detail",
            "mssante",
            "--target",
            "mssante=60",
        ],
    )
    data = json.loads(result.stdout)
    assert data["periods"] == ["2025-04"] and data["essms"] == [A] and data["targets"]["mssante"] == 60
    figure = next(f for f in data["figures"] if f["indicator"] == "mssante" and f["essms"] == A)
    assert (figure["numerator"], figure["denominator"], figure["status"]) == (3, 4, "met")
    assert {i["role"] for i in data["detail"]["items"]} == {"denominator", "numerator"}


def test_indicators_table_html_and_forecast(journal_url: str, tmp_path: Path) -> None:
    html = tmp_path / "out" / "indicateurs.html"
    result = runner.invoke(
        app,
        ["indicators", "--journal", journal_url, "--grappe", str(_grappe_file(tmp_path)), "--html", str(html)],
        env={"COLUMNS": "220"},
    )
    assert result.exit_code == 0, result.output
    assert "Indicateurs d'usage — 2025-04" in result.stdout and "première mesure" in result.stdout
    assert "pas encore de simulateur" in result.stdout and "Prévision de financement" in result.stdout
    page = html.read_text(encoding="utf-8")
    assert page.count("<svg") == 7 and "<script" not in page and "cible 70 %" in page
    assert "Prévision indicative, non contractuelle" in page
    result = runner.invoke(
        app, ["forecast", "--journal", journal_url, "--grappe", str(_grappe_file(tmp_path)), "--format", "json"]
    )
    data = json.loads(result.stdout)
    assert data["amounts_keur"]["owner_usage"] == 12.0 and data["amounts_keur"]["balance_at_risk"] == 6.0
    assert data["targets"]["mssante"] == "not_met" and data["targets"]["dmp"] == "unmeasured"


def test_indicators_refuses_bad_input(journal_url: str) -> None:
    assert runner.invoke(app, ["indicators", "--journal", journal_url, "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["indicators", "--journal", journal_url, "--month", "2025-13"]).exit_code == 2
    result = runner.invoke(app, ["indicators", "--journal", journal_url, "--start", "2025-01", "--month", "2025-02"])
    assert result.exit_code == 2 and "3 mois" in result.output
    assert runner.invoke(app, ["indicators", "--journal", journal_url, "--target", "nope=1"]).exit_code == 2


def test_forecast_amounts_by_hand() -> None:
    essms = tuple(
        GrappeEssms(
            f"99{i:07d}",
            f"E{i}",
            project=ProjectKind.ACQUISITION if i % 2 else ProjectKind.CONFORMITE,
            editeur_referenced=i % 3 != 0,
        )
        for i in range(1, 53)
    )
    result = forecast(Grappe("G", essms, og_essms=52))
    first49 = essms[:49]
    owner = sum(7.0 if e.project is ProjectKind.ACQUISITION else 5.0 for e in first49) + 3 * 2.0
    assert result.owner_usage == owner and result.balance == owner / 2 and result.first_half == owner / 2
    editeur = sum((14.5 if e.editeur_referenced else 12.0) for e in first49 if e.project is ProjectKind.ACQUISITION)
    editeur += sum((3.0 if e.editeur_referenced else 1.0) for e in essms[49:] if e.project is ProjectKind.ACQUISITION)
    assert result.editeur == editeur
    assert result.equipment == 0 and result.steering_support == 0 and not result.grappe.small_og
    assert result.balance_at_risk == 0 and result.targets == {}  # nothing measured: amounts only
    small = forecast(Grappe("P", essms[:3]))
    assert (
        small.grappe.small_og
        and small.equipment == 60.0
        and small.procurement_support == 15.0
        and small.steering_support == 100.0
    )


def test_load_grappe_reports_errors(tmp_path: Path) -> None:
    bad = tmp_path / "g.json"
    bad.write_text('{"essms": [{"name": "x"}]}', encoding="utf-8")
    with pytest.raises(ValueError, match="finess"):
        load_grappe(bad)
    assert load_grappe(_grappe_file(tmp_path)).essms[1].project is ProjectKind.CONFORMITE


def test_html_charts_are_static_svg(journal_url: str) -> None:
    url = journal_url.removeprefix("sqlite:///")
    report = IndicatorEngine(SQLiteJournal(url)).compute(campaign_periods("2025-01", "2025-04"))
    page = render_indicators_html(report, names={A: "EHPAD <Les> Tilleuls"}).decode()
    assert page.count("<svg") == 7 and "<script" not in page.lower() and "onload" not in page
    assert "EHPAD &lt;Les&gt; Tilleuls" in page  # escaped
    assert "2025-01..2025-03" in page and "pas de cible" in page


def test_simulate_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = runner.invoke(
            app,
            [
                "simulate",
                "--essms",
                "2",
                "--persons",
                "4",
                "--months",
                "3",
                "--seed",
                "5",
                "--out",
                str(out),
                "--workers",
                "2",
            ],
            env={"COLUMNS": "200"},
        )
        assert result.exit_code == 0, result.output
        assert "versements DMP" in result.stdout and "ne pilote pas encore" not in result.stdout
        grappe = json.loads((out / "grappe.json").read_text(encoding="utf-8"))
        assert len(grappe["essms"]) == 2 and grappe["campaign_start"] == "2025-01"
        assert (out / "indicateurs.html").is_file()
        csv_out = runner.invoke(
            app,
            [
                "indicators",
                "--journal",
                f"sqlite:///{out}/journal.sqlite",
                "--grappe",
                str(out / "grappe.json"),
                "--format",
                "csv",
            ],
        ).stdout
        outputs.append((grappe["essms"], csv_out))
    assert outputs[0] == outputs[1]
    rows = list(csv.DictReader(io.StringIO(outputs[0][1])))
    mss = [r for r in rows if r["indicator"] == "mssante" and r["essms"] == "grappe"]
    assert mss and int(mss[0]["denominator"]) >= 8 and int(mss[0]["numerator"]) > 0  # real exchanges behind it


def test_simulate_drives_dmp_eprescription_and_cahier_de_liaison(tmp_path: Path) -> None:
    """The three indicators come out of real DMP, e-Prescription and e-Parcours exchanges, and match the journal."""
    from rich.console import Console

    from harness.analytics.simulate import SimulationOptions, run_simulation
    from harness.core.config import HarnessConfig
    from harness.core.journal import JournalFilter, open_journal

    options = SimulationOptions(essms=2, persons=4, months=3, seed=2, out=tmp_path / "sim", workers=2)
    result = run_simulation(HarnessConfig(), options, Console(file=io.StringIO()))
    assert result.failed_actions == 0 and result.unobserved == []
    period = result.report.periods[-1]
    store = open_journal(result.journal_url)
    try:

        def accepted(service: str, operation: str | None = None) -> list[Exchange]:
            found = store.query(JournalFilter(service=service, operation=operation, run_id=result.run_id))
            return [x for x in found if x.outcome == Outcome.ACCEPTED and (operation or x.operation.startswith("cdl."))]

        feeds = accepted("dmp", "iti41.provide_and_register")
        imports = accepted("eprescription", "eprescription.import_confirmed")
        notes = accepted("eparcours")
    finally:
        store.close()
    assert (
        len(feeds) == result.dmp_feeds > 0
        and len(imports) == result.prescriptions > 0
        and len(notes) >= result.notes > 0
    )
    dmp = result.report.get("dmp", period)
    assert dmp.observed and dmp.numerator == len({x.person for x in feeds}) > 0 and dmp.denominator >= 8
    assert result.report.get("eprescription", period).numerator == len(imports)
    assert result.report.get("cahier_liaison", period).numerator == len(notes)
    for essms in result.report.essms:  # per ESSMS too: the journal's FINESS of each exchange
        assert result.report.get("eprescription", period, essms).numerator == sum(x.essms == essms for x in imports)
        assert result.report.get("dmp", period, essms).numerator == len({x.person for x in feeds if x.essms == essms})


def test_indicators_mssante_counting_option(journal_url: str) -> None:
    base = [
        "indicators",
        "--journal",
        journal_url,
        "--month",
        "2025-04",
        "--start",
        "2025-01",
        "--essms",
        A,
        "--format",
        "json",
    ]
    for counting in ("messages", "personnes"):
        data = json.loads(runner.invoke(app, [*base, "--mssante", counting]).stdout)
        figure = next(f for f in data["figures"] if f["indicator"] == "mssante" and f["essms"] == A)
        assert (figure["numerator"], figure["denominator"]) == (3, 4)  # one message per person in this journal
    result = runner.invoke(app, [*base, "--mssante", "lettres"])
    assert result.exit_code == 2 and "messages ou personnes" in result.output


def test_simulate_good_profile_meets_the_dmp_target_and_lagging_misses_it(tmp_path: Path) -> None:
    """Seeded: the good grappe feeds enough DMP to meet the 70 % target in a measured month, the lagging one never."""
    from rich.console import Console

    from harness.analytics.indicators import TargetStatus
    from harness.analytics.simulate import SimulationOptions, run_simulation
    from harness.core.config import HarnessConfig

    statuses, fed = {}, {}
    for profile in ("good", "lagging"):
        options = SimulationOptions(
            essms=2, persons=4, months=4, seed=5, profile=profile, out=tmp_path / profile, workers=2
        )
        result = run_simulation(HarnessConfig(), options, Console(file=io.StringIO()))
        assert result.failed_actions == 0
        figures = [result.report.get("dmp", period) for period in result.report.periods]
        assert len(figures) == 2 and all(f.observed and f.denominator and f.target == 70 for f in figures)
        statuses[profile] = [f.status for f in figures]
        fed[profile] = sum(f.numerator for f in figures)
    assert TargetStatus.MET in statuses["good"]
    assert statuses["lagging"] == [TargetStatus.NOT_MET] * 2 and fed["lagging"] > 0  # fed some DMP, too few
