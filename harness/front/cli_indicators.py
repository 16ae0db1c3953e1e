"""``socle-harness indicators``, ``forecast`` and ``simulate``: the usage indicators from the command line."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness.analytics import forecast as funding_rules
from harness.analytics.forecast import FundingForecast, Grappe, forecast, load_grappe
from harness.analytics.indicators import (
    INDICATORS,
    READINGS,
    STATUS_LABELS,
    TARGET_LOST,
    IndicatorEngine,
    IndicatorReport,
    Kind,
    Period,
    Scope,
    TargetStatus,
    campaign_periods,
    format_value,
    parse_month,
    parse_reading_options,
    parse_target_options,
    period_ending,
    resolve_readings,
)
from harness.analytics.indicators_pg import indicator_engine
from harness.core.config import HarnessConfig, load_config
from harness.core.journal import open_journal
from harness.core.messages import bilingual
from harness.core.sessions import UnknownSessionError, require_known
from harness.front.terminal import console, err

UNOBSERVED_NOTE = "pas encore de simulateur ou aucun échange observé / no simulator yet or nothing observed"
SIMULATION_DIR = Path("simulation")  # simulate --out's default: where indicators / forecast look for its journal
READINGS_HELP = bilingual(
    "Lecture NOM=CHOIX (répétable), défaut = le texte de l'appel à projets : " + " ; ".join(r.help() for r in READINGS),
    "reading NAME=CHOICE (repeatable), default = the call's literal wording.",
)
FORECAST_READINGS_HELP = bilingual(
    "Lecture NOM=CHOIX (répétable), défaut = le texte : "
    + " ; ".join(r.help() for r in funding_rules.READINGS)
    + " ; et celles d'indicators",
    "reading NAME=CHOICE (repeatable), default = the literal wording; and those of indicators.",
)


def _load(config_path: Path | None) -> HarnessConfig:
    from harness.sut.plugins import check_settings  # the service plugins: only when a command runs

    try:
        config = load_config(config_path)
        check_settings(config.settings)
        return config
    except ValueError as exc:
        err().print(f"[red]Configuration invalide / invalid configuration:[/] {exc}")
        raise typer.Exit(2) from exc


def _cell(figure) -> str:  # noqa: ANN001
    text = format_value(figure)
    if figure.project_total is not None:  # « pendant la durée du projet » (003 §6.2) beside the month's count
        text += f" [dim](projet {figure.project_total})[/]"
    if not figure.observed:  # nothing of this service in the journal: no verdict
        return f"[dim]{text} *[/]"
    if figure.status is TargetStatus.MET:
        return f"[green]{text} ✓[/]"
    if figure.status is TargetStatus.NOT_MET:
        return f"[red]{text} ✗[/]"
    return f"[dim]{text}[/]" if figure.status is TargetStatus.NOT_COMPUTABLE else text


def print_report(report: IndicatorReport, names: dict[str, str], out: Console | None = None) -> None:
    """One rich table per period: ESSMS (and the grappe) x the seven indicators, targets marked ✓ / ✗."""
    out = out if out is not None else console()
    for period in report.periods:
        title = f"Indicateurs d'usage — {period.label}" + (" (première mesure, 3 mois)" if period.initial else "")
        table = Table(
            title=title, caption="✓ cible atteinte / target met · ✗ non atteinte / not met · — non calculable"
        )
        table.add_column("ESSMS")
        for d in INDICATORS:
            target = report.targets.get(d.key)
            head = d.label
            if target is None:
                sub = STATUS_LABELS[TargetStatus.TARGET_MISSING if d.key in TARGET_LOST else TargetStatus.NO_TARGET]
            else:
                sub = f"cible {target:g}{' %' if d.kind is Kind.RATE else ''}"
            table.add_column(f"{head}\n[dim]{sub}[/]", justify="right")
        for essms in [*report.essms, None]:
            label = (
                "[bold]Grappe[/]"
                if essms is None
                else f"{names.get(essms, essms)} [dim]{essms if essms in names else ''}[/]"
            )
            table.add_row(
                label,
                *[_cell(report.get(d.key, period, essms)) for d in INDICATORS],
                end_section=essms == report.essms[-1] if report.essms else False,
            )
        out.print(table)
    unobserved = [next(d.label for d in INDICATORS if d.key == k) for k in report.unobserved]
    if unobserved:
        out.print(f"* {', '.join(unobserved)}: {UNOBSERVED_NOTE}")
    print_readings(report, out)


def print_readings(report: IndicatorReport, out: Console | None = None) -> None:
    """The readings in effect, each with the seed's words it reads (and whether it is the default)."""
    out = out if out is not None else console()
    out.print("[bold]Lectures retenues / readings[/] (défaut = le texte de l'appel à projets) :")
    for r in READINGS:
        choice = report.readings.get(r.name, r.default)
        flag = "défaut" if choice == r.default else f"[yellow]option, défaut {r.default}[/]"
        out.print(f"- {r.name} = {choice} ({flag}) : {r.choices[choice]} — {r.section} : {r.quote}")


