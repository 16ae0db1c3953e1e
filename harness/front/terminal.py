"""The CLI's consoles, built when a command prints rather than at import.

A module-level :class:`rich.console.Console` fixes its width when it is built (Rich reads ``COLUMNS`` once, in its
constructor), so a command module imported lazily during one invocation kept that invocation's width for every
later one in the same process (test runners, the guided mode). One console per call reads the terminal — or
``COLUMNS`` — as it is now."""

from __future__ import annotations

from rich.console import Console


def console() -> Console:
    """Standard output, no automatic highlighting (French text with numbers stays plain)."""
    return Console(highlight=False)


def err() -> Console:
    """Standard error, for refusals and what to do about them."""
    return Console(stderr=True, highlight=False)
