"""The TDDUI service plugin (see :mod:`harness.sut.plugins`); imported only through its entry point.

Its steps are the usage-indicator steps (:mod:`harness.steps.indicateurs`): the TDDUI export is what the
indicators are computed from, and the scenarios that drive it are the ``@indicateurs`` ones.
"""

from __future__ import annotations

from datetime import UTC, datetime

from harness.fields.dui import DuiRecord
from harness.host.simulator import FaultSpec, fault_specs
from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.plugins import ActionSpec, DuiSide, ServicePlugin
from mock_services.tddui import TdduiSettings, TdduiSimulator
from mock_services.tddui.service import FAULT_REPLY, FAULT_REPLY_LEGACY


def _export(action: base.TdduiExport, env: SutEnvironment | None) -> str:
    return (
        f"Dans le DUI de « {action.establishment.name} », lancez la transmission des données du DUI au format "
        f"national TDDUI (situation au {action.exported_at:%d/%m/%Y}, {len(action.records)} dossier(s))."
    )


EXPORTED_AT = datetime(2025, 4, 30, 18, 0, tzinfo=UTC)

ACTIONS = (
    ActionSpec(
        name="tddui-export",
        method="export_tddui",
        request=base.TdduiExport,
        summary="Export the establishment's records as they stand at `exported_at` to the national TDDUI endpoint "
        "(ANS ans.fhir.fr.tddui transaction Bundle: Patient, séjours, projets personnalisés, agenda).",
        instruction=_export,
        example=lambda s: {
            "exported_at": EXPORTED_AT,
            "records": (DuiRecord(s.person, s.person.id, updates=(EXPORTED_AT,)),),
        },
    ),
)

FAULTS = (
    *fault_specs(TdduiSimulator.fault_catalogue),
    FaultSpec(FAULT_REPLY_LEGACY, f"ancien nom de {FAULT_REPLY}, encore accepté", ("status", "message")),
)


def dui() -> DuiSide:
    """The DUI side: TdduiActions is imported when the reference DUI or the control API is built, never by
    ``socle-harness serve`` (issue 18, cold start)."""
    from harness.sut.tddui_actions import TDDUI_DEFECTS, TdduiActions

    return DuiSide(actions=ACTIONS, reference=TdduiActions, defects=TDDUI_DEFECTS)


PLUGIN = ServicePlugin(
    name="tddui",
    title=TdduiSimulator.title,
    simulator=TdduiSimulator,
    settings=(TdduiSettings,),
    faults=FAULTS,
    dui=dui,
    steps="harness.steps.indicateurs",
)
