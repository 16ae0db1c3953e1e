"""``socle-harness indicators``, ``forecast``, ``simulate``; the funding forecast; the HTML charts."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.analytics.forecast import Grappe, GrappeEssms, ProjectKind, Territory, forecast, load_grappe
from harness.analytics.indicators import (
    DEFAULT_TARGETS,
    Figure,
    IndicatorEngine,
    IndicatorReport,
    Period,
    campaign_periods,
)
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
    assert page.count("<svg") == 7 * 3 and "<script" not in page and "cible 70 %" in page  # grappe + 2 ESSMS
    assert "Prévision indicative, non contractuelle" in page
    # readings with their quote, the forecast's conditions and sections, the lost target
    assert "Lectures retenues" in page and "sans_fenetre" in page and "ayant au moins un événement d&#39;agenda" in page
    assert "AAP 003 §5.3" in page and "Mesure qui décide du solde" in page and "cible non renseignée" in page
    result = runner.invoke(
        app, ["forecast", "--journal", journal_url, "--grappe", str(_grappe_file(tmp_path)), "--format", "json"]
    )
    data = json.loads(result.stdout)
    # one OG managing 2 ESSMS (small): owner 7 + 5, equipment 2 x 20, steering 100 (every OG small), no
    # procurement support (no market procedure): 152 k€ paid 50/50, the whole balance (76) at risk (MSSanté missed)
    amounts = data["amounts_keur"]
    assert (amounts["owner_usage"], amounts["equipment"], amounts["procurement_support"]) == (12.0, 40.0, 0.0)
    assert (amounts["steering_support"], amounts["balance_on_targets"], amounts["balance_at_risk"]) == (
        100.0,
        76.0,
        76.0,
    )
    assert data["targets"] == {
        "mssante": "not_met",
        "dmp": "unmeasured",
        "dossiers_actifs": "target_missing",
        "projet_personnalise": "not_met",  # one active record (updated in April), no projet personnalisé
        "agenda": "not_met",
    }
    assert [line["section"] for line in data["lines"]] == [
        "AAP 003 §5.1, §5.2, §5.4, §4.2.C",
        "AAP 003 §5.1, §5.4",
        "AAP 003 §5.3, article 004",
        "AAP 003 §5.3",
        "AAP 003 §5.3",
    ]
    assert data["deployment"]["measurement_month"] == "2026-06" and data["decisive_measure"] is False
    assert data["warnings"] == [
        "Grappe de 2 ESSMS : moins que le minimum de 15 en métropole (« au moins 15 ESSMS en métropole, 8 en Corse "
        "et dans les départements ultramarins », article 004 ; « entre 15 et 49 ESSMS », AAP 003 §7) ; l'ARS "
        "« appréciera ce minima » (AAP 003 §4.2.D) : financement non acquis."
    ]
    table = runner.invoke(
        app, ["forecast", "--journal", journal_url, "--grappe", str(_grappe_file(tmp_path))], env={"COLUMNS": "240"}
    )
    assert table.exit_code == 0, table.output
    assert "AAP 003 §5.3" in table.stdout and "Mesure décisive" in table.stdout and "fin 2026-06" in table.stdout


def test_indicators_refuses_bad_input(journal_url: str) -> None:
    assert runner.invoke(app, ["indicators", "--journal", journal_url, "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["indicators", "--journal", journal_url, "--month", "2025-13"]).exit_code == 2
    result = runner.invoke(app, ["indicators", "--journal", journal_url, "--start", "2025-01", "--month", "2025-02"])
    assert result.exit_code == 2 and "3 mois" in result.output
    assert runner.invoke(app, ["indicators", "--journal", journal_url, "--target", "nope=1"]).exit_code == 2


def _essms(n: int, start: int = 1, **kw) -> tuple[GrappeEssms, ...]:  # noqa: ANN003
    return tuple(GrappeEssms(f"99{i:07d}", f"E{i}", **kw) for i in range(start, start + n))


def test_forecast_amounts_by_hand_per_organisme_gestionnaire() -> None:
    """16 ESSMS: OG1 manages 10 ESSMS (small), OG2 30. OG1: 6 acquisitions with a referenced éditeur, one
    compliance upgrade with a referenced éditeur and one without (not eligible, §4.2.C); OG2: 8 acquisitions,
    éditeur not referenced; the market procedure is used."""
    essms = (
        _essms(6, 1, og="OG1")
        + _essms(1, 7, og="OG1", project=ProjectKind.CONFORMITE)
        + _essms(1, 8, og="OG1", project=ProjectKind.CONFORMITE, editeur_referenced=False)
        + _essms(8, 9, og="OG2", editeur_referenced=False)
    )
    grappe = Grappe("G", essms, organismes={"OG1": 10, "OG2": 30}, procedure_marche=True, campaign_start="2025-01")
    result = forecast(grappe)
    assert result.owner_usage == 6 * 7 + 5 + 0 + 8 * 7 == 103
    assert result.editeur == 6 * 14.5 + 8 * 12 == 183
    assert result.equipment == 7 * 20 == 140  # OG1's eligible ESSMS only
    assert (result.procurement_support, result.steering_support) == (15.0, 0.0)  # OG2 is not small
    assert (result.on_targets, result.first_half, result.balance) == (258.0, 129.0, 129.0)
    assert result.total == 441.0 and result.balance_at_risk == 0 and result.targets == {}
    assert result.warnings == ()
    assert [e.owner_note for e in result.essms if e.owner_usage == 0] == [
        "non éligible : mise en conformité sans éditeur référencé Ségur (AAP 003 §4.2.C)"
    ]
    one = forecast(grappe, readings={"pilotage": "une"})  # the 100 k€ as soon as one OG is small
    assert one.steering_support == 100.0 and one.balance == 179.0
    without = forecast(Grappe("G", essms, organismes={"OG1": 10, "OG2": 30}))  # no market procedure
    assert without.procurement_support == 0.0
    assert any(n.startswith("Accompagnement achat (15 k€) non prévu") for n in without.notes)


def test_forecast_never_defaults_the_organisme_gestionnaire_size() -> None:
    result = forecast(Grappe("P", _essms(3)))  # no og / organismes: nothing « petit OG »
    assert (result.equipment, result.procurement_support, result.steering_support) == (0.0, 0.0, 0.0)
    assert (result.owner_usage, result.editeur, result.total) == (21.0, 43.5, 64.5)
    assert any(n.startswith("Taille de l'organisme gestionnaire non renseignée pour 3 ESSMS") for n in result.notes)
    assert result.warnings[0].startswith("Grappe de 3 ESSMS : moins que le minimum de 15 en métropole")
    legacy = forecast(Grappe("P", _essms(3), og_essms=3))  # older files: the whole grappe is one OG of 3 ESSMS
    assert (legacy.equipment, legacy.steering_support) == (60.0, 100.0)


def test_forecast_eligibility_warnings() -> None:
    assert forecast(Grappe("C", _essms(8), territoire=Territory.CORSE_OUTRE_MER)).warnings == ()
    corse = forecast(Grappe("C", _essms(7), territoire=Territory.CORSE_OUTRE_MER)).warnings
    assert len(corse) == 1 and corse[0].startswith(
        "Grappe de 7 ESSMS : moins que le minimum de 8 en Corse et outre-mer"
    )
    assert forecast(Grappe("R", _essms(49))).warnings == ()
    national = forecast(Grappe("N", _essms(50))).warnings
    assert national == (
        "Grappe de 50 ESSMS : « les projets regroupant cinquante ESSMS ou plus sont déposés au niveau national » "
        "(AAP 003 §4.3 B) : hors appel à projets régional.",
    )
    mixed = (*_essms(14), GrappeEssms("990000999", "Doublon", category="BOULANGERIE", dui="X"), *_essms(1, dui="Y"))
    assert forecast(Grappe("M", mixed)).warnings == (
        "FINESS en double dans la grappe : 990000001 (un ESSMS ne compte qu'une fois).",
        "Type(s) d'ESSMS non reconnu(s) comme relevant de l'article L312-1 du CASF : BOULANGERIE (AAP 003 §7 : "
        "« dont le type est mentionné à l'article L312-1 »).",
        "Plusieurs DUI dans la grappe (X, Y) : « avec un même DUI » (AAP 003 §7).",
    )


def test_forecast_from_the_50th_essms() -> None:
    essms = _essms(49, og="OG") + _essms(1, 50, og="OG") + _essms(1, 51, og="OG", editeur_referenced=False)
    essms += _essms(1, 52, og="OG", project=ProjectKind.CONFORMITE)
    result = forecast(Grappe("N", essms, organismes={"OG": 52}))
    assert result.owner_usage == 49 * 7 + 3 * 2 == 349
    assert result.editeur == 49 * 14.5 + 3 + 1 == 714.5


def test_forecast_measurement_date_and_deployment_limit() -> None:
    acquisitions = Grappe("A", _essms(16), campaign_start="2025-01")
    plan = forecast(acquisitions).deployment
    assert (plan.kind, plan.start, plan.limit, plan.end, plan.past_limit) == (
        ProjectKind.ACQUISITION, "2025-01", "2026-06", "2026-06", False,
    )  # fmt: skip
    upgrades = Grappe("C", _essms(16, project=ProjectKind.CONFORMITE), campaign_start="2025-01")
    assert forecast(upgrades).deployment.limit == "2025-09"  # 9 months: January to September
    assert forecast(upgrades, readings={"conformite": "acquisition"}).deployment.limit == "2026-06"
    late = Grappe("L", upgrades.essms, project_start="2025-01", deployment_end="2025-11")
    result = forecast(late)
    assert (result.deployment.end, result.deployment.declared, result.deployment.past_limit) == ("2025-11", True, True)
    assert result.warnings == (
        "Déploiement au-delà de la limite : fin déclarée 2025-11 pour un délai d'au plus 9 mois depuis 2025-01 "
        "(fin 2025-09) (AAP 003 §3.1).",
    )
    # measures after the limit without a declared end: flagged; the measure of September decides
    report = _report(["2025-09", "2025-10"], met=True)
    judged = forecast(upgrades, report)
    assert judged.deployment.past_limit and judged.decisive and judged.period == "2025-09"
    trend = forecast(acquisitions, report)  # June 2026 not measured yet: the latest measure, as a trend
    assert (trend.decisive, trend.period, trend.deployment.past_limit) == (False, "2025-10", False)


def _report(months: list[str], *, met: bool, targets: dict | None = None) -> IndicatorReport:
    """A hand-made report: the grappe's rates at 95 % (met) or 10 % for every period."""
    periods = tuple(Period(end=m, start=m) for m in months)
    chosen = {**DEFAULT_TARGETS, **(targets or {})}
    figures = tuple(
        Figure(key, p, None, 95 if met else 10, 100, chosen[key], True)
        for p in periods
        for key in ("mssante", "dmp", "dossiers_actifs", "projet_personnalise", "agenda")
    )
    return IndicatorReport("2025-01", periods, (), figures, {k: True for k in chosen}, chosen)


