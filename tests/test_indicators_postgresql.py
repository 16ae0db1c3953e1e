"""The indicators computed in PostgreSQL equal the SQLite engine's (issue 19 item 1): on a grappe the ``simulate``
command drives through the real simulators into a PostgreSQL journal, on random journals (hypothesis), for every
reading; and ``indicators`` / ``forecast`` / ``simulate`` accept ``--journal postgresql://…`` end to end.

The engine's own expectations run on both backends in tests/test_indicators.py (``world`` fixture). Uses the
PostgreSQL server on 127.0.0.1:5432 (tests/conftest.py); skips, saying so, when it is absent."""

from __future__ import annotations

import json
import random
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_indicators import A, B, World, _load, _numbers, worlds
from typer.testing import CliRunner

from harness.analytics.indicators import IndicatorEngine, Scope, campaign_periods
from harness.analytics.indicators_pg import PostgresIndicatorEngine, indicator_engine
from harness.core.journal import MESSAGE_ID, Outcome, SQLiteJournal, open_journal
from harness.core.journal_pg import PostgreSQLJournal
from harness.front.cli import app

runner = CliRunner()
READING_SETS = [
    {},
    {"mssante": "personnes", "cahier_liaison": "appels", "projet_personnalise": "fin_de_periode", "agenda": "periode"},
]


