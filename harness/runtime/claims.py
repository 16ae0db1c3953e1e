"""One catalogue shared by several child pytest processes of ``socle-harness run --jobs N`` (issue 18).

Every child collects the same scenarios in the same order, then plays only the scenarios it claims: it walks the
catalogue in order and claims scenario *i* by creating the file ``<folder>/<i>`` exclusively (``O_CREAT |
O_EXCL``, atomic on a local POSIX file system), so that each scenario is played exactly once and a child that
finishes early takes the next free one (a scenario that waits on purpose, such as the 2-second slow MSSanté
server, does not hold the others back). Scenarios tagged ``@lent`` are asked for first (:func:`claim_order`). The first child to finish collecting writes ``order.json``, the
catalogue order the parent uses to report the scenarios in the order of a one-process run, whichever child
played them.

A scenario's verdict must not depend on the process that plays it: each child has its own simulators and its
own reference DUI, and every scenario already runs on its own (its journal rows carry its scenario id, its
simulators' faults are cleared after it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.core.events import ORDER_FILE
from harness.runtime.selection import item_tags

#: Gherkin tag of a scenario that waits on purpose (``@lent``: the 2-second slow MSSanté server): claimed first.
SLOW_TAG = "lent"


def claim_order(items: list[pytest.Item]) -> list[int]:
    """The catalogue indexes in the order the children ask for them: the ``@lent`` scenarios first, so that their
    wait overlaps the other scenarios instead of ending the run, then the catalogue's order (the reports keep the
    catalogue's order whatever the claim order)."""
    slow = [i for i, item in enumerate(items) if SLOW_TAG in item_tags(item)]
    rest = set(range(len(items))).difference(slow)
    return [*slow, *sorted(rest)]


class ScenarioClaims:
    """pytest plugin of a child (``--socle-claims FOLDER``): plays the scenarios this process claims."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def claim(self, index: int) -> bool:
        """True if this process is the first to ask for scenario ``index``."""
        try:
            descriptor = os.open(self.folder / str(index), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        os.close(descriptor)
        return True

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        target = self.folder / ORDER_FILE
        if target.exists():
            return
        scratch = self.folder / f"{ORDER_FILE}.{os.getpid()}"
        scratch.write_text(json.dumps([item.nodeid for item in session.items]), encoding="utf-8")
        os.replace(scratch, target)  # every child collects the same order: whichever lands last, it is the same

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        """pytest's own loop (``_pytest.main.pytest_runtestloop``) over the claimed scenarios only.

        ``nextitem`` is a neighbour in the catalogue, never None (unless the catalogue has one scenario): all
        scenarios live in one module, so it only tells pytest to keep the session's fixtures (simulators, DUI) up
        for whatever this child claims next; pytest tears the session down when it finishes
        (``_pytest.runner.pytest_sessionfinish``), as after a last scenario."""
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(f"{session.testsfailed} erreur(s) de collecte / collection error(s)")
        if session.config.option.collectonly:
            return True
        items = session.items
        for index in claim_order(items):
            if not self.claim(index):
                continue
            item = items[index]
            nextitem = items[index + 1] if index + 1 < len(items) else items[index - 1] if index else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if session.shouldfail:
                raise session.Failed(session.shouldfail)
            if session.shouldstop:
                raise session.Interrupted(session.shouldstop)
        return True
