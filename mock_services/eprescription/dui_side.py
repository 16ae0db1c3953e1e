"""The DUI side of the e-Prescription service plugin (:mod:`mock_services.eprescription.plugin`): the control-API actions with
their answers' data and the guided-recette instructions, imported when the reference DUI, the control API or a check
first asks for them (:func:`harness.sut.plugins.dui_side`), never by ``socle-harness serve`` (issue 18, cold start)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from harness.fields.testdata import Person
from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.eprescription_actions import EPRESCRIPTION_DEFECTS, EprescriptionActions
from harness.sut.plugins import ActionSpec, DuiSide, fact
from mock_services.eprescription.prescriptions import Prescription, generate
from mock_services.eprescription.service import EprescriptionSettings


def _import(action: base.EprescriptionImport, env: SutEnvironment | None) -> str:
    base_url = ((env.endpoints if env else {}).get("eprescription") or {}).get("base", "")
    form = "son document CDA (eP-MED-DM)" if action.document else "l'ordonnance"
    return (
        f"Dans le DUI de « {action.establishment.name} », ouvrez le dossier de {action.person.display_name} (INS "
        f"{action.person.ins.value}) et scannez le QR code de l'ordonnance numérique {action.identifier} (page à "
        f"afficher ou imprimer : {base_url}/ordonnances/{action.identifier}, dans un navigateur muni du certificat "
        f"client-ESSMS-{action.establishment.finess} de l'IGC de test). Importez {form} si elle est valide et "
        "celle de la personne ; sinon le DUI doit le signaler."
    )


def example_prescription(person: Person) -> Prescription:
    """A one-line prescription for ``person`` from the simulator's own generator and default seed (the first it
    issues when a scenario asks one line): the control-API document's examples are what the simulator serves."""
    seed = EprescriptionSettings().seed
    return generate(person, rng=random.Random(seed), authored=datetime(2025, 4, 30, 18, tzinfo=UTC), lines=1)


def _lines(person: Person) -> list[str]:
    """The lines as the DUI shows them: the medicine (Medication.code.text) and the posology (dosage text)."""
    return [f"{line.medicine.display} — {line.posology.text}" for line in example_prescription(person).lines]


@dataclass(frozen=True)
class EprescriptionImportData:
    epu: str = fact("the EPU of the prescription imported", real=lambda s: example_prescription(s.person).epu)
    lignes: tuple[str, ...] = fact(
        "the prescription lines shown to the user: medicine — posology", real=lambda s: _lines(s.person)
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
        data=EprescriptionImportData,
        example=lambda s: {"identifier": example_prescription(s.person).epu},
    ),
)


def side() -> DuiSide:
    """The DUI side: the actions above, the reference DUI's mixin and its named defects."""
    return DuiSide(actions=ACTIONS, reference=EprescriptionActions, defects=EPRESCRIPTION_DEFECTS)