def print_forecast(result: FundingForecast, out: Console | None = None) -> None:
    """Every amount with its condition and seed section, the balance at risk and the measure that decides it."""
    out = out if out is not None else console()
    table = Table(title=f"Prévision de financement — {result.grappe.name}", caption=result.notes[0])
    table.add_column("Poste / item")
    table.add_column("k€", justify="right")
    table.add_column("Condition")
    table.add_column("Source")
    for line in result.lines:
        label = line.label + (" [dim](maximum)[/]" if line.maximum else "")
        paid = " ; 50 % à la signature, 50 % sur les cibles" if line.on_targets else ""
        table.add_row(label, f"{line.amount:.1f}", line.condition + paid, line.section)
    judged = f"période {result.period or '—'}" + ("" if result.decisive else ", tendance")
    table.add_row(
        "  versé à la signature (50 %)", f"{result.first_half:.1f}", "usage + spécifiques", "AAP 003 §3.1, §5.3"
    )
    table.add_row(
        "  solde conditionné aux cibles (50 %)",
        f"{result.balance:.1f}",
        "cibles d'usage en fin du déploiement",
        "AAP 003 §3.1",
    )
    table.add_row(
        f"[bold]Solde à risque[/] ({judged})",
        f"{result.balance_at_risk:.1f}",
        "une cible de la grappe manquée",
        "AAP 003 §3.1, §6",
    )
    table.add_row(
        "Solde non sécurisé", f"{result.balance_uncertain:.1f}", "cible non mesurée ou non renseignée", "AAP 003 §6.3 B"
    )
    table.add_row("[bold]Total[/]", f"{result.total:.1f}", "", "")
    out.print(table)
    if result.deployment is not None:
        d = result.deployment
        out.print(
            f"Mesure décisive / decisive measure: fin {d.end} (début {d.start}, limite fin {d.limit}, "
            f"{funding_rules.DEPLOYMENT_MONTHS[d.kind]} mois) — {'mesure disponible' if result.decisive else 'pas encore mesurée'}"
        )
    for warning in result.warnings:
        out.print(f"[yellow]⚠ {warning}[/]")
    if result.targets:
        words = {
            "met": "[green]atteinte[/]",
            "not_met": "[red]non atteinte[/]",
            "unmeasured": "[yellow]non mesurée[/]",
            "target_missing": "[yellow]cible non renseignée[/]",
        }
        out.print("Cibles de la grappe: " + "; ".join(f"{k} {words[v]}" for k, v in result.targets.items()))
    missing = [e for e in result.essms if e.missed]
    if missing:
        out.print(
            "ESSMS sous les cibles: "
            + "; ".join(f"{e.name} ({', '.join(e.missed)}, solde {e.balance:.1f} k€)" for e in missing)
        )
    for note in result.notes[1:]:
        out.print(f"[dim]- {note}[/]")


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    raw = url.removeprefix("sqlite:///").split("?")[0]
    return Path(raw) if raw and raw != ":memory:" else None


