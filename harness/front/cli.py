"""The ``socle-harness`` command line."""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import typer.main
from typer.core import TyperGroup

from harness import __version__
from harness.core.config import HarnessConfig, load_config
from harness.core.journal import Outcome
from harness.core.messages import bilingual
from harness.front.listening import Listening
from harness.front.plain_options import PlainOptionsCommand
from harness.front.terminal import console, err, escape

if TYPE_CHECKING:
    from typer._click import Command, Context, Parameter  # typer's own click

    from harness.front.runner import RunResult
    from harness.runtime.observe import ObservationWindow

# Everything else is imported by the command that needs it: ``serve``, ``journal`` or ``list`` never import the
# run machinery (pytest runner, reports, guided recette, observation, the reference DUI).
# Commands declared in their own modules, imported only when one of them runs or the help lists every command:
# usage indicators, funding forecast and grappe simulation (harness/front/cli_indicators.py, the analytics) and
# validate (harness/front/cli_validate.py, every validator). ``serve`` imports neither (issue 18, cold start).
_LAZY_COMMANDS = {
    "indicators": "harness.front.cli_indicators",
    "forecast": "harness.front.cli_indicators",
    "simulate": "harness.front.cli_indicators",
    "validate": "harness.front.cli_validate",
    "session": "harness.front.cli_sessions",
}


class _LazyCommands(TyperGroup):
    """The ``socle-harness`` group: the commands of :data:`_LAZY_COMMANDS` are added when first asked for."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(dict.fromkeys([*super().list_commands(ctx), *_LAZY_COMMANDS]))

    def get_help_option(self, ctx: Context) -> Parameter | None:
        """The group's ``--help``, defaulting to ``False`` rather than ``None``: typer leaves a boolean flag's
        boolean value as it is but converts ``None`` through pydantic, which every command would then import
        (some 0.05 s of ``serve``'s start, issue 18). ``--help`` shows the help whatever its default."""
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in _LAZY_COMMANDS and cmd_name not in self.commands:
            commands = typer.Typer(rich_markup_mode="rich")
            importlib.import_module(_LAZY_COMMANDS[cmd_name]).register(commands)
            for name, command in typer.main.get_group(commands).commands.items():
                self.add_command(command, name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=_LazyCommands,
    name="socle-harness",
    help=(
        "Simulateurs des services socles et recette d'interopérabilité des DUI (ESMS numérique).\n\n"
        "Interoperability simulators and conformance scenarios for French DUI software: MSSanté, DMP, INSi, "
        "Pro Santé Connect, e-Prescription, e-Parcours."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

HostOpt = Annotated[
    str | None, typer.Option("--host", help=bilingual("Adresse d'écoute", "bind address (défaut 127.0.0.1)."))
]
PublicHostOpt = Annotated[
    str | None,
    typer.Option(
        "--public-host",
        help=bilingual(
            (
                "Nom que le DUI utilise pour joindre les simulateurs, publié dans les points d'accès "
                "et le certificat serveur"
            ),
            "the name the DUI uses (never 0.0.0.0).",
        ),
    ),
]
HttpsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--https-port",
        "--port",
        help=bilingual(
            "Port HTTPS des simulateurs HTTP (défaut 8443, 0 = éphémère)",
            "HTTPS port of the HTTP simulators (default 8443, 0 = ephemeral).",
        ),
    ),
]
SmtpPortOpt = Annotated[
    int | None,
    typer.Option("--smtp-port", help=bilingual("Port SMTP MSSanté (défaut 2587)", "MSSanté SMTP port (default 2587).")),
]
ImapPortOpt = Annotated[
    int | None,
    typer.Option("--imap-port", help=bilingual("Port IMAP MSSanté (défaut 2143)", "MSSanté IMAP port (default 2143).")),
]
MllpPortOpt = Annotated[
    int | None,
    typer.Option(
        "--mllp-port",
        help=bilingual("Port MLLP du relais HL7 v2 (défaut 2575)", "HL7 v2 relay MLLP port (default 2575)."),
    ),
]

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=bilingual("Fichier de configuration TOML", "TOML config file (default: ./socle-harness.toml if present)."),
    ),
]
JournalOpt = Annotated[
    str | None,
    typer.Option("--journal", help=bilingual("URL du journal", "journal URL, e.g. sqlite:///.socle/journal.sqlite.")),
]


