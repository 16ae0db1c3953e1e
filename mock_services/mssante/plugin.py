"""The MSSanté service plugin: simulator, settings, faults, DUI side (:mod:`mock_services.mssante.dui_side`) and steps
(see :mod:`harness.sut.plugins`).

Composition root of the service: imported only through its entry point (``socle_harness.services``); the
simulator modules of this package never import it. The reference DUI's MSSanté code stays in
:mod:`harness.sut.mssante_actions` (the DUI side is a harness layer above the simulators).
"""

from __future__ import annotations

from harness.sut.plugins import DuiSide, ServicePlugin
from mock_services.mssante import MSSanteSimulator
from mock_services.mssante.faults import FAULTS
from mock_services.mssante.settings import Hl7RelaySettings, ImapSettings, MssanteSettings, SmtpSettings


def dui() -> DuiSide:
    """The DUI side (:mod:`mock_services.mssante.dui_side`), imported when first asked for, never by
    ``socle-harness serve`` (issue 18, cold start)."""
    from mock_services.mssante.dui_side import side

    return side()


PLUGIN = ServicePlugin(
    name="mssante",
    title=MSSanteSimulator.title,
    simulator=MSSanteSimulator,
    settings=(SmtpSettings, ImapSettings, Hl7RelaySettings, MssanteSettings),
    faults=FAULTS,
    dui=dui,
    steps="harness.steps.mssante",
)