def find_journal(config: HarnessConfig, explicit: str | None, grappe_file: Path | None) -> tuple[str, Path | None, str]:
    """The journal to read, the grappe file to use and a note for the user.

    ``--journal`` wins. Otherwise the configured journal, unless it does not exist or holds nothing the
    indicators read while a simulation folder does (``simulate``'s ``--out``, default ``simulation/``, or the
    current folder when it holds a simulation's ``journal.sqlite`` and ``grappe.json``): then its journal and
    grappe."""
    if explicit:
        return explicit, grappe_file, ""
    configured = config.journal
    path = _sqlite_path(configured)
    candidates = [
        folder
        for folder in ([grappe_file.parent] if grappe_file else []) + [SIMULATION_DIR, Path(".")]
        if (folder / "journal.sqlite").is_file() and (folder / "grappe.json").is_file()
    ]
    if path is not None and path.is_file() and _has_data(configured):
        return configured, grappe_file, ""
    if not configured.startswith("sqlite:") and _has_data(configured):  # a PostgreSQL journal (shared platform)
        return configured, grappe_file, ""
    if candidates:
        folder = candidates[0]
        url = f"sqlite:///{(folder / 'journal.sqlite').resolve()}"
        note = f"Journal de la simulation / simulation journal: {url}"
        return url, grappe_file or folder / "grappe.json", note
    where = "absent" if path is None or not path.is_file() else "sans échange mesurable"
    raise ValueError(
        f"journal {configured} {where} / configured journal empty; la simulation écrit le sien dans "
        f"<--out>/journal.sqlite (défaut {SIMULATION_DIR / 'journal.sqlite'}) : --journal sqlite:///<dossier>/journal.sqlite"
    )


def _split_readings(items: list[str] | None) -> tuple[dict[str, str], dict[str, str]]:
    """``--lecture`` values split into the indicators' and the forecast's readings (each validated)."""
    parsed = parse_reading_options(items or [])
    ours = {k: v for k, v in parsed.items() if k in funding_rules.READING_BY_NAME}
    theirs = {k: v for k, v in parsed.items() if k not in ours}
    resolve_readings(theirs)
    funding_rules.resolve_readings(ours)
    return theirs, ours


def _has_data(url: str) -> bool:
    store = open_journal(url)
    try:
        return indicator_engine(store).data_span() is not None
    except (ValueError, NotImplementedError):
        return True  # not the engine's to judge here: compute() says why
    finally:
        store.close()


def _periods(
    engine: IndicatorEngine,
    scope: Scope,
    start: str | None,
    month: str | None,
    first: str | None,
    last: str | None,
    grappe: Grappe | None,
) -> tuple[str, list[Period]]:
    span = engine.data_span(scope)
    # the campaign starts at --start, else the grappe's declared start, else the journal's first month (never
    # --from: that only selects which periods are shown)
    campaign = start or (grappe.campaign_start if grappe else None) or (span[0] if span else None)
    if campaign is None:
        raise ValueError("journal vide pour cette sélection / nothing in the journal for this selection; give --start")
    parse_month(campaign)
    if month is not None:
        return campaign, [period_ending(campaign, parse_month(month))]
    until = parse_month(last) if last else (span[1] if span else campaign)
    periods = [p for p in campaign_periods(campaign, until) if first is None or p.end >= parse_month(first)]
    if not periods:
        raise ValueError(
            f"aucune mesure due entre {campaign} et {until}: la première mesure couvre 3 mois "
            f"/ no measure due yet (the first one covers 3 months)"
        )
    return campaign, periods


def _names(config: HarnessConfig, grappe: Grappe | None) -> dict[str, str]:
    names: dict[str, str] = {}
    try:
        from harness.fields.testdata import load_testdata

        names = {e.finess: e.name for e in load_testdata(Path(config.fixtures_dir)).establishments}
    except (OSError, ValueError, KeyError):
        pass
    if grappe is not None:
        names.update(grappe.names)
    return names


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help=bilingual("Fichier de configuration TOML", "TOML config file."))
]
JournalOpt = Annotated[str | None, typer.Option("--journal", help=bilingual("URL du journal", "journal URL."))]
GrappeOpt = Annotated[
    Path | None,
    typer.Option(
        "--grappe", help=bilingual("Composition de la grappe (grappe.json écrit par simulate)", "grappe file.")
    ),
]


#: The indicator commands (``indicators``, ``forecast``, ``simulate``), declared once at module level and added to
#: the ``socle-harness`` application by :func:`register`.
commands = typer.Typer()