def _load(config_path: Path | None) -> HarnessConfig:
    try:
        config = load_config(config_path)
        if config.settings:  # without [settings.*] tables there is nothing to check: the service plugins (0.1-0.2 s
            # of imports before `run` can start its child, issue 18) are not imported for nothing
            from harness.sut.plugins import check_settings

            check_settings(config.settings)
        return config
    except ValueError as exc:
        err().print(f"[red]{bilingual('Configuration invalide', 'invalid configuration')}:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _version(value: bool) -> None:
    if value:
        console().print(f"socle-harness {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help=bilingual("Affiche la version", "print the version.")
        ),
    ] = False,
) -> None:
    """socle-harness."""


_DEFECT_HELP = "see `socle-harness defects`"


@app.command(cls=PlainOptionsCommand)  # plain options without pydantic: the children start sooner (issue 18)
def run(
    config_path: ConfigOpt = None,
    sut: Annotated[
        str | None,
        typer.Option(
            help=f"DUI sous test / system under test: 'reference' (built-in reference DUI), 'manual' (guided recette: a person at the DUI follows the instructions), 'http:<url>' (the DUI's control API, docs/control-api.openapi.json; `socle-harness control-api`), 'observe:<from>/<to>' (judge the journal in a window, see --from/--to) or 'faulty:<defect>[,...]' ({_DEFECT_HELP})."
        ),
    ] = None,
    journal: JournalOpt = None,
    scenarios: Annotated[
        Path | None,
        typer.Option(
            help=bilingual(
                "Dossier des fichiers .feature", "folder of .feature files (default: the built-in catalogue)."
            )
        ),
    ] = None,
    reports: Annotated[
        Path | None,
        typer.Option(
            help=bilingual(
                "Dossier des rapports", "report folder (junit.xml, results.json, report.html, cucumber.json)."
            )
        ),
    ] = None,
    select: Annotated[
        str | None,
        typer.Option("-k", help=bilingual("Sélection de scénarios (expression pytest -k)", "scenario selection.")),
    ] = None,
    tags: Annotated[
        str | None,
        typer.Option(
            "--tags",
            "-t",
            help=bilingual("Sélection par étiquettes Gherkin", "tag expression, e.g. 'mssante and not lent'."),
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(
            "--titre",
            "--title",
            help=bilingual(
                "Jouer les scénarios dont le titre contient ce texte (sans casse ni accents)", "select by title."
            ),
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help=bilingual("Afficher chaque étape", "show every step."))
    ] = False,
    step_timeout: Annotated[
        float | None,
        typer.Option(
            help=bilingual(
                (
                    "Attente maximale d'un échange déclenché par une personne ou un DUI externe, en "
                    "secondes (défaut 10, 300 en recette guidée)"
                ),
                "how long a step waits for an exchange.",
            )
        ),
    ] = None,
    host: HostOpt = None,
    public_host: PublicHostOpt = None,
    https_port: HttpsPortOpt = None,
    smtp_port: SmtpPortOpt = None,
    imap_port: ImapPortOpt = None,
    mllp_port: MllpPortOpt = None,
    jobs: Annotated[
        str,
        typer.Option(
            "--jobs",
            "-j",
            help=bilingual(
                (
                    "Nombre de processus qui se partagent les scénarios, chacun avec ses simulateurs et son DUI "
                    "de référence : auto (défaut : 2 avec le DUI de référence ou faulty: sur des ports "
                    "éphémères et au moins 2 cœurs, sinon 1 ; avec une sélection, le second ne démarre que si elle "
                    "compte au moins 20 scénarios) ou un nombre ; 1 avec un DUI externe, la recette guidée ou le "
                    "mode observation"
                ),
                "processes sharing the scenarios (auto | N).",
            ),
        ),
    ] = "auto",
    keep_open: Annotated[
        bool,
        typer.Option(
            "--keep-open",
            help=bilingual(
                (
                    "Recette guidée : la page reste ouverte après la fin (résumé, rapport) jusqu'à « "
                    "Fermer la recette » ou Ctrl-C, même hors d'un terminal (dans un terminal, c'est "
                    "toujours le cas)"
                ),
                "guided mode: keep the page open at the end.",
            ),
        ),
    ] = False,
    guide_port: Annotated[
        int,
        typer.Option(
            help=bilingual("Recette guidée: port de la page web locale (0 = éphémère)", "guided mode web page port.")
        ),
    ] = 0,
    observe_from: Annotated[
        str | None,
        typer.Option(
            "--from",
            help=bilingual(
                (
                    "Mode observation: début de la fenêtre du journal à juger (ISO 8601, heure de Paris si "
                    "sans fuseau), avec --to"
                ),
                "observe-only mode: window start.",
            ),
        ),
    ] = None,
    observe_to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help=bilingual(
                "Mode observation: fin de la fenêtre (exclue)", "observe-only mode: window end (exclusive)."
            ),
        ),
    ] = None,
    retry_rule: Annotated[
        str | None,
        typer.Option(
            "--relance",
            help=bilingual(
                (
                    "Mode observation: un refus suivi d'une relance acceptée fait « avertissement » "
                    "(défaut : le scénario réussit, le refus est montré) ou « echec »"
                ),
                "observe-only mode: retry rule (observe_retry).",
            ),
        ),
    ] = None,
) -> None:
    """Exécute le catalogue de scénarios Gherkin contre le DUI / run the Gherkin scenario catalogue against the DUI.

    Starts the simulators on ephemeral ports, drives the DUI under test, judges every exchange recorded in the
    journal, prints progress and a summary, and writes reports/junit.xml, reports/results.json and
    reports/report.html. Exits 1 if any scenario fails or errors.

    Observe-only mode (--from/--to, or --sut observe:<from>/<to>): the DUI worked on its own against
    `socle-harness serve`; the scenarios tagged @observable judge what the journal (--journal) recorded in the
    window; a scenario whose exchange is absent is skipped as « non observé », never passed. Exchanges of harness
    runs are set aside and counted, refusals no scenario can be tied to are listed as « refus non attribuable ».
    Exits 4 (« rien d'observé ») when no scenario passed and none failed; local times the daylight-saving
    changes make ambiguous or non-existent need an explicit offset (exit 2).
    """
    from harness.front.console import ConsoleReporter
    from harness.front.preflight import (
        EXIT_UNREACHABLE,
        EXIT_USAGE,
        PreflightError,
        check_http_sut,
        check_journal,
        check_sut,
        check_writable_dir,
        parallel_jobs,
        spread_from,
    )
    from harness.front.runner import run_catalogue
    from harness.reports import writers_for
    from harness.runtime.selection import TagExpression, TagExpressionError

    if (observe_from is None) != (observe_to is None):
        err().print(
            "[red]--from et --to vont ensemble / --from and --to go together[/] (ex. --from 2026-11-23T08:00 --to 2026-11-23T18:00)"
        )
        raise typer.Exit(2)
    if observe_from is not None:
        if sut is not None:
            err().print("[red]--from/--to (mode observation) remplacent --sut / replace --sut[/]")
            raise typer.Exit(2)
        sut = f"observe:{observe_from}/{observe_to}"
    config = _load(config_path).with_overrides(
        sut=sut,
        journal=journal,
        scenarios_dir=scenarios,
        reports_dir=reports,
        step_timeout=step_timeout,
        observe_retry=retry_rule,
    )
    # guided recette: the DUI is configured once, so the simulators take the stable ports (as serve does);
    # automated runs keep ephemeral ports unless told otherwise, so that parallel runs never collide
    listening = Listening(host, public_host, https_port, smtp_port, imap_port, mllp_port, stable=config.sut == "manual")
    config, notices = listening.apply(config)
    for notice in notices:
        err().print(f"[yellow]{escape(notice)}[/]")
    try:
        if tags:
            TagExpression.parse(tags)
        check_sut(config.sut)
        processes = parallel_jobs(config, jobs)
        check_writable_dir(Path(config.reports_dir), "rapports / reports")
        check_writable_dir(Path(config.run_dir), "dossier de travail / run folder")
        check_journal(config.journal)
        check_http_sut(config.sut)
    except (PreflightError, TagExpressionError) as exc:
        err().print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(getattr(exc, "exit_code", EXIT_USAGE)) from exc
    window: ObservationWindow | None = None
    if config.sut.startswith("observe"):
        from harness.runtime.drivers import make_driver  # the drivers and observation: observe-only mode only
        from harness.runtime.observe import check_retry_rule

        try:
            window = getattr(make_driver(config.sut), "window", None)
            check_retry_rule(config.observe_retry)
        except ValueError as exc:
            err().print(f"[red]{exc}[/]")
            raise typer.Exit(2) from exc
        console().print(
            "Mode observation: seuls les scénarios @observable sont joués sur le journal "
            f"{config.journal} / observe-only mode: @observable scenarios only."
        )
    if not Path(config.scenarios_dir).is_dir():
        err().print(f"[red]Dossier de scénarios introuvable / scenarios folder not found:[/] {config.scenarios_dir}")
        raise typer.Exit(2)
    handlers: list = [ConsoleReporter(console(), verbose=verbose), *writers_for(Path(config.reports_dir))]
    if config.sut == "manual":
        if step_timeout is None and config.step_timeout == HarnessConfig.step_timeout:
            config = config.with_overrides(step_timeout=300.0)
        result = _run_guided(
            config, handlers, config_path, select, tags, guide_port, title, keep_open or sys.stdin.isatty()
        )
    else:
        with console().status(
            "Démarrage des simulateurs et exécution des scénarios… / starting simulators and running scenarios…",
            spinner="dots",
        ):
            result = run_catalogue(
                config,
                handlers,
                config_file=config_path,
                select=select,
                tags=tags,
                title=title,
                jobs=processes,
                spread_from=spread_from(jobs, processes, select, tags, title),
            )
    for handler in handlers:
        handler.close()
    if result.interrupted:
        err().print(
            "[yellow]Exécution interrompue[/] / interrupted: rapports partiels écrits, marqués « interrompue »."
        )
        raise typer.Exit(130)
    console().print(
        f"Rapports / reports: {Path(config.reports_dir).resolve()}/{{junit.xml, results.json, report.html, cucumber.json}}"
    )
    if not result.counts and result.exit_code != 0:
        err().print(
            f"[red]L'exécution n'a pas pu aboutir / the run could not complete[/] (pytest exit {result.exit_code}); "
            f"log: {', '.join(str(path) for path in result.log_paths or [result.log_path])}"
        )
        raise typer.Exit(EXIT_UNREACHABLE)
    if result.exit_code == 5 or not result.scenarios:
        err().print("[yellow]Aucun scénario sélectionné / no scenario selected.[/]")
        raise typer.Exit(5)
    if window is not None:
        _observation_summary(config, window, result)
    raise typer.Exit(0 if result.ok else 1)