@pytest.fixture(scope="module")
def simulated(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``socle-harness simulate --journal postgresql://…``: a grappe driven through the simulators, journaled in
    PostgreSQL (a schema of its own)."""
    # a name of its own per set-up: with --dist worksteal a module's tests may be split and this fixture set up
    # again in the same worker, while the previous set-up's connections may still be closing
    schema = f"sim_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{pg_database}?options=-csearch_path%3D{schema}&pool_max=4"
    out = tmp_path_factory.mktemp("sim")
    args = ["simulate", "--journal", url, "--essms", "3", "--persons", "5", "--months", "5", "--seed", "3"]
    result = runner.invoke(app, [*args, "--out", str(out), "--workers", "2"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"Journal: {url}" in result.stdout and "versements DMP" in result.stdout
    yield url, out


def _copy_to_sqlite(url: str, path: Path) -> str:
    """The PostgreSQL journal's exchanges, as recorded (ids, times, details), in a SQLite journal."""
    source = open_journal(url)
    target = SQLiteJournal(path)
    try:
        exchanges = source.query()
        target.record_many(exchanges)
        assert target.count() == len(exchanges) > 100
    finally:
        source.close()
        target.close()
    return f"sqlite:///{path}"


def test_simulated_grappe_same_indicators_on_both_journals(simulated: tuple[str, Path], tmp_path: Path) -> None:
    url, out = simulated
    lite = _copy_to_sqlite(url, tmp_path / "copy.sqlite")
    pg, copy = open_journal(url), SQLiteJournal(tmp_path / "copy.sqlite")
    try:
        assert isinstance(indicator_engine(pg), PostgresIndicatorEngine)
        assert type(indicator_engine(copy)) is IndicatorEngine
        grappe = json.loads((out / "grappe.json").read_text(encoding="utf-8"))
        periods = campaign_periods("2025-01", "2025-05")
        essms = tuple(e["finess"] for e in grappe["essms"])
        for readings in READING_SETS:
            mine = indicator_engine(pg, readings=readings).compute(periods, grappe=essms, campaign_start="2025-01")
            theirs = IndicatorEngine(copy, readings=readings).compute(periods, grappe=essms, campaign_start="2025-01")
            assert mine.to_dict() == theirs.to_dict()
            split = _split_engine(pg, 3, 2, readings=readings).compute(periods, grappe=essms, campaign_start="2025-01")
            assert split.to_dict() == theirs.to_dict()
            assert any(f.numerator for f in mine.figures if f.indicator == "cahier_liaison")  # not all zeros
            assert any(f.numerator for f in mine.figures if f.indicator == "projet_personnalise")
        for indicator in ("mssante", "dmp", "cahier_liaison", "agenda", "projet_personnalise", "dossiers_actifs"):
            for where in (essms[0], None):
                mine_e = indicator_engine(pg).evidence(indicator, periods[-1], where)
                theirs_e = IndicatorEngine(copy).evidence(indicator, periods[-1], where)
                assert mine_e.figure == theirs_e.figure
                assert _items(mine_e) == _items(theirs_e)
    finally:
        pg.close()
        copy.close()
    # the command line, both journals: the same JSON but for the journal's URL
    outputs = []
    for journal in (url, lite):
        result = runner.invoke(
            app, ["indicators", "--journal", journal, "--grappe", str(out / "grappe.json"), "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1] and len(outputs[0]["figures"]) == 7 * 3 * 4  # 7 indicators x (3 ESSMS + grappe)


def _split_engine(
    journal: PostgreSQLJournal, workers: int, cuts: int | None = None, **kwargs: object
) -> PostgresIndicatorEngine:
    """The engine counting the persons in ESSMS ranges at once (``workers`` at most), as on a large journal (the
    table analysed: the ranges come from its statistics); ``cuts``: the number of cuts expected."""
    with journal.connection() as conn:
        conn.execute("ANALYZE exchanges")
    engine = PostgresIndicatorEngine(journal, workers=workers, parallel_from=0, **kwargs)  # type: ignore[arg-type]
    if cuts is not None:
        with closing(engine._connect()) as con:
            assert len(engine._essms_bounds(con)) == cuts
    return engine


def _items(evidence: object) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """Drill-down lines, ids sorted (SQLite's group_concat gives no order)."""
    return sorted((i.role, i.person, tuple(sorted(i.exchange_ids))) for i in evidence.items)  # type: ignore[attr-defined]


def test_indicators_detail_and_forecast_commands_read_postgresql(simulated: tuple[str, Path], tmp_path: Path) -> None:
    url, out = simulated
    lite = _copy_to_sqlite(url, tmp_path / "copy.sqlite")
    grappe = str(out / "grappe.json")
    detail = [
        runner.invoke(
            app,
            ["indicators", "--journal", j, "--grappe", grappe, "--month", "2025-05", "--detail", "dmp"],
            env={"COLUMNS": "250"},
        )
        for j in (url, lite)
    ]
    assert [d.exit_code for d in detail] == [0, 0], detail[0].output
    assert detail[0].stdout.replace(url, "URL") == detail[1].stdout.replace(lite, "URL")
    forecasts = [
        runner.invoke(app, ["forecast", "--journal", j, "--grappe", grappe, "--format", "json"]) for j in (url, lite)
    ]
    assert [f.exit_code for f in forecasts] == [0, 0], forecasts[0].output
    assert json.loads(forecasts[0].stdout) == json.loads(forecasts[1].stdout)


def test_indicators_command_says_when_postgresql_is_unreachable() -> None:
    result = runner.invoke(app, ["indicators", "--journal", "postgresql://127.0.0.1:1/absente"])
    assert result.exit_code == 2
    assert "journal PostgreSQL injoignable / unreachable: postgresql://127.0.0.1:1/absente" in result.output


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=worlds(), seed=st.integers(0, 2**32 - 1), readings=st.sampled_from(READING_SETS))
def test_random_journals_same_figures_in_postgresql(
    pg_database: str, specs: list[tuple], seed: int, readings: dict[str, str]
) -> None:
    """Random séjours, versions (retractions, out-of-order producer dates), plans, events and messages: the
    PostgreSQL engine's figures are the SQLite engine's, for each set of readings."""
    schema = f"h_{random.Random(seed).getrandbits(48):012x}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    pg = open_journal(f"{pg_database}?options=-csearch_path%3D{schema}&pool_max=2")
    assert isinstance(pg, PostgreSQLJournal)
    try:
        with tempfile.TemporaryDirectory() as folder:
            lite, post = World(Path(folder) / "a.sqlite"), World(pg)
            _load(lite, specs)
            _load(post, specs)
            order = list(range(len(post.pending)))
            random.Random(seed).shuffle(order)
            lite.commit(order)
            post.commit(order)
            periods = campaign_periods("2025-01", "2025-06")
            theirs = IndicatorEngine(lite.journal, readings=readings).compute(periods, grappe=(A, B))
            mine = indicator_engine(pg, readings=readings).compute(periods, grappe=(A, B))
            split = _split_engine(pg, 2, readings=readings).compute(periods, grappe=(A, B))
            lite.journal.close()
        assert _numbers(mine) == _numbers(theirs)
        assert _numbers(split) == _numbers(theirs)
    finally:
        pg.close()
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_configured_postgresql_journal_is_read_without_journal_option(
    simulated: tuple[str, Path], tmp_path: Path
) -> None:
    url, out = simulated
    config = tmp_path / "socle-harness.toml"
    config.write_text(f'journal = "{url}"\n', encoding="utf-8")
    args = ["indicators", "--grappe", str(out / "grappe.json"), "--format", "json"]
    configured = runner.invoke(app, [*args, "--config", str(config)])
    explicit = runner.invoke(app, [*args, "--journal", url])
    assert configured.exit_code == 0, configured.output
    assert json.loads(configured.stdout) == json.loads(explicit.stdout)


def _aggregates_world(world: World) -> None:
    """Two batches of exchanges the aggregates of schema 4 keep at insert time, with their edge cases."""
    world.stay(A, "P1", "2024-11-20", date="2024-10-01")
    world.update(A, "P1", "2024-13-05")  # not a month: outside every month, inside the first period's bounds
    world.update(A, "P1", "inconnue")
    world.stay(A, "P2", "2025-01-03")
    world.update(A, "P2", "2025-02-10")
    world.event(A, "P2", "2025-02-11", key="ev|late", date="2025-03-01")
    world.stay(B, "P3", "2025-01-15", "2025-03-10")
    world.update(B, "P3", "2025-01-20")
    world.event(B, "P3", "2025-01-21", key="ev|b")
    world.event(B, "P3", "2025-01-25", key="ev|b2")
    world.stay(B, "P4", "2025-01-02")
    world.event(B, "P4", "2025-01-02", key="ev|p4")
    for essms, person, day in ((A, "P1", "2025-01-05"), (A, "P2", "2024-12-20"), (B, "P3", "2025-02-02")):
        world.socle("dmp", "iti41.provide_and_register", day, essms, person)
    world.socle("dmp", "iti41.provide_and_register", "2025-01-06", A, "P1", outcome=Outcome.REJECTED)
    world.mss("2025-02-04", A, "P1", details={MESSAGE_ID: "<m1@a>"})
    world.mss("2025-01-09", B, None, details={MESSAGE_ID: "<m2@b>"})
    world.mss("2025-01-10", B, "P3")  # no Message-ID: each exchange counts
    # cahier de liaison: notes received (read, or listed by a search) before and after the platform's note
    world.socle("eparcours", "cdl.read", "2025-02-03", A, None, details={"note": {"id": "n1"}})
    world.socle("eparcours", "cdl.search", "2025-03-03", A, None, details={"notes": [{"id": "n1"}, {"id": "n2"}]})
    world.socle("eparcours", "platform.note", "2025-01-03", None, None, details={"note": {"id": "n2"}})
    world.commit()
    # second batch: an earlier producer date recorded later (not the latest version), a retraction, a Message-ID
    # seen again in an earlier month (the message moves there) and in a later one (nothing changes)
    world.event(A, "P2", "2025-02-11", key="ev|late", date="2025-01-02", status="cancelled")
    world.event(B, "P3", "2025-01-21", key="ev|b", date="2025-02-15", status="entered-in-error")
    world.stay(B, "P3", "2025-01-15", "2025-02-01", date="2025-03-12")
    world.event(B, "P3", "2025-01-25", key="ev|b2", date="2025-03-02")  # recorded since January all the same
    world.event(B, "P4", "2025-01-02", key="ev|p4", date="2025-01-03", status="cancelled")  # P4's only event
    world.mss("2025-01-07", A, "P1", details={MESSAGE_ID: "<m1@a>"})
    world.mss("2025-03-07", A, "P1", details={MESSAGE_ID: "<m1@a>"})
    world.mss("2025-02-08", A, "P2", details={MESSAGE_ID: "<m3@a>"}, outcome=Outcome.REJECTED)
    world.socle("eparcours", "platform.note", "2025-02-01", None, None, details={"note": {"id": "n1"}})
    world.socle("eparcours", "cdl.read", "2025-01-20", B, None, details={"note": {"id": "n1"}})
    world.socle("eparcours", "cdl.read", "2025-01-21", B, None, details={"note": {"id": "n2"}}, run_id="other")
    world.commit()


def test_the_aggregates_give_the_figures_of_the_exchanges(pg_url: str, tmp_path: Path) -> None:
    """Schema 4's incremental aggregates (harness.core.journal_pg, read by the engine over the whole journal) give
    the figures the SQLite engine takes from every exchange, and the PostgreSQL engine without them: producer
    dates that are not months, two years, versions recorded out of order, retractions, a Message-ID seen first in
    a later month. A scope by run reads the exchanges (the aggregates hold every run)."""
    lite, post = World(tmp_path / "a.sqlite"), World(open_journal(pg_url))
    _aggregates_world(lite)
    _aggregates_world(post)
    periods = campaign_periods("2024-11", "2025-04")
    try:
        for readings in READING_SETS:
            theirs = IndicatorEngine(lite.journal, readings=readings).compute(periods, grappe=(A, B))
            mine = PostgresIndicatorEngine(post.journal, readings=readings).compute(periods, grappe=(A, B))
            plain = PostgresIndicatorEngine(post.journal, readings=readings, aggregates=False)
            assert mine.to_dict() == theirs.to_dict() == plain.compute(periods, grappe=(A, B)).to_dict()
        figures = _numbers(PostgresIndicatorEngine(post.journal).compute(periods, grappe=(A, B)))
        first = periods[0].label
        # P1 in the file active from November, its record updated in the first period by "2024-13-05" only
        assert figures[("dossiers_actifs", first, A)] == (2, 2)
        assert figures[("dossiers_actifs", "2025-02", A)] == (1, 2)  # P2 alone
        assert figures[("mssante", first, A)] == (1, 2)  # <m1@a> counts in January, once
        assert figures[("mssante", "2025-02", A)] == (0, 2)
        assert figures[("mssante", first, B)] == (2, 2)  # <m2@b> and the message without Message-ID
        assert figures[("dmp", first, A)] == (2, 2)
        # the cancelled version of P2's event is dated before the latest (not cancelled): recorded from January
        assert figures[("agenda", first, A)] == (1, 2)
        assert figures[("agenda", "2025-02", A)] == (1, 1)
        assert figures[("agenda", first, B)] == (1, 2)  # P3 by ev|b2 (ev|b retracted), not P4 (its only event)
        assert figures[("dossiers_actifs", "2025-03", B)] == (0, 1)  # P3 out: its séjour's latest version ends in Feb.
        # n1 read by A in February, before the platform's note was journaled; n2 listed in March; B read n1 in
        # January, and n2 in another run (another note)
        cdl = [figures[("cahier_liaison", p.label, e)][0] for e in (A, B) for p in periods]
        assert cdl == [0, 1, 1, 0, 1, 0, 0, 0]
        scoped = Scope(run_id="other")
        assert _numbers(PostgresIndicatorEngine(post.journal).compute(periods, scoped, grappe=(A,))) == _numbers(
            IndicatorEngine(lite.journal).compute(periods, scoped, grappe=(A,))
        )
    finally:
        lite.journal.close()
        post.journal.close()
