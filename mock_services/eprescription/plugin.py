"""The e-Prescription service plugin (see :mod:`harness.sut.plugins`); imported only through its entry point."""

from __future__ import annotations

from harness.host.simulator import fault_specs
from harness.sut.plugins import DuiSide, ServicePlugin
from mock_services.eprescription import EprescriptionSimulator
from mock_services.eprescription.service import EprescriptionSettings


def dui() -> DuiSide:
    """The DUI side (:mod:`mock_services.eprescription.dui_side`), imported when first asked for, never by
    ``socle-harness serve`` (issue 18, cold start)."""
    from mock_services.eprescription.dui_side import side

    return side()


PLUGIN = ServicePlugin(
    name="eprescription",
    title=EprescriptionSimulator.title,
    simulator=EprescriptionSimulator,
    settings=(EprescriptionSettings,),
    faults=fault_specs(EprescriptionSimulator.fault_catalogue),
    dui=dui,
    steps="harness.steps.eprescription",
)
