"""The CLI's consoles, built when a command prints rather than at import.

A module-level :class:`rich.console.Console` fixes its width when it is built (Rich reads ``COLUMNS`` once, in its
constructor), so a command module imported lazily during one invocation kept that invocation's width for every
later one in the same process (test runners, the guided mode). One console per call reads the terminal — or
``COLUMNS`` — as it is now.

Rich itself is imported by the first console or escape asked for: ``socle-harness serve`` writes its endpoints
file before it prints anything, so its ports answer without waiting for Rich's import (issue 18, cold start)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def console() -> Console:
    """Standard output, no automatic highlighting (French text with numbers stays plain)."""
    from rich.console import Console

    return Console(highlight=False)


def err() -> Console:
    """Standard error, for refusals and what to do about them."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def escape(text: str) -> str:
    """``text`` with its Rich markup escaped (:func:`rich.markup.escape`), to print as it is."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)
