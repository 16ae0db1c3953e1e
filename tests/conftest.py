"""Shared test helpers: paths to the public corpus (read from ../shared/corpus, never copied)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# SOCLE_CORPUS points at another copy (a git worktree has no ../shared beside it)
CORPUS = Path(os.environ.get("SOCLE_CORPUS") or REPO.parent / "shared" / "corpus")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus absent: {CORPUS} (the ANS public examples are read from ../shared/corpus)")
    return CORPUS


#: The PostgreSQL server the PostgreSQL journal tests use (trust authentication on this machine and in CI).
POSTGRES_ADMIN = os.environ.get("SOCLE_TEST_POSTGRES", "postgresql://127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test session (random name), dropped at the end; skips, saying why, when
    the server is absent."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL absent on 127.0.0.1:5432: {str(exc).strip().splitlines()[0]} ({POSTGRES_ADMIN})")
    name = f"socle_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A ``postgresql://`` journal URL of its own for one test: a fresh schema of the session's database."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{pg_database}?options=-csearch_path%3D{schema}&pool_max=4"


@pytest.fixture()
def start_environments() -> Iterator[Callable[..., list[Any]]]:
    """``start(*configs)`` starts one :class:`SocleEnvironment` per configuration, in order, and returns them; every
    environment started is stopped at the end of the test, whatever happened (two "serving processes" on one
    database, say)."""
    from harness.runtime.environment import SocleEnvironment

    started: list[SocleEnvironment] = []

    def start(*configs: Any) -> list[SocleEnvironment]:
        envs = []
        for config in configs:
            env = SocleEnvironment(config)
            env.start()
            started.append(env)
            envs.append(env)
        return envs

    yield start
    for env in started:
        env.stop()
