"""The DMP service plugin (see :mod:`harness.sut.plugins`); imported only through its entry point."""

from __future__ import annotations

from harness.sut.plugins import DuiSide, ServicePlugin
from mock_services.dmp import DMPSimulator
from mock_services.dmp.faults import FAULTS
from mock_services.dmp.settings import DmpSettings


def dui() -> DuiSide:
    """The DUI side (:mod:`mock_services.dmp.dui_side`), imported when first asked for, never by
    ``socle-harness serve`` (issue 18, cold start)."""
    from mock_services.dmp.dui_side import side

    return side()


PLUGIN = ServicePlugin(
    name="dmp",
    title=DMPSimulator.title,
    simulator=DMPSimulator,
    settings=(DmpSettings,),
    faults=FAULTS,
    dui=dui,
    steps="harness.steps.dmp",
)
