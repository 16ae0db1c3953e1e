"""A simulator's context for the tests that build a simulator in process (no PKI, no listening port)."""

from __future__ import annotations

from typing import Any

from harness.core.journal import Journal
from harness.fields.testdata import TestData
from harness.host.simulator import FaultBoard, RunState, SimulatorContext


def bare_context(
    name: str, journal: Journal, testdata: TestData, *, run_id: str = "run1", **fields: Any
) -> SimulatorContext:
    """The context of simulator ``name`` journaling to ``journal``: no PKI, no port, ``http_base``
    ``https://127.0.0.1/<name>``, a fault board of its own, run ``run_id``; ``fields`` (``settings``, ``state``,
    ``admin_token``...) passed on as given."""
    return SimulatorContext(
        name=name,
        journal=journal,
        pki=None,  # type: ignore[arg-type]
        bind_host="127.0.0.1",
        ports={},
        http_base=f"https://127.0.0.1/{name}",
        faults=FaultBoard(),
        run=RunState(run_id),
        testdata=testdata,
        **fields,
    )