def test_forecast_balance_includes_specific_funding_and_missing_target_is_not_secured() -> None:
    grappe = Grappe("S", _essms(16, og="OG1"), organismes={"OG1": 14}, campaign_start="2025-01")
    # 16 x 7 owner + 16 x 20 equipment + 100 steering = 532 paid 50/50: balance 266
    missed = forecast(grappe, _report(["2025-04"], met=False))
    assert (missed.balance, missed.balance_at_risk, missed.balance_uncertain) == (266.0, 266.0, 0.0)
    no_target = forecast(grappe, _report(["2025-04"], met=True))  # « cible non renseignée » for dossiers actifs
    assert no_target.targets["dossiers_actifs"] == "target_missing"
    assert (no_target.balance_at_risk, no_target.balance_uncertain) == (0.0, 266.0)
    configured = forecast(grappe, _report(["2025-04"], met=True, targets={"dossiers_actifs": 80.0}))
    assert configured.targets["dossiers_actifs"] == "met"
    assert (configured.balance_at_risk, configured.balance_uncertain) == (0.0, 0.0)


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
    assert page.count("<svg") == 7 * (1 + len(report.essms)) == 21  # the grappe's charts, then each ESSMS's
    assert "<script" not in page.lower() and "onload" not in page
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


def test_simulate_good_profile_is_a_realistic_grappe() -> None:
    """The synthetic « good » grappe, seeded: a spread of ESSMS (some under the agenda / projet personnalisé
    targets, most above), several organismes gestionnaires of different sizes; same seed, same grappe."""
    from harness.analytics.simulate import GrappeBuilder, SimulationOptions

    def build(seed: int):  # noqa: ANN202
        builder = GrappeBuilder(SimulationOptions(essms=12, persons=30, months=4, seed=seed))
        items = builder.establishments()
        builder.timeline(items)
        return items

    items = build(1)
    agenda = [sum(bool(p.events) for p in i.people) / len(i.people) for i in items]
    plans = [sum(bool(p.plans) for p in i.people) / len(i.people) for i in items]
    assert any(a < 0.9 for a in agenda) and sum(a >= 0.9 for a in agenda) > len(agenda) / 2
    assert any(p < 0.9 for p in plans) and sum(p >= 0.9 for p in plans) > len(plans) / 2
    organismes = {i.establishment.finess_juridique: i.og_size for i in items}
    assert (
        len(organismes) >= 3 and any(s < 15 for s in organismes.values()) and any(s >= 15 for s in organismes.values())
    )
    again = build(1)
    assert [(i.establishment, i.update, i.agenda_reach, i.pp_none) for i in again] == [
        (i.establishment, i.update, i.agenda_reach, i.pp_none) for i in items
    ]
    assert [len(p.events) for i in again for p in i.people] == [len(p.events) for i in items for p in i.people]


