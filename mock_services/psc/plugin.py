"""The Pro Santé Connect service plugin (see :mod:`harness.sut.plugins`); imported only through its entry point."""

from __future__ import annotations

from harness.host.simulator import fault_specs
from harness.sut.plugins import DuiSide, ServicePlugin
from mock_services.psc import PSCSimulator
from mock_services.psc.realm import Settings


def dui() -> DuiSide:
    """The DUI side (:mod:`mock_services.psc.dui_side`), imported when first asked for, never by
    ``socle-harness serve`` (issue 18, cold start)."""
    from mock_services.psc.dui_side import side

    return side()


PLUGIN = ServicePlugin(
    name="psc",
    title=PSCSimulator.title,
    simulator=PSCSimulator,
    settings=(Settings,),
    faults=fault_specs(PSCSimulator.fault_catalogue),
    dui=dui,
    steps="harness.steps.psc",
)
