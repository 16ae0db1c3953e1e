"""The e-Parcours (cahier de liaison) service plugin (see :mod:`harness.sut.plugins`); imported only through its
entry point."""

from __future__ import annotations

from harness.host.simulator import fault_specs
from harness.sut.plugins import DuiSide, ServicePlugin
from mock_services.eparcours import EparcoursSimulator
from mock_services.eparcours.service import EparcoursSettings


def dui() -> DuiSide:
    """The DUI side (:mod:`mock_services.eparcours.dui_side`), imported when first asked for, never by
    ``socle-harness serve`` (issue 18, cold start)."""
    from mock_services.eparcours.dui_side import side

    return side()


PLUGIN = ServicePlugin(
    name="eparcours",
    title=EparcoursSimulator.title,
    simulator=EparcoursSimulator,
    settings=(EparcoursSettings,),
    faults=fault_specs(EparcoursSimulator.fault_catalogue),
    dui=dui,
    steps="harness.steps.eparcours",
)