def test_indicators_and_forecast_find_the_simulation_journal(journal_url: str, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """``simulate`` then ``indicators`` in the same folder: the simulation's journal and grappe are used."""
    work = tmp_path / "work"
    (work / "simulation").mkdir(parents=True)
    shutil.copy(journal_url.removeprefix("sqlite:///"), work / "simulation" / "journal.sqlite")
    shutil.copy(_grappe_file(tmp_path), work / "simulation" / "grappe.json")
    monkeypatch.chdir(work)
    result = runner.invoke(app, ["indicators", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "Journal de la simulation" in result.stderr and "simulation/journal.sqlite" in result.stderr
    data = json.loads(result.stdout)
    assert data["campaign_start"] == "2025-01" and data["periods"] == ["2025-01..2025-03", "2025-04"]
    assert data["forecast"]["grappe"] == "Grappe test"  # the simulation's grappe.json
    assert not (work / ".socle" / "journal.sqlite").exists()  # the configured journal is not created
    forecast_out = runner.invoke(app, ["forecast", "--grappe", "simulation/grappe.json", "--format", "json"])
    assert forecast_out.exit_code == 0 and json.loads(forecast_out.stdout)["period"] == "2025-04"


def test_indicators_without_journal_says_where_the_simulation_writes(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["indicators"])
    assert result.exit_code == 2
    assert "simulation/journal.sqlite" in result.stderr.replace("\n", "") and "--journal" in result.stderr


def test_observe_window_does_not_move_the_campaign_start(journal_url: str) -> None:
    """``--from`` / ``--to`` only choose the periods shown: the campaign starts at the journal's first month (the
    README's observe-mode example), so the first measure is January-March and April is measured on its own."""
    result = runner.invoke(
        app, ["indicators", "--journal", journal_url, "--from", "2025-04", "--to", "2025-04", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["campaign_start"], data["periods"]) == ("2025-01", ["2025-04"])
    figure = next(f for f in data["figures"] if f["indicator"] == "mssante" and f["essms"] == A)
    assert (figure["numerator"], figure["denominator"]) == (3, 4)


def test_indicators_help_lists_every_reading_with_its_quote() -> None:
    result = runner.invoke(app, ["indicators", "--help"], env={"COLUMNS": "400"})
    text = " ".join(result.stdout.replace("│", " ").split())  # rich wraps the help in a box
    for name, default in (("mssante", "messages"), ("cahier_liaison", "notes"), ("projet_personnalise", "periode"),
                          ("agenda", "sans_fenetre")):  # fmt: skip
        assert f"défaut {default}" in text and f"{name}=" in text
    assert "« nombre de dossiers actifs sur la période de recueil ET ayant au moins un événement d'agenda" in text
    forecast_help = runner.invoke(app, ["forecast", "--help"], env={"COLUMNS": "400"}).stdout
    forecast_help = " ".join(forecast_help.replace("│", " ").split())
    assert "pilotage=toutes | une (défaut toutes" in forecast_help and "conformite=montee_de_version" in forecast_help


def test_indicators_report_lists_readings_and_the_project_total(journal_url: str) -> None:
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
            "--lecture",
            "agenda=periode",
        ],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    assert "agenda = periode (option, défaut sans_fenetre)" in result.stdout
    assert "cahier_liaison = notes (défaut)" in result.stdout and "cible non renseignée" in result.stdout
    data = json.loads(
        runner.invoke(app, ["indicators", "--journal", journal_url, "--month", "2025-04", "--format", "json"]).stdout
    )
    assert [r["choice"] for r in data["readings"]] == ["messages", "notes", "periode", "sans_fenetre"]
    cdl = next(f for f in data["figures"] if f["indicator"] == "cahier_liaison" and f["essms"] is None)
    assert (cdl["numerator"], cdl["project_total"], cdl["section"]) == (
        0, 0, "appel à projets régional ESMS numérique (seed 003) §6.2",
    )  # fmt: skip
    bad = runner.invoke(app, ["indicators", "--journal", journal_url, "--lecture", "agenda=jamais"])
    assert bad.exit_code == 2 and "lecture agenda" in bad.stderr
