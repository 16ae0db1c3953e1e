"""``socle-harness session create | list | close``: the test sessions of a shared platform (issue 19 item 4,
:mod:`harness.core.sessions`). Sessions live in the journal's database: every command takes ``--journal``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.core.config import HarnessConfig, load_config
from harness.core.journal import Journal, open_journal
from harness.core.messages import bilingual
from harness.core.sessions import (
    Members,
    Session,
    SessionConflictError,
    SessionStore,
    UnknownSessionError,
    new_session,
)
from harness.front.terminal import err

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help=bilingual("Fichier de configuration TOML", "TOML config file."))
]
JournalOpt = Annotated[str | None, typer.Option("--journal", help=bilingual("URL du journal", "journal URL."))]
FormatOpt = Annotated[str, typer.Option("--format", help="table | json")]

sessions = typer.Typer(
    name="session",
    help=bilingual(
        "Sessions de test d'une plateforme partagée : un DUI et ses ESSMS, boîtes aux lettres, patients, clients PSC",
        "test sessions of a shared platform.",
    ),
    no_args_is_help=True,
)


def _store(config_path: Path | None, journal: str | None, *, create: bool = False) -> tuple[Journal, SessionStore]:
    from harness.front.preflight import PreflightError, check_journal

    try:
        config: HarnessConfig = load_config(config_path).with_overrides(journal=journal)
        check_journal(config.journal, create=create)
        store = open_journal(config.journal)
    except (ValueError, PreflightError) as exc:
        err().print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from exc
    if not isinstance(store, SessionStore):  # pragma: no cover - both built-in journals keep sessions
        store.close()
        err().print(f"[red]{bilingual('ce journal ne tient pas de sessions', 'this journal keeps no sessions')}[/]")
        raise typer.Exit(2)
    return store, store


def _print(found: list[Session], fmt: str, title: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps([s.summary() for s in found], ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title=title)
    for column in ("id", "libellé / label", "DUI", "ouverte / created", "fermée / closed", "membres / members"):
        table.add_column(column, overflow="fold")
    for s in found:
        members = s.members
        counts = (
            f"{len(members.essms)} ESSMS, {len(members.mailboxes)} BAL, {len(members.patients)} patients, "
            f"{len(members.clients)} clients PSC"
        )
        table.add_row(
            s.id,
            s.label,
            s.dui,
            s.created.isoformat(timespec="seconds"),
            "" if s.closed is None else s.closed.isoformat(timespec="seconds"),
            counts,
        )
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)


def _check_format(fmt: str) -> None:
    if fmt not in {"table", "json"}:
        err().print("[red]--format doit valoir table ou json / must be table or json[/]")
        raise typer.Exit(2)


@sessions.command("create")
def create(
    dui: Annotated[str, typer.Option("--dui", help=bilingual("Le DUI testé (nom, version)", "the DUI under test."))],
    label: Annotated[str, typer.Option("--label", help=bilingual("Libellé", "label (default: the DUI)."))] = "",
    essms: Annotated[
        list[str] | None, typer.Option("--essms", help=bilingual("FINESS de l'ESSMS (répétable)", "FINESS."))
    ] = None,
    mailbox: Annotated[
        list[str] | None,
        typer.Option("--mailbox", help=bilingual("Adresse MSSanté du DUI (répétable)", "MSSanté address.")),
    ] = None,
    patient: Annotated[
        list[str] | None, typer.Option("--patient", help=bilingual("INS d'un patient (répétable)", "patient INS."))
    ] = None,
    client: Annotated[
        list[str] | None,
        typer.Option("--client", help=bilingual("Identifiant client Pro Santé Connect (répétable)", "PSC client id.")),
    ] = None,
    config_path: ConfigOpt = None,
    journal: JournalOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Ouvre une session de test / open a test session.

    Its members (ESSMS, mailboxes, patients, PSC clients) belong to no other open session: every exchange made with
    them is attributed to it, and a member of another session cannot read its data."""
    _check_format(fmt)
    members = Members(
        essms=tuple(essms or ()),
        mailboxes=tuple(mailbox or ()),
        patients=tuple(patient or ()),
        clients=tuple(client or ()),
    )
    store, registry = _store(config_path, journal, create=True)
    try:
        created = registry.create_session(new_session(dui, members, label=label))
    except (SessionConflictError, ValueError) as exc:
        err().print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(2) from exc
    finally:
        store.close()
    if fmt == "json":
        sys.stdout.write(json.dumps(created.summary(), ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(f"{created.id}\n")
        err().print(
            f"session {created.id} ouverte / opened: {created.label} — {len(created.members)} membre(s) / "
            f"member(s). Fermez-la avec / close it with: socle-harness session close {created.id}",
            soft_wrap=True,
        )


@sessions.command("list")
def list_sessions(
    open_only: Annotated[
        bool, typer.Option("--open", help=bilingual("Seulement les sessions ouvertes", "open sessions only."))
    ] = False,
    config_path: ConfigOpt = None,
    journal: JournalOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Liste les sessions de test / list the test sessions."""
    _check_format(fmt)
    store, registry = _store(config_path, journal)
    try:
        found = registry.sessions(open_only=open_only)
    finally:
        store.close()
    _print(found, fmt, f"Sessions — {len(found)}")


@sessions.command("close")
def close(
    session_id: Annotated[str, typer.Argument(help=bilingual("Identifiant de la session", "session id."))],
    config_path: ConfigOpt = None,
    journal: JournalOpt = None,
) -> None:
    """Ferme une session de test : ses membres sont libérés / close a test session, releasing its members."""
    store, registry = _store(config_path, journal)
    try:
        closed = registry.close_session(session_id)
    except UnknownSessionError as exc:
        err().print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from exc
    finally:
        store.close()
    assert closed.closed is not None
    sys.stdout.write(f"{closed.id} {closed.closed.isoformat(timespec='seconds')}\n")


commands = typer.Typer()
commands.add_typer(sessions)


def register(app: typer.Typer) -> None:
    """Add the ``session`` command group to the ``socle-harness`` application."""
    app.registered_groups.extend(commands.registered_groups)