def _observation_summary(config: HarnessConfig, window: ObservationWindow, result: RunResult) -> None:
    """Beside the verdicts (console and reports/observation.json): what the window held, the harness runs set
    aside, the refusals no scenario can be tied to; « rien d'observé » (exit 4) when no scenario passed and none
    failed."""
    from harness.core.events import Status
    from harness.core.journal import open_journal
    from harness.runtime.observe import EXIT_NOTHING_OBSERVED, RETRY_RULES, survey

    journal = open_journal(config.journal)
    try:
        found = survey(journal, window)
    finally:
        journal.close()
    console().print(
        f"Mode observation — règle de relance « {config.observe_retry} » : {RETRY_RULES[config.observe_retry]}"
    )
    report = {"retry_rule": config.observe_retry, **found.to_dict()}
    path = Path(config.reports_dir) / "observation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    for line in found.lines():
        console().print(("[yellow]" if line.startswith("refus") else "") + escape(line), soft_wrap=True)
    passed = sum(1 for s in result.scenarios if s.status is Status.PASSED)
    if passed == 0 and result.ok:
        err().print(
            "[yellow]Rien d'observé[/] / nothing observed: aucun scénario réussi ni échoué dans la fenêtre "
            f"{window.describe()} (code de sortie {EXIT_NOTHING_OBSERVED})"
        )
        raise typer.Exit(EXIT_NOTHING_OBSERVED)


