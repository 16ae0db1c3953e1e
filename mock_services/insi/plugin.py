"""The INSi service plugin (see :mod:`harness.sut.plugins`); imported only through its entry point.

Its reference mixin also sends by MSSanté once the identity is qualified (``mssante-send-qualified``): the plugin
requires the ``mssante`` service.
"""

from __future__ import annotations

from harness.sut.plugins import DuiSide, ServicePlugin
from mock_services.insi import InsiSimulator
from mock_services.insi.faults import FAULTS
from mock_services.insi.service import InsiSettings


def dui() -> DuiSide:
    """The DUI side (:mod:`mock_services.insi.dui_side`), imported when first asked for, never by
    ``socle-harness serve`` (issue 18, cold start)."""
    from mock_services.insi.dui_side import side

    return side()


PLUGIN = ServicePlugin(
    name="insi",
    title=InsiSimulator.title,
    simulator=InsiSimulator,
    settings=(InsiSettings,),
    faults=FAULTS,
    dui=dui,
    steps="harness.steps.insi",
    requires=("mssante",),
)
