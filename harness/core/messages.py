"""The one convention for messages a user reads (errors, refusals, prompts): French first, then the English
after `` / `` (issue 13 item 9). Details that need no translation (a value, a list of names) follow the pair."""

from __future__ import annotations

SEPARATOR = " / "


def bilingual(french: str, english: str) -> str:
    """``"<french> / <english>"``: ``bilingual("étape non définie", "undefined step") + ": …"``."""
    return f"{french}{SEPARATOR}{english}"
