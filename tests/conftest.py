"""Shared test helpers: paths to the public corpus (read from ../shared/corpus, never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# SOCLE_CORPUS points at another copy (a git worktree has no ../shared beside it)
CORPUS = Path(os.environ.get("SOCLE_CORPUS") or REPO.parent / "shared" / "corpus")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus absent: {CORPUS} (the ANS public examples are read from ../shared/corpus)")
    return CORPUS
