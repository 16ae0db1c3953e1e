"""The e-Prescription service plugin (see :mod:`harness.sut.plugins`); imported only through its entry point."""

from __future__ import annotations

from harness.host.simulator import fault_specs
from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.eprescription_actions import EPRESCRIPTION_DEFECTS, EprescriptionActions
from harness.sut.plugins import ActionSpec, DuiSide, ServicePlugin
from mock_services.eprescription import EprescriptionSimulator
from mock_services.eprescription.service import EprescriptionSettings


def _import(action: base.EprescriptionImport, env: SutEnvironment | None) -> str:
    base_url = ((env.endpoints if env else {}).get("eprescription") or {}).get("base", "")
    form = "son document CDA (eP-MED-DM)" if action.document else "l'ordonnance"
    return (
        f"Dans le DUI de « {action.establishment.name} », ouvrez le dossier de {action.person.display_name} (INS "
        f"{action.person.ins.value}) et scannez le QR code de l'ordonnance numérique {action.identifier} (page à "
        f"afficher ou imprimer : {base_url}/ordonnances/{action.identifier}). Importez {form} si elle est valide et "
        "celle de la personne ; sinon le DUI doit le signaler."
    )


ACTIONS = (
    ActionSpec(
        name="eprescription-import",
        method="import_eprescription",
        request=base.EprescriptionImport,
        summary="Import the e-prescription whose EPU was scanned from its QR code (FHIR MedicationRequest lines, "
        "or the CDA eP-MED-DM document when `document`), check it is the person's and not cancelled, integrate "
        "it and confirm the integration (Task).",
        instruction=_import,
        data={"lignes": "the prescription lines shown to the user (list)"},
    ),
)

PLUGIN = ServicePlugin(
    name="eprescription",
    title=EprescriptionSimulator.title,
    simulator=EprescriptionSimulator,
    settings=(EprescriptionSettings,),
    faults=fault_specs(EprescriptionSimulator.fault_catalogue),
    dui=DuiSide(actions=ACTIONS, reference=EprescriptionActions, defects=EPRESCRIPTION_DEFECTS),
    steps="harness.steps.eprescription",
)