@commands.command()
def indicators(
    config_path: ConfigOpt = None,
    journal: JournalOpt = None,
    month: Annotated[
        str | None,
        typer.Option(
            "--month", help=bilingual("La mesure de fin de ce mois", "the measure at the end of this month (YYYY-MM).")
        ),
    ] = None,
    first: Annotated[
        str | None, typer.Option("--from", help=bilingual("Première fin de période", "first period end (YYYY-MM)."))
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help=bilingual("Dernière fin de période", "last period end (YYYY-MM)."))
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help=bilingual(
                "Début de campagne (la première mesure couvre 3 mois)",
                (
                    "campaign start. Défaut : le début déclaré de la grappe (campaign_start), sinon le "
                    "premier mois du journal ; --from ne fait que choisir les périodes affichées."
                ),
            ),
        ),
    ] = None,
    essms: Annotated[
        list[str] | None,
        typer.Option(
            "--essms", help=bilingual("FINESS géographique (répétable)", "establishment FINESS (repeatable).")
        ),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help=bilingual("Seulement cette exécution", "only this run id."))
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session",
            help=bilingual("Seulement les échanges de cette session de test", "only this test session's exchanges."),
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json | csv")] = "table",
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target", help=bilingual("Cible NOM=VALEUR (ex. dossiers_actifs=80, dmp=none)", "target override.")
        ),
    ] = None,
    mssante: Annotated[
        str | None,
        typer.Option(
            "--mssante",
            help=bilingual(
                (
                    "Numérateur du taux MSSanté: 'messages' (instruction nationale, défaut) ou 'personnes' "
                    "(chaque personne une fois)"
                ),
                "MSSanté rate numerator.",
            ),
        ),
    ] = None,
    grappe_file: GrappeOpt = None,
    reading: Annotated[list[str] | None, typer.Option("--lecture", help=READINGS_HELP)] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help=bilingual("Écrire le rapport HTML (graphiques SVG)", "write the HTML report.")),
    ] = None,
    detail: Annotated[
        str | None,
        typer.Option(
            "--detail",
            help=bilingual("Détail des échanges d'un indicateur (avec --month; --essms pour un ESSMS)", "drill-down."),
        ),
    ] = None,
) -> None:
    """Indicateurs d'usage ESMS numérique par ESSMS et pour la grappe / the seven usage indicators.

    Measured over the past month at each month end (the first measure covers 3 months) from the exchanges
    the journal observed and the DUI data received in the TDDUI format. Each figure comes with its numerator,
    denominator and period; --detail lists the journal exchanges behind one. Without --journal, the journal of
    a simulation (simulation/ or the current folder) is used when the configured one is empty. Where the
    call for projects can be read two ways, --lecture chooses; the report lists the readings with the quote.
    """
    if fmt not in {"table", "json", "csv"}:
        err().print("[red]--format doit valoir table, json ou csv / must be table, json or csv[/]")
        raise typer.Exit(2)
    config = _load(config_path)
    try:
        url, grappe_file, found = find_journal(config, journal, grappe_file)
        config = config.with_overrides(journal=url)
        grappe = load_grappe(grappe_file) if grappe_file else None
        targets = {**config.indicator_targets, **parse_target_options(target or [])}
        readings = _split_readings(reading)
        store = open_journal(config.journal)
    except ValueError as exc:
        err().print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    if found:
        err().print(found, soft_wrap=True)
    try:
        require_known(store, session)
        engine = indicator_engine(store, targets, mssante or config.mssante_counting, readings=readings[0])
        scope = Scope(run_id=run_id or (grappe.run_id if grappe else None), essms=tuple(essms or ()), session=session)
        campaign, periods = _periods(engine, scope, start, month, first, last, grappe)
        report = engine.compute(
            periods, scope, grappe=tuple(e.finess for e in grappe.essms) if grappe else (), campaign_start=campaign
        )
        evidence = None
        if detail is not None:
            if len(periods) != 1:
                raise ValueError("--detail demande --month / --detail needs --month")
            evidence = engine.evidence(detail, periods[0], essms[0] if essms else None, scope, campaign_start=campaign)
    except (ValueError, NotImplementedError, UnknownSessionError) as exc:
        err().print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    finally:
        store.close()
    names = _names(config, grappe)
    funding = forecast(grappe, report, readings[1]) if grappe and not essms else None  # for the grappe
    if html is not None:
        from harness.reports.indicators_html import render_indicators_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_bytes(
            render_indicators_html(
                report,
                names=names,
                journal_url=config.journal,
                forecast=funding,
                title=f"Indicateurs d'usage — {grappe.name}" if grappe else "",
            )
        )
    if fmt == "json":
        data = report.to_dict()
        if evidence is not None:
            data["detail"] = evidence.to_dict()
        if funding is not None:
            data["forecast"] = funding.to_dict()
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(
            [
                "period_start",
                "period_end",
                "essms",
                "indicator",
                "numerator",
                "denominator",
                "value",
                "unit",
                "target",
                "status",
                "observed",
                "project_total",
            ]
        )
        for f in report.figures:
            writer.writerow(
                [
                    f.period.start,
                    f.period.end,
                    f.essms or "grappe",
                    f.indicator,
                    f.numerator,
                    "" if f.denominator is None else f.denominator,
                    "" if f.value is None else round(f.value, 4),
                    "%" if f.definition.kind is Kind.RATE else "count",
                    "" if f.target is None else f.target,
                    str(f.status),
                    int(f.observed),
                    "" if f.project_total is None else f.project_total,
                ]
            )
    else:
        print_report(report, names)
        if evidence is not None:
            table = Table(
                title=f"Détail — {evidence.figure.definition.label}, {evidence.figure.period.label}, "
                f"{names.get(evidence.figure.essms or '', evidence.figure.essms or 'grappe')}: "
                f"{evidence.figure.numerator} / {evidence.figure.denominator}"
            )
            for column in ("rôle / role", "personne / person", "échanges du journal / journal exchanges"):
                table.add_column(column)
            for item in evidence.items:
                table.add_row(item.role, item.person or "", ", ".join(item.exchange_ids))
            console().print(table)
            if evidence.truncated:
                console().print("[dim](liste tronquée / truncated)[/]")
        if funding is not None:
            print_forecast(funding)
        if html is not None:
            console().print(f"Rapport HTML / HTML report: {html.resolve()}")