def _run_guided(
    config: HarnessConfig,
    handlers: list,
    config_path: Path | None,
    select: str | None,
    tags: str | None,
    guide_port: int,
    title: str | None = None,
    keep_open: bool = False,
) -> RunResult:
    """Guided recette: the terminal and a local web page tell the operator what to do in the DUI."""
    from rich.panel import Panel

    from harness.front.preflight import EXIT_USAGE
    from harness.front.runner import run_catalogue
    from harness.runtime.guided import ReplyBox
    from harness.runtime.guided_ui import GuidedConsole, GuidedState, GuidedWebServer, connection_for

    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    box = ReplyBox(run_dir / f"operator-{uuid.uuid4().hex[:8]}.jsonl")
    state = GuidedState(box, connection=connection_for(config), report=Path(config.reports_dir) / "report.html")
    try:
        web = GuidedWebServer(state, guide_port)
    except OSError as exc:
        err().print(f"[red]Port de la page guidée indisponible / guide page port unavailable[/] ({guide_port}): {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    url = web.start()
    console().print(
        Panel(
            f"Recette guidée : suivez les instructions ici ou sur [bold]{url}[/] (page locale).\n"
            f"Chaque étape attend l'échange jusqu'à {config.step_timeout:.0f} s. Entrée = fait, o/n = réponses, "
            "b <commentaire> = bloquer l'étape.",
            title="socle-harness — recette guidée / guided acceptance test",
        )
    )
    try:
        result = run_catalogue(
            config,
            [state, GuidedConsole(state, console()), *handlers],
            config_file=config_path,
            select=select,
            tags=tags,
            title=title,
            operator_replies=box.path,
        )
        for handler in handlers:  # the report exists before the page links it
            handler.close()
        handlers.clear()
        state.report_ready = True
        if keep_open and not result.interrupted:
            console().print(
                f"La page {url} reste ouverte : résumé et rapport. « Fermer la recette » ou Ctrl-C pour finir / "
                "the page stays open until closed or Ctrl-C."
            )
            with contextlib.suppress(KeyboardInterrupt):
                state.closed.wait()
        return result
    finally:
        web.stop()


@app.command(cls=PlainOptionsCommand)  # its usual options are read without pydantic (issue 18, cold start)
def serve(
    config_path: ConfigOpt = None,
    journal: JournalOpt = None,
    host: HostOpt = None,
    public_host: PublicHostOpt = None,
    port: HttpsPortOpt = None,
    smtp_port: SmtpPortOpt = None,
    imap_port: ImapPortOpt = None,
    mllp_port: MllpPortOpt = None,
    ephemeral: Annotated[
        bool,
        typer.Option(help=bilingual("Tous les ports éphémères", "every port ephemeral (parallel runs never collide).")),
    ] = False,
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service", "-s", help=bilingual("Ne démarrer que ces simulateurs", "only these simulators (repeatable).")
        ),
    ] = None,
    endpoints_file: Annotated[
        Path | None,
        typer.Option(help=bilingual("Écrire les points d'accès en JSON", "write the endpoints as JSON to this file.")),
    ] = None,
    no_tls: Annotated[
        bool,
        typer.Option("--no-tls", help=bilingual("HTTP en clair (déconseillé)", "plain HTTP for the HTTP simulators.")),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help=bilingual(
                (
                    "Nombre de processus sur les mêmes ports (SO_REUSEPORT, Linux) ; au-delà de 1, journal "
                    "PostgreSQL obligatoire, qui porte aussi l'état partagé des simulateurs (voir README "
                    "« Plateforme partagée »)"
                ),
                "serving processes on the same ports; above 1 a PostgreSQL journal is required, which also holds "
                "the simulators' shared state.",
            ),
        ),
    ] = 1,
    state_snapshot_every: Annotated[
        int | None,
        typer.Option(
            "--state-snapshot-every",
            min=1,
            help=bilingual(
                (
                    "État partagé (journal PostgreSQL) : nombre d'opérations d'un flux entre deux instantanés "
                    "(1000 par défaut, ou state_snapshot_every dans socle-harness.toml) ; moins : démarrages plus "
                    "rapides, instantanés plus fréquents"
                ),
                "shared state (PostgreSQL journal): operations of a stream between two snapshots (default 1000).",
            ),
        ),
    ] = None,
) -> None:
    """Démarre les simulateurs et attend / start the simulators and wait (Ctrl-C to stop).

    Prints the table of endpoints and, with --endpoints-file, writes them as JSON: one object per service with
    its named endpoints. The test PKI's CA is in the run folder: `socle-harness pki` tells how to trust it.
    With --workers N, N processes serve the same ports, supervised (a process that dies is restarted).
    """
    from harness.front.preflight import PreflightError, check_journal, check_writable_dir
    from harness.front.startup import collector_paused
    from harness.host.admin import write_endpoints_file

    listening = Listening(host, public_host, port, smtp_port, imap_port, mllp_port, stable=not ephemeral)
    config, notices = listening.apply(_load(config_path))
    config = config.with_overrides(
        journal=journal,
        services=tuple(service) if service else None,
        tls=False if no_tls else None,
        state_snapshot_every=state_snapshot_every,
    )
    for notice in notices:
        err().print(f"[yellow]{escape(notice)}[/]")
    if workers > 1:
        _check_workers(config, workers)
    try:
        check_journal(config.journal)
        check_writable_dir(Path(config.run_dir), "dossier de travail / run folder")
    except PreflightError as exc:
        err().print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(exc.exit_code) from exc
    if workers > 1:
        raise typer.Exit(_serve_workers(config, workers, endpoints_file))
    with collector_paused():  # the simulators' modules and objects are not walked by the collector (issue 18)
        from harness.runtime.environment import SocleEnvironment

        env = SocleEnvironment(config)
        try:
            endpoints = env.start()
        except OSError as exc:
            err().print(
                f"[red]Impossible de démarrer / cannot start:[/] {exc}. Port déjà utilisé ? Essayez --ephemeral / port in use? try --ephemeral."
            )
            raise typer.Exit(2) from exc
        except ValueError as exc:
            err().print(f"[red]{exc}[/]")
            raise typer.Exit(2) from exc
    # Ctrl-C / SIGTERM stop cleanly from here on: a caller that reads the endpoints file may stop us at once
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # The endpoints file first: it tells a caller that every port answers, and the table below costs tens of
    # milliseconds of Rich layout that the caller need not wait for (issue 18, cold start)
    if endpoints_file is not None:  # with the admin token of the /_admin endpoints: owner-only
        write_endpoints_file(endpoints_file, endpoints, env.admin_token)
    _print_endpoints(endpoints, env.journal.url)
    console().print(f"CA de test / test CA: {env.pki.ca_bundle_path}")
    if endpoints_file is not None:
        console().print(f"Jeton d'administration / admin token: {endpoints_file} (harness.admin_token, mode 0600)")
    console().print("Prêt / ready. Ctrl-C pour arrêter / to stop.")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        console().print("Arrêt des simulateurs / stopping simulators…")
        env.stop()


