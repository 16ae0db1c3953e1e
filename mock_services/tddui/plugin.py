"""The TDDUI service plugin (see :mod:`harness.sut.plugins`); imported only through its entry point.

Its steps are the usage-indicator steps (:mod:`harness.steps.indicateurs`): the TDDUI export is what the
indicators are computed from, and the scenarios that drive it are the ``@indicateurs`` ones.
"""

from __future__ import annotations

from harness.host.simulator import FaultSpec, fault_specs
from harness.sut.plugins import DuiSide, ServicePlugin
from mock_services.tddui import TdduiSettings, TdduiSimulator
from mock_services.tddui.service import FAULT_REPLY, FAULT_REPLY_LEGACY

FAULTS = (
    *fault_specs(TdduiSimulator.fault_catalogue),
    FaultSpec(FAULT_REPLY_LEGACY, f"ancien nom de {FAULT_REPLY}, encore accepté", ("status", "message")),
)


def dui() -> DuiSide:
    """The DUI side (:mod:`mock_services.tddui.dui_side`), imported when first asked for, never by
    ``socle-harness serve`` (issue 18, cold start)."""
    from mock_services.tddui.dui_side import side

    return side()


PLUGIN = ServicePlugin(
    name="tddui",
    title=TdduiSimulator.title,
    simulator=TdduiSimulator,
    settings=(TdduiSettings,),
    faults=FAULTS,
    dui=dui,
    steps="harness.steps.indicateurs",
)
