"""The DUI side of the TDDUI service plugin (:mod:`mock_services.tddui.plugin`): the control-API actions with
their answers' data and the guided-recette instructions, imported when the reference DUI, the control API or a check
first asks for them (:func:`harness.sut.plugins.dui_side`), never by ``socle-harness serve`` (issue 18, cold start)."""

from __future__ import annotations

from datetime import UTC, datetime

from harness.fields.dui import DuiRecord
from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.plugins import ActionSpec, DuiSide
from harness.sut.tddui_actions import TDDUI_DEFECTS, TdduiActions


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


def side() -> DuiSide:
    """The DUI side: the actions above, the reference DUI's mixin and its named defects."""
    return DuiSide(actions=ACTIONS, reference=TdduiActions, defects=TDDUI_DEFECTS)