def _print_endpoints(endpoints: dict[str, dict[str, str]], journal_url: str) -> None:
    from rich.table import Table

    table = Table(title=f"Simulateurs / simulators — journal {journal_url}")
    table.add_column("service")
    table.add_column("point d'accès / endpoint")
    table.add_column("adresse / address")
    for name, named in endpoints.items():
        for key, value in named.items():
            table.add_row(name, key, value)
    console().print(table)


def _check_workers(config: HarnessConfig, workers: int) -> None:
    """``--workers N`` (N > 1) needs a journal several processes write (PostgreSQL) and shared ports."""
    from harness.front.workers import can_share_ports

    if not config.journal.startswith(("postgresql://", "postgres://")):
        err().print(
            f"[red]--workers {workers} demande un journal PostgreSQL partagé :[/] le journal "
            f"{escape(config.journal)} n'est écrit que par un seul processus. Créez une base (`createdb recette`) "
            "et relancez avec --journal postgresql://127.0.0.1:5432/recette, ou retirez --workers / "
            "--workers needs a PostgreSQL journal (--journal postgresql://…)."
        )
        raise typer.Exit(2)
    if not can_share_ports():
        err().print(
            "[red]--workers : ce système ne permet pas à plusieurs processus d'écouter le même port "
            "(SO_REUSEPORT absent) ; lancez un seul processus / SO_REUSEPORT unavailable on this system.[/]"
        )
        raise typer.Exit(2)


