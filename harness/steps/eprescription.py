"""e-Prescription steps: the prescriber issues (or cancels) a prescription, the DUI imports it from its QR code,
then the steps judge the retrieval and the integration confirmation the e-Prescription simulator journaled
(``eprescription.retrieve``, ``eprescription.import_confirmed``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pytest_bdd import given, parsers, then, when

from harness.core.journal import Exchange, JournalFilter, Outcome
from harness.runtime.environment import ScenarioContext
from harness.sut.base import ActionResult, ActionStatus, EprescriptionImport

SERVICE = "eprescription"
RETRIEVE = "eprescription.retrieve"
CONFIRMED = "eprescription.import_confirmed"
REFUSED = "eprescription.import_refused"


@dataclass
class PrescriptionScene:
    """The prescription of the scenario: its identifier (EPU), for whom, how many lines."""

    epu: str | None = None
    ins: str | None = None
    lines: int = 0


@pytest.fixture
def ep_scene() -> Iterator[PrescriptionScene]:
    yield PrescriptionScene()


def _service(socle: ScenarioContext):  # noqa: ANN202 - mock_services.eprescription.service.EprescriptionService
    return socle.simulator(SERVICE).service  # type: ignore[attr-defined]


def _describe(exchange: Exchange) -> str:
    lines = [
        f"{exchange.operation} {exchange.outcome} (échange {exchange.id}) — HTTP {exchange.details.get('status')}",
        f"personne : {exchange.person or '-'} ; ESSMS : {exchange.essms or '-'}",
    ]
    for key in ("epu", "format", "found", "lines", "status", "task_status", "reason", "query"):
        if exchange.details.get(key) is not None:
            lines.append(f"{key} : {exchange.details[key]}")
    if exchange.error_code:
        lines.append(f"erreur : {exchange.error_code} — {exchange.error_message}")
    return "\n".join(lines)


def _since_action(socle: ScenarioContext, operation: str, *, wait: bool = True) -> list[Exchange]:
    if wait:
        found = socle.exchanges_since_action(SERVICE, operation)
    else:
        found = socle.env.journal.query(
            JournalFilter(
                service=SERVICE,
                operation=operation,
                run_id=socle.env.run_id,
                scenario_id=socle.scenario_id,
                since_seq=socle.mark,
            )
        )
    for exchange in found:
        socle.attach("Échange e-Prescription", _describe(exchange), exchange)
    return found


def _issue(socle: ScenarioContext, scene: PrescriptionScene, person, *, status: str = "active") -> None:  # noqa: ANN001
    service = _service(socle)
    prescription = service.issue(person, lines=2)
    if status == "cancelled":
        service.cancel(prescription.epu)
    scene.epu, scene.ins, scene.lines = prescription.epu, person.ins.value, len(prescription.lines)
    socle.attach(
        "Ordonnance numérique",
        f"EPU {prescription.epu} — {person.display_name} (INS {person.ins.value}) — "
        f"{'ANNULÉE' if status == 'cancelled' else 'valide'}\n"
        + "\n".join(f"- {line.medicine.display} : {line.posology.text}" for line in prescription.lines)
        + f"\nPage à scanner (recette manuelle, navigateur muni du certificat client-ESSMS-{person.essms} de l'IGC "
        f"de test) : {socle.env.endpoints.get(SERVICE, {}).get('base', '')}/ordonnances/{prescription.epu}",
    )


# Given -------------------------------------------------------------------------------------------
@given("une ordonnance numérique établie pour la personne")
@given("an electronic prescription issued for the person")
def prescription_for_person(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    _issue(socle, ep_scene, socle.require_person())


@given(parsers.parse('une ordonnance numérique établie pour la personne "{ref}"'))
@given(parsers.parse('an electronic prescription issued for the person "{ref}"'))
def prescription_for_other(socle: ScenarioContext, ep_scene: PrescriptionScene, ref: str) -> None:
    _issue(socle, ep_scene, socle.env.testdata.person(ref))


@given("une ordonnance numérique annulée par le prescripteur pour la personne")
@given("an electronic prescription cancelled by the prescriber for the person")
def cancelled_prescription(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    _issue(socle, ep_scene, socle.require_person(), status="cancelled")


@given("un identifiant d'ordonnance inconnu du service e-Prescription")
@given("a prescription identifier unknown to the e-Prescription service")
def unknown_identifier(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    ep_scene.epu = _service(socle).unknown_epu()
    socle.attach("Identifiant d'ordonnance", f"EPU {ep_scene.epu} (jamais émis)")


# When --------------------------------------------------------------------------------------------
def _import(socle: ScenarioContext, scene: PrescriptionScene, *, document: bool) -> ActionResult:
    if scene.epu is None:
        raise AssertionError(
            "aucune ordonnance dans ce scénario (étape « Soit une ordonnance numérique ... » manquante)"
        )
    action = EprescriptionImport(socle.require_person(), socle.require_establishment(), scene.epu, document=document)
    call = getattr(socle.sut, "import_eprescription", None)
    if call is None:
        return socle.act(
            "importer l'ordonnance",
            lambda: ActionResult(ActionStatus.ERROR, f"le pilote {socle.sut.name} ne sait pas importer d'ordonnance"),
        )
    label = "importer le document CDA de l'ordonnance" if document else "importer l'ordonnance"
    return socle.act(f"{label} {scene.epu} (QR code scanné)", lambda: call(action))


@when("le DUI importe l'ordonnance en scannant son QR code")
@when("the DUI imports the prescription by scanning its QR code")
def import_prescription(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    _import(socle, ep_scene, document=False)


@when("le DUI importe le document CDA de l'ordonnance en scannant son QR code")
@when("the DUI imports the prescription's CDA document by scanning its QR code")
def import_document(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    _import(socle, ep_scene, document=True)


# Then --------------------------------------------------------------------------------------------
def _retrievals(socle: ScenarioContext, scene: PrescriptionScene) -> list[Exchange]:
    found = [e for e in _since_action(socle, RETRIEVE) if e.details.get("epu") == scene.epu]
    if not found:
        raise AssertionError(f"le service e-Prescription n'a reçu aucune récupération de l'ordonnance {scene.epu}")
    return found


@then("le service e-Prescription reçoit la récupération de l'ordonnance par son identifiant")
@then("the e-Prescription service receives the retrieval of the prescription by its identifier")
def retrieved(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    hits = [e for e in _retrievals(socle, ep_scene) if e.outcome is Outcome.ACCEPTED and e.details.get("found")]
    if not hits:
        raise AssertionError(f"aucune récupération réussie de l'ordonnance {ep_scene.epu}")
    if hits[-1].person != ep_scene.ins:
        raise AssertionError(f"récupération rattachée à {hits[-1].person!r}, attendu l'INS {ep_scene.ins}")


@then("le service e-Prescription ne trouve aucune ordonnance pour cet identifiant")
@then("the e-Prescription service finds no prescription for this identifier")
def not_found(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    hits = _retrievals(socle, ep_scene)
    if any(e.details.get("found") for e in hits):
        raise AssertionError(f"le service a trouvé l'ordonnance {ep_scene.epu} (elle devait être inconnue)")


@then("le service e-Prescription indique que l'ordonnance est annulée")
@then("the e-Prescription service tells the prescription is cancelled")
def told_cancelled(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    hits = _retrievals(socle, ep_scene)
    if not any(e.details.get("status") == "cancelled" for e in hits):
        raise AssertionError("la récupération n'a pas porté sur une ordonnance annulée")


@then("le DUI confirme l'intégration de l'ordonnance au service e-Prescription")
@then("the DUI confirms the integration of the prescription to the e-Prescription service")
def confirmed(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    found = [e for e in _since_action(socle, CONFIRMED) if e.details.get("epu") == ep_scene.epu]
    accepted = [e for e in found if e.outcome is Outcome.ACCEPTED]
    if not accepted:
        refused = "; ".join(f"{e.error_code} {e.error_message}" for e in found)
        raise AssertionError(
            f"aucune confirmation d'intégration acceptée pour l'ordonnance {ep_scene.epu}"
            + (f" (refusées : {refused})" if refused else " (le DUI n'a rien confirmé)")
        )


@then("l'import est rattaché à l'INS de la personne et au FINESS de l'ESSMS")
@then("the import is attached to the person's INS and to the establishment's FINESS")
def import_attached(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    accepted = [
        e
        for e in _since_action(socle, CONFIRMED, wait=False)
        if e.outcome is Outcome.ACCEPTED and e.details.get("epu") == ep_scene.epu
    ]
    if not accepted:
        raise AssertionError("aucun import confirmé")
    exchange = accepted[-1]
    person, establishment = socle.require_person(), socle.require_establishment()
    if exchange.person != person.ins.value:
        raise AssertionError(f"import rattaché à la personne {exchange.person!r}, attendu l'INS {person.ins.value}")
    if exchange.essms != establishment.finess:
        raise AssertionError(f"import rattaché à l'ESSMS {exchange.essms!r}, attendu le FINESS {establishment.finess}")


@then("aucune intégration de l'ordonnance n'est confirmée")
@then("no integration of the prescription is confirmed")
def nothing_confirmed(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    attempts = _since_action(socle, CONFIRMED, wait=False)
    refusals = _since_action(socle, REFUSED, wait=False)
    if attempts:
        raise AssertionError(
            "le DUI a tenté de confirmer l'intégration : "
            + "; ".join(f"{e.outcome} {e.error_code or ''} {e.error_message or ''}".strip() for e in attempts)
        )
    if refusals:
        socle.attach("Refus transmis au service", "\n".join(str(e.details.get("reason") or "") for e in refusals))


@then("le DUI présente les lignes de l'ordonnance à son utilisateur")
@then("the DUI shows the prescription's lines to its user")
def lines_shown(socle: ScenarioContext, ep_scene: PrescriptionScene) -> None:
    if not socle.dui_reported_success("Le DUI présente-t-il l'ordonnance importée avec ses lignes ?"):
        raise AssertionError(f"le DUI signale un échec : {socle.last_action.detail if socle.last_action else ''}")
    result = socle.last_action
    lines = result.data.get("lignes") if result is not None else None
    if result is not None and result.status is ActionStatus.DONE and isinstance(lines, list):
        socle.attach("Lignes intégrées", json.dumps(lines, ensure_ascii=False, indent=1))
        if len(lines) != ep_scene.lines:
            raise AssertionError(f"le DUI présente {len(lines)} ligne(s), l'ordonnance en a {ep_scene.lines}")


def _dui_refuses(socle: ScenarioContext, question: str) -> None:
    if socle.dui_reported_success(question):
        raise AssertionError(
            f"le DUI a présenté l'ordonnance comme importée : {socle.last_action.detail if socle.last_action else ''}"
        )


@then("le DUI signale à son utilisateur que l'ordonnance n'est pas celle de la personne")
@then("the DUI tells its user the prescription is not the person's")
def dui_wrong_person(socle: ScenarioContext) -> None:
    _dui_refuses(
        socle, "Le DUI a-t-il importé l'ordonnance ? (« non » s'il signale qu'elle est celle d'une autre personne)"
    )


@then("le DUI signale à son utilisateur que l'ordonnance est introuvable")
@then("the DUI tells its user the prescription cannot be found")
def dui_unknown(socle: ScenarioContext) -> None:
    _dui_refuses(socle, "Le DUI a-t-il importé l'ordonnance ? (« non » s'il signale qu'elle est introuvable)")


@then("le DUI signale à son utilisateur que l'ordonnance est annulée")
@then("the DUI tells its user the prescription is cancelled")
def dui_cancelled(socle: ScenarioContext) -> None:
    _dui_refuses(socle, "Le DUI a-t-il importé l'ordonnance ? (« non » s'il signale qu'elle est annulée)")
