"""Checks made before a command starts anything, so that wrong usage fails at once with one clear line.

Exit codes of ``socle-harness`` (documented in the README): 0 every scenario passed; 1 a conformance failure;
2 usage error (bad option, unknown SUT or defect, unusable path or configuration); 3 the DUI under test is
unreachable or the harness could not run; 4 observe-only mode observed nothing; 5 no scenario selected.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

from harness.core.config import HarnessConfig
from harness.core.messages import bilingual

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NO_SCENARIO = 5


class PreflightError(Exception):
    """What is wrong, in one line, and the exit code it deserves."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_sut(spec: str) -> None:
    """The ``--sut`` value names a driver that can be built (unknown defects listed once, not per scenario).

    ``reference``, ``manual`` and ``observe:`` need no check here (the observe window is parsed by ``run``): building
    the reference DUI imports every plugin's DUI side (about 0.3 s), which the child pytest does again anyway."""
    if spec.startswith("observe:") or spec in ("manual", "reference"):
        return
    from harness.runtime.drivers import make_driver  # the DUI drivers: only for run (serve checks no DUI)

    try:
        make_driver(spec)
    except ValueError as exc:
        raise PreflightError(str(exc)) from exc


def check_http_sut(spec: str, *, timeout: float = 5.0) -> None:
    """An ``http:<url>`` DUI answers HTTP at all before 66 scenarios wait for it (any HTTP status counts)."""
    if not spec.startswith("http:"):
        return
    base = spec[len("http:") :]
    import httpx  # only when a DUI is reached over HTTP (serve never imports it)

    try:
        httpx.get(base.rstrip("/") + "/socle/v1/session", timeout=timeout)
    except httpx.HTTPError as exc:
        raise PreflightError(
            f"DUI injoignable / SUT unreachable at {base}: {type(exc).__name__} {exc}. Démarrez sa build de test "
            "et vérifiez l'URL de son API de pilotage (docs/control-api.openapi.json).",
            EXIT_UNREACHABLE,
        ) from exc


def check_writable_dir(path: Path, what: str) -> None:
    """``path`` exists or can be created, and a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".socle-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PreflightError(
            f"{what} : impossible d'écrire dans {path} ({exc.strerror or exc}). Choisissez un dossier accessible "
            f"en écriture / {what}: cannot write to {path}"
        ) from exc


def check_journal(url: str, *, create: bool = True) -> None:
    """A ``sqlite:///`` journal can be opened (its folder created when ``create``); a ``postgresql://`` one answers
    and its schema is not newer than this code's (:func:`harness.core.journal_pg.probe`); other URLs are left to
    :func:`harness.core.journal.open_journal`, which says what it supports."""
    parsed = urlparse(url)
    if parsed.scheme in {"postgresql", "postgres"}:
        from harness.core.journal_pg import JournalUnavailableError, SchemaTooNewError, probe  # psycopg: only here

        try:
            probe(url)
        except (JournalUnavailableError, SchemaTooNewError) as exc:
            raise PreflightError(str(exc)) from exc
        return
    if parsed.scheme != "sqlite":
        return
    raw = unquote(parsed.path)
    name = raw[1:] if raw.startswith("/") else raw
    if not name or name == ":memory:":
        return
    path = Path(name)
    if create:
        check_writable_dir(path.parent if str(path.parent) else Path("."), "journal")
    elif not path.is_file():
        raise PreflightError(bilingual("journal introuvable", "journal not found") + f": {path} (option --journal)")
    try:
        sqlite3.connect(f"file:{path}?mode={'rwc' if create else 'ro'}", uri=True).close()
    except sqlite3.Error as exc:
        raise PreflightError(bilingual(f"journal {path} illisible", "cannot be opened") + f": {exc}") from exc


#: ``run --jobs auto``: the built-in DUIs on ephemeral ports share the catalogue between this many processes at most.
AUTO_JOBS = 2
#: ``run --jobs auto`` with a selection (--select, --tags, --titre): the second process starts once the first has
#: collected at least this many scenarios. Starting one costs about a second of CPU (interpreter, imports,
#: collection, its own simulators) and it plays nothing before then: fewer scenarios never pay it back.
AUTO_SPREAD_FROM = 20


def spread_from(requested: str, processes: int, *selection: str | None) -> int | None:
    """``run_catalogue``'s ``spread_from``: :data:`AUTO_SPREAD_FROM` for ``--jobs auto`` on several processes when a
    selection is given (``--select``, ``--tags``, ``--titre``), else None (all the processes start at once: the whole
    catalogue, or a number of processes asked for)."""
    return AUTO_SPREAD_FROM if requested == "auto" and processes > 1 and any(selection) else None


def parallel_jobs(config: HarnessConfig, requested: str) -> int:
    """How many child processes play the catalogue (``run --jobs``, :mod:`harness.runtime.claims`).

    Each child starts its own simulators and its own DUI, so more than one needs a built-in DUI (``reference``,
    ``faulty:``) and ephemeral ports: an external DUI is configured with one set of endpoints, a person follows one
    scenario at a time, the observe-only mode judges one journal window. A PostgreSQL journal is fine: a run's
    simulators keep their state in their own process (``HostOptions.share_state``). ``auto`` takes
    :data:`AUTO_JOBS` when all of that holds and the machine has that many cores, else 1."""
    built_in = config.sut == "reference" or config.sut.startswith("faulty:")
    ephemeral = not config.http_port and not any(port for named in config.ports.values() for port in named.values())
    if requested == "auto":
        return AUTO_JOBS if built_in and ephemeral and (os.cpu_count() or 1) >= AUTO_JOBS else 1
    try:
        jobs = int(requested)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise PreflightError(
            f"--jobs {requested} : « auto » ou un nombre de processus >= 1 / « auto » or a number of processes >= 1"
        )
    if jobs > 1 and not built_in:
        raise PreflightError(
            f"--jobs {jobs} : le DUI sous test {config.sut} se joue dans un seul processus (un DUI externe n'a qu'un "
            "jeu de points d'accès, la recette guidée une personne, le mode observation un journal) ; utilisez "
            "--jobs 1 / only the built-in DUIs (reference, faulty:) can be played by several processes"
        )
    if jobs > 1 and not ephemeral:
        raise PreflightError(
            f"--jobs {jobs} : des ports fixes sont configurés (ports / http_port, --smtp-port…) et chaque processus "
            "démarre ses propres simulateurs ; retirez-les ou utilisez --jobs 1 / fixed ports need --jobs 1"
        )
    return jobs