def _serve_workers(config: HarnessConfig, count: int, endpoints_file: Path | None) -> int:
    """``serve --workers N``: prepare once what the processes share, start them, supervise until SIGINT / SIGTERM
    (harness.front.workers)."""
    import time

    from harness.core.journal import open_journal
    from harness.front.workers import Supervisor, WorkersError, reserve_ports
    from harness.host.admin import new_admin_token, write_endpoints_file
    from harness.runtime.environment import ensure_pki

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    open_journal(config.journal).close()  # the schema, applied once before the workers open it together
    pki = ensure_pki(config)
    try:
        config, reservations = reserve_ports(config)
    except OSError as exc:
        err().print(
            f"[red]Impossible de réserver les ports / cannot reserve the ports:[/] {exc}. Port déjà utilisé ? "
            "Essayez --ephemeral / port in use? try --ephemeral."
        )
        return 2

    def log(line: str) -> None:
        console().print(f"{time.strftime('%H:%M:%S')} {escape(line)}", soft_wrap=True)

    supervisor = Supervisor(config, count, uuid.uuid4().hex[:12], new_admin_token(), log)
    try:
        try:
            endpoints = supervisor.start(stop)
        except WorkersError as exc:
            err().print(f"[red]{escape(str(exc))}[/]")
            return 2
        if endpoints is None:
            return 0
        _print_endpoints(endpoints, config.journal)
        console().print(f"CA de test / test CA: {pki.ca_bundle_path}")
        for number, worker in sorted(supervisor.workers.items()):
            console().print(f"Processus de service n°{number} : pid {worker.pid} / worker {number}: pid {worker.pid}")
        if endpoints_file is not None:
            write_endpoints_file(endpoints_file, endpoints, supervisor.admin_token)
            console().print(f"Jeton d'administration / admin token: {endpoints_file} (harness.admin_token, mode 0600)")
        console().print(
            f"Prêt / ready : {count} processus sur les mêmes ports, état des simulateurs partagé (README "
            "« Plateforme partagée »). Ctrl-C pour arrêter / to stop."
        )
        supervisor.supervise(stop)
        return 0
    finally:
        console().print("Arrêt des processus de service / stopping workers…")
        supervisor.stop()
        for sock in reservations:
            sock.close()