@commands.command("forecast")
def forecast_cmd(
    grappe_file: Annotated[
        Path, typer.Option("--grappe", help=bilingual("Composition de la grappe (JSON)", "grappe file."))
    ],
    config_path: ConfigOpt = None,
    journal: JournalOpt = None,
    month: Annotated[
        str | None,
        typer.Option(
            "--month",
            help=bilingual("Juger le risque sur la mesure de ce mois", "judge the risk on this month's measure."),
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    reading: Annotated[list[str] | None, typer.Option("--lecture", help=FORECAST_READINGS_HELP)] = None,
) -> None:
    """Prévision du financement et du solde à risque / funding forecast and balance at risk (indicative).

    Each amount with its condition and the section of the call for projects it comes from; the balance is
    judged on the measure at the end of the deployment when the journal has it (else on the latest one, as a
    trend); eligibility and deployment-limit warnings."""
    config = _load(config_path)
    try:
        url, _, found = find_journal(config, journal, grappe_file)
        config = config.with_overrides(journal=url)
        grappe = load_grappe(grappe_file)
        readings = _split_readings(reading)
        store = open_journal(config.journal)
    except ValueError as exc:
        err().print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    if found:
        err().print(found, soft_wrap=True)
    try:
        engine = indicator_engine(store, config.indicator_targets, config.mssante_counting, readings=readings[0])
        scope = Scope(run_id=grappe.run_id)
        try:
            campaign, periods = _periods(engine, scope, None, month, None, None, grappe)
            plan = funding_rules.deployment(grappe, funding_rules.resolve_readings(readings[1]), periods[-1].end)
            judged = {periods[-1]}
            if plan is not None and plan.end <= periods[-1].end:  # the decisive measure is due: judge on it
                judged.add(period_ending(campaign, plan.end))
            report: IndicatorReport | None = engine.compute(
                sorted(judged), scope, tuple(e.finess for e in grappe.essms), campaign_start=campaign
            )
        except ValueError:
            report = None  # nothing measured yet: amounts only
    finally:
        store.close()
    try:
        result = forecast(grappe, report, readings[1])
    except ValueError as exc:
        err().print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    if fmt == "json":
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        print_forecast(result)


@commands.command()
def simulate(
    config_path: ConfigOpt = None,
    journal: JournalOpt = None,
    essms: Annotated[
        int,
        typer.Option(
            "--essms",
            min=1,
            max=400,
            help=bilingual("Nombre d'ESSMS de la grappe synthétique", "ESSMS in the synthetic grappe."),
        ),
    ] = 20,
    persons: Annotated[
        int,
        typer.Option(
            "--persons", min=1, max=500, help=bilingual("Personnes accompagnées par ESSMS", "persons per ESSMS.")
        ),
    ] = 60,
    months: Annotated[
        int,
        typer.Option(
            "--months",
            min=3,
            max=36,
            help=bilingual(
                "Mois d'activité (la première mesure en couvre 3)", "months of activity (the first reading covers 3)."
            ),
        ),
    ] = 6,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help=bilingual(
                "Graine : même graine, mêmes données et mêmes indicateurs", "seed: same seed, same data and indicators."
            ),
        ),
    ] = 1,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help=bilingual(
                "good (adoption rapide) | lagging (grappe en retard sur les cibles)",
                "good (fast adoption) | lagging (behind the targets).",
            ),
        ),
    ] = "good",
    start: Annotated[
        str, typer.Option("--start", help=bilingual("Premier mois simulé", "first simulated month (YYYY-MM)."))
    ] = "2025-01",
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help=bilingual(
                "Dossier de la simulation (fixtures, journal, grappe.json, rapport)",
                "simulation folder (fixtures, journal, grappe.json, report).",
            ),
        ),
    ] = Path("simulation"),
    sut: Annotated[
        str, typer.Option("--sut", help=bilingual("DUI piloté", "driven DUI: reference ou faulty:<défaut>."))
    ] = "reference",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=32,
            help=bilingual(
                "Actions du DUI en parallèle (MSSanté, DMP, e-Prescription, e-Parcours)", "DUI actions run in parallel."
            ),
        ),
    ] = 8,
) -> None:
    """Simule une grappe et son activité à travers les vrais simulateurs / simulate a grappe's months of activity.

    Creates a synthetic grappe (FINESS, persons with test INS, admissions and exits), drives the DUI through the
    simulators over the network (MSSanté messages, DMP feeds, e-prescription imports, cahier de liaison notes,
    monthly TDDUI exports) at simulated dates, then computes the
    indicators from what the journal observed. Writes <out>/grappe.json and <out>/indicateurs.html.
    """
    from harness.analytics.simulate import SimulationOptions, run_simulation

    if profile not in {"good", "lagging"}:
        err().print("[red]--profile doit valoir good ou lagging[/]")
        raise typer.Exit(2)
    base = _load(config_path)
    options = SimulationOptions(
        essms=essms,
        persons=persons,
        months=months,
        seed=seed,
        profile=profile,
        start=parse_month(start),
        out=out,
        sut=sut,
        workers=workers,
        journal=journal,
    )
    try:
        result = run_simulation(base, options, console())
    except (ValueError, OSError) as exc:
        err().print(f"[red]Simulation impossible:[/] {exc}")
        raise typer.Exit(2) from exc
    print_report(result.report, result.grappe.names)
    print_forecast(forecast(result.grappe, result.report))
    console().print(
        f"Échanges pilotés / driven: {result.messages} messages MSSanté, {result.dmp_feeds} versements DMP, "
        f"{result.prescriptions} imports d'ordonnances, {result.notes} notes du cahier de liaison, "
        f"{result.exports} exports TDDUI ; actions en échec / failed: {result.failed_actions}"
    )
    if result.unobserved:
        console().print(
            f"[yellow]Indicateurs sans aucun échange observé / nothing observed:[/] {', '.join(result.unobserved)}"
        )
    console().print(f"Journal: {result.journal_url}\nGrappe: {result.grappe_path}\nRapport HTML: {result.html_path}")
    console().print(
        f"Rejouer / again: socle-harness indicators --journal {result.journal_url} --grappe {result.grappe_path}"
    )


def register(app: typer.Typer) -> None:
    """Add the indicator commands to the ``socle-harness`` application."""
    app.registered_commands.extend(commands.registered_commands)