@app.command("journal")
def journal_cmd(
    config_path: ConfigOpt = None,
    journal: JournalOpt = None,
    service: Annotated[
        str | None,
        typer.Option(help=bilingual("Service (mssante, dmp, insi, psc, eprescription, eparcours)", "service.")),
    ] = None,
    essms: Annotated[
        str | None, typer.Option(help=bilingual("FINESS géographique de l'ESSMS", "establishment FINESS."))
    ] = None,
    person: Annotated[
        str | None, typer.Option(help=bilingual("INS (15 caractères) ou identifiant local", "INS or local id."))
    ] = None,
    month: Annotated[str | None, typer.Option(help=bilingual("Mois", "month, YYYY-MM."))] = None,
    run_id: Annotated[str | None, typer.Option("--run", help=bilingual("Identifiant d'exécution", "run id."))] = None,
    session: Annotated[
        str | None,
        typer.Option("--session", help=bilingual("Session de test (socle-harness session list)", "test session.")),
    ] = None,
    outcome: Annotated[Outcome | None, typer.Option(help=bilingual("accepted", "rejected."))] = None,
    limit: Annotated[int | None, typer.Option(help=bilingual("Nombre maximum de lignes", "maximum rows."))] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json | csv")] = "table",
) -> None:
    """Liste les échanges enregistrés / list the recorded exchanges."""
    from harness.core.journal import JournalFilter, open_journal, response_of
    from harness.core.sessions import UnknownSessionError, require_known
    from harness.front.preflight import PreflightError, check_journal

    if fmt not in {"table", "json", "csv"}:
        err().print("[red]--format doit valoir table, json ou csv / must be table, json or csv[/]")
        raise typer.Exit(2)
    if month is not None and not (len(month) == 7 and month[4] == "-" and month.replace("-", "").isdigit()):
        err().print(f"[red]--month attend AAAA-MM / expects YYYY-MM, reçu / got {month!r}[/]")
        raise typer.Exit(2)
    config = _load(config_path).with_overrides(journal=journal)
    try:
        check_journal(config.journal, create=False)
    except PreflightError as exc:
        err().print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(exc.exit_code) from exc
    try:
        store = open_journal(config.journal)
    except ValueError as exc:
        err().print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    try:
        require_known(store, session)
    except UnknownSessionError as exc:
        store.close()
        err().print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from exc
    try:
        exchanges = store.query(
            JournalFilter(
                service=service,
                essms=essms,
                person=person,
                month=month,
                run_id=run_id,
                session=session,
                outcome=outcome,
                limit=limit,
            )
        )
        rows = [e.summary() for e in exchanges]
        if fmt == "json":  # the answer a simulator sent, kept as evidence by digest, shown in full as before
            for row, exchange in zip(rows, exchanges, strict=True):
                if (answer := response_of(store, exchange)) is not None:
                    row["details"]["response"] = answer.decode("utf-8", "replace")
    finally:
        store.close()
    columns = ["ts", "service", "operation", "outcome", "error_code", "essms", "person", "actor", "run_id", "id"]
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=[*columns, "error_message", "session_id"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    else:
        # the test session, when one of the rows has one (a shared platform: socle-harness session)
        shown = [*columns[:-1], *(["session_id"] if any(r.get("session_id") for r in rows) else []), "error_message"]
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"Journal — {len(rows)} échange(s) / exchange(s)")
        for column in shown:
            table.add_column(
                "motif / reason" if column == "error_message" else column,
                # identifiers are never cut: they fold onto a second line instead
                overflow="fold",
                no_wrap=column in {"essms", "person", "id", "run_id", "session_id"},
            )
        for row in rows:
            table.add_row(*(str(row.get(c) or "") for c in shown))
        Console(highlight=False, width=None if sys.stdout.isatty() else 250).print(table)


@app.command("list")
def list_scenarios(
    config_path: ConfigOpt = None,
    scenarios: Annotated[
        Path | None, typer.Option(help=bilingual("Dossier des fichiers .feature", "folder of .feature files."))
    ] = None,
    tags: Annotated[
        str | None,
        typer.Option("--tags", "-t", help=bilingual("Expression d'étiquettes, exigences comprises", "tag expression.")),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(
            "--titre", "--title", help=bilingual("Texte contenu dans le titre", "text contained in the title.")
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Liste les scénarios, leurs étiquettes et exigences / list scenarios, tags and requirement ids.

    The same selection as `run --tags/--titre`: `socle-harness list --tags "exigence:MSS-ENVOI-PRO"` shows what
    `socle-harness run --tags "exigence:MSS-ENVOI-PRO"` plays.
    """
    from harness.front.preflight import EXIT_USAGE
    from harness.runtime.selection import TagExpression, TagExpressionError, catalogue
    from harness.runtime.selection import select as select_scenarios

    config = _load(config_path).with_overrides(scenarios_dir=scenarios)
    try:
        expression = TagExpression.parse(tags) if tags else None
    except TagExpressionError as exc:
        err().print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(EXIT_USAGE) from exc
    if not Path(config.scenarios_dir).is_dir():
        err().print(f"[red]Dossier de scénarios introuvable / scenarios folder not found:[/] {config.scenarios_dir}")
        raise typer.Exit(EXIT_USAGE)
    found = select_scenarios(catalogue(Path(config.scenarios_dir)), tags=expression, title=title)
    if fmt == "json":
        sys.stdout.write(json.dumps([s.to_dict() for s in found], ensure_ascii=False, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(found)} scénario(s) / scenario(s)")
    for column in ("fichier / file", "scénario / scenario", "exigences / requirements", "étiquettes / tags"):
        table.add_column(column, overflow="fold")
    for s in found:
        others = [t for t in s.tags if not t.startswith("exigence:")]
        table.add_row(s.feature_file, s.title, " ".join(s.requirements), " ".join("@" + t for t in others))
    Console(highlight=False, width=None if sys.stdout.isatty() else 250).print(table)


@app.command()
def defects() -> None:
    """Liste les défauts du DUI défectueux de référence / list the faulty reference DUI's defects (--sut faulty:<nom>)."""
    from rich.table import Table

    from harness.sut.reference import drivers

    defects = drivers().defects  # assembled from the service plugins: loaded only when this command runs
    table = Table(title=f"Défauts du DUI de référence / faulty DUI defects ({len(defects)})")
    table.add_column("nom / name", no_wrap=True)
    table.add_column("ce que fait le DUI / what the DUI does wrong")
    for defect in defects.values():
        table.add_row(defect.name, defect.description)
    console().print(table)


@app.command()
def pki(config_path: ConfigOpt = None) -> None:
    """Crée si besoin la PKI de test et explique comment lui faire confiance / create the test PKI and print how to trust it."""
    from harness.fields.pki import TestPKI

    config = _load(config_path)
    console().print(TestPKI.ensure(Path(config.pki_dir)).trust_instructions(), soft_wrap=True)


@app.command("control-api")
def control_api(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help=bilingual("Écrire dans ce fichier", "write to this file (default: stdout).")
        ),
    ] = None,
) -> None:
    """Contrat de l'API de pilotage qu'expose le DUI sous test (OpenAPI 3.1) / the DUI control API contract (--sut http:<url>)."""
    import json

    from harness.sut.control_api import openapi

    text = json.dumps(openapi(), ensure_ascii=False, indent=1) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console().print(f"contrat écrit dans {output} / contract written")


if __name__ == "__main__":  # pragma: no cover  (last: every command registered first)
    app()
