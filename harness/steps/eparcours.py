"""e-Parcours steps: the cahier de liaison. Partners write notes on the platform, the DUI writes, updates, searches
and reads notes; the steps judge the ``cdl.*`` exchanges the e-Parcours simulator journaled and the notes it holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pytest_bdd import given, parsers, then, when

from harness.core.journal import Exchange, Outcome
from harness.runtime.environment import ScenarioContext
from harness.sut.base import ActionResult, ActionStatus, CdlNotePost, CdlNotesRead, CdlNoteUpdate

SERVICE = "eparcours"


@dataclass
class CdlScene:
    """Notes of the scenario: published by the platform (id -> (type, urgent, text, INS)), written by the DUI."""

    platform_notes: dict[str, tuple[str, bool, str, str]] = field(default_factory=dict)
    dui_note: str | None = None
    platform_text: str | None = None  # the text a partner wrote over the DUI's note
    note_type: str | None = None


@pytest.fixture
def cdl_scene() -> Iterator[CdlScene]:
    yield CdlScene()


def _service(socle: ScenarioContext):  # noqa: ANN202 - mock_services.eparcours.service.EparcoursService
    return socle.simulator(SERVICE).service  # type: ignore[attr-defined]


def _describe(exchange: Exchange) -> str:
    d = exchange.details
    lines = [
        f"{exchange.operation} {exchange.outcome} (échange {exchange.id}) — {d.get('method')} {d.get('path')} → HTTP {d.get('status')}",
        f"personne : {exchange.person or '-'} ; ESSMS : {exchange.essms or '-'}",
    ]
    if d.get("query"):
        lines.append(f"requête : {d['query']}")
    if d.get("note"):
        lines.append("note : " + json.dumps(d["note"], ensure_ascii=False))
    if d.get("notes") is not None:
        lines.append(f"notes trouvées : {len(d['notes'])}")
    if exchange.error_code:
        lines.append(f"erreur : {exchange.error_code} — {exchange.error_message}")
    for finding in d.get("findings", [])[:10]:
        lines.append(f"- {finding['severity']} {finding['code']}: {finding['message']}")
    return "\n".join(lines)


def _since_action(socle: ScenarioContext, operation: str) -> list[Exchange]:
    found = socle.exchanges_since_action(SERVICE, operation)
    for exchange in found:
        socle.attach("Échange cahier de liaison", _describe(exchange), exchange)
    return found


def _drive(socle: ScenarioContext, label: str, method: str, action: object) -> ActionResult:
    call = getattr(socle.sut, method, None)
    if call is None:
        return socle.act(
            label,
            lambda: ActionResult(ActionStatus.ERROR, f"le pilote {socle.sut.name} ne sait pas faire « {method} »"),
        )
    return socle.act(label, lambda: call(action))


# Given -------------------------------------------------------------------------------------------
def _publish(socle: ScenarioContext, scene: CdlScene, person, note_type: str, text: str, *, urgent: bool) -> None:  # noqa: ANN001
    version = _service(socle).publish_note(person, note_type=note_type, text=text, urgent=urgent)
    scene.platform_notes[version.id] = (note_type, urgent, text, person.ins.value)
    socle.attach(
        "Note publiée par la plateforme",
        f"DocumentReference/{version.id} — {note_type}{' URGENTE' if urgent else ''} — {person.display_name} : {text}",
    )


@given(parsers.parse('la plateforme e-Parcours a publié une note urgente "{note_type}" pour la personne : "{text}"'))
@given(parsers.parse('the e-Parcours platform has published an urgent "{note_type}" note for the person: "{text}"'))
def platform_urgent_note(socle: ScenarioContext, cdl_scene: CdlScene, note_type: str, text: str) -> None:
    _publish(socle, cdl_scene, socle.require_person(), note_type, text, urgent=True)


@given(parsers.parse('la plateforme e-Parcours a publié une note "{note_type}" pour la personne : "{text}"'))
@given(parsers.parse('the e-Parcours platform has published a "{note_type}" note for the person: "{text}"'))
def platform_note(socle: ScenarioContext, cdl_scene: CdlScene, note_type: str, text: str) -> None:
    _publish(socle, cdl_scene, socle.require_person(), note_type, text, urgent=False)


@given(parsers.parse('la plateforme e-Parcours a publié une note "{note_type}" pour la personne "{ref}" : "{text}"'))
@given(parsers.parse('the e-Parcours platform has published a "{note_type}" note for the person "{ref}": "{text}"'))
def platform_note_other(socle: ScenarioContext, cdl_scene: CdlScene, note_type: str, ref: str, text: str) -> None:
    _publish(socle, cdl_scene, socle.env.testdata.person(ref), note_type, text, urgent=False)


def _post(
    socle: ScenarioContext, scene: CdlScene, note_type: str, *, transaction: bool, text: str | None = None
) -> ActionResult:
    person = socle.require_person()
    text = text or f"Transmission du DUI : {person.given} a bien dormi, pas de douleur signalée."
    scene.note_type = note_type
    action = CdlNotePost(person, socle.require_establishment(), note_type, text, transaction=transaction)
    mode = "transaction" if transaction else "RESTful"
    result = _drive(socle, f"écrire une note {note_type} dans le cahier de liaison ({mode})", "cdl_post_note", action)
    if result.status is ActionStatus.DONE:
        scene.dui_note = result.data.get("note_id")
    elif result.status is ActionStatus.DELEGATED:  # guided recette: the note the operator wrote, from the journal
        created = [e for e in socle.exchanges_since_action(SERVICE, "cdl.create") if e.outcome is Outcome.ACCEPTED]
        scene.dui_note = created[-1].details.get("id") if created else None
    return result


@given(parsers.parse('le DUI a écrit une note "{note_type}" dans le cahier de liaison de la personne'))
@given(parsers.parse('the DUI has written a "{note_type}" note in the person\'s cahier de liaison'))
def dui_wrote(socle: ScenarioContext, cdl_scene: CdlScene, note_type: str) -> None:
    result = _post(socle, cdl_scene, note_type, transaction=True)
    if cdl_scene.dui_note is None:
        raise AssertionError(f"prérequis non rempli : le DUI n'a pas pu écrire sa note ({result.detail})")


@given("un partenaire a modifié cette note sur la plateforme entre-temps")
@given("a partner has changed this note on the platform meanwhile")
def partner_changed(socle: ScenarioContext, cdl_scene: CdlScene) -> None:
    if cdl_scene.dui_note is None:
        raise AssertionError("aucune note du DUI dans ce scénario")
    cdl_scene.platform_text = "Complément du SSIAD : rendez-vous de kinésithérapie déplacé à jeudi 14h."
    version = _service(socle).platform_update(cdl_scene.dui_note, cdl_scene.platform_text)
    socle.attach(
        "Note modifiée sur la plateforme",
        f"DocumentReference/{cdl_scene.dui_note} version {version.version_id} (ETag {version.etag})",
    )


# When --------------------------------------------------------------------------------------------
@when(parsers.parse('le DUI écrit une note "{note_type}" dans le cahier de liaison de la personne'))
@when(parsers.parse('the DUI writes a "{note_type}" note in the person\'s cahier de liaison'))
def dui_writes(socle: ScenarioContext, cdl_scene: CdlScene, note_type: str) -> None:
    _post(socle, cdl_scene, note_type, transaction=True)


@when(parsers.parse('le DUI écrit une note "{note_type}" dans le cahier de liaison de la personne en mode RESTful'))
@when(parsers.parse('the DUI writes a "{note_type}" note in the person\'s cahier de liaison the RESTful way'))
def dui_writes_restful(socle: ScenarioContext, cdl_scene: CdlScene, note_type: str) -> None:
    _post(socle, cdl_scene, note_type, transaction=False)


@when("le DUI consulte le cahier de liaison de la personne")
@when("the DUI reads the person's cahier de liaison")
def dui_reads(socle: ScenarioContext) -> None:
    _drive(
        socle,
        "consulter le cahier de liaison",
        "cdl_read_notes",
        CdlNotesRead(socle.require_person(), socle.require_establishment()),
    )


@when(parsers.parse('le DUI recherche les notes "{note_type}" de la personne'))
@when(parsers.parse('the DUI searches the person\'s "{note_type}" notes'))
def dui_searches(socle: ScenarioContext, cdl_scene: CdlScene, note_type: str) -> None:
    cdl_scene.note_type = note_type
    _drive(
        socle,
        f"rechercher les notes {note_type}",
        "cdl_read_notes",
        CdlNotesRead(socle.require_person(), socle.require_establishment(), note_type=note_type),
    )


@when("le DUI modifie sa note")
@when("the DUI updates its note")
def dui_updates(socle: ScenarioContext, cdl_scene: CdlScene) -> None:
    if cdl_scene.dui_note is None:
        raise AssertionError("aucune note du DUI dans ce scénario")
    action = CdlNoteUpdate(
        socle.require_person(),
        socle.require_establishment(),
        cdl_scene.dui_note,
        "Transmission corrigée : douleur légère au genou droit signalée au réveil.",
    )
    _drive(socle, "modifier sa note", "cdl_update_note", action)


# Then --------------------------------------------------------------------------------------------
@then("la plateforme e-Parcours enregistre la note conforme au profil CdLDocumentReference")
@then("the e-Parcours platform records the note, valid against the CdLDocumentReference profile")
def note_recorded(socle: ScenarioContext, cdl_scene: CdlScene) -> None:
    found = _since_action(socle, "cdl.create")
    if not found:
        raise AssertionError("la plateforme n'a reçu aucune création de note (cdl.create)")
    accepted = [e for e in found if e.outcome is Outcome.ACCEPTED]
    if not accepted:
        raise AssertionError(
            "création de note refusée : " + "; ".join(f"{e.error_code} {e.error_message}" for e in found)
        )
    note = accepted[-1].details.get("note") or {}
    if cdl_scene.note_type and note.get("type") != cdl_scene.note_type:
        raise AssertionError(f"note de type {note.get('type')!r}, attendu {cdl_scene.note_type!r} (JDV_J23)")


@then("la note est rattachée à l'INS de la personne et au FINESS de l'ESSMS")
@then("the note is attached to the person's INS and to the establishment's FINESS")
def note_attached(socle: ScenarioContext) -> None:
    accepted = [e for e in _since_action(socle, "cdl.create") if e.outcome is Outcome.ACCEPTED]
    if not accepted:
        raise AssertionError("aucune note créée")
    exchange, person, establishment = accepted[-1], socle.require_person(), socle.require_establishment()
    if exchange.person != person.ins.value:
        raise AssertionError(f"note rattachée à {exchange.person!r}, attendu l'INS {person.ins.value}")
    if exchange.essms != establishment.finess:
        raise AssertionError(f"note rattachée à l'ESSMS {exchange.essms!r}, attendu le FINESS {establishment.finess}")


@then("le DUI lit la note urgente de la plateforme")
@then("the DUI reads the platform's urgent note")
def read_urgent(socle: ScenarioContext, cdl_scene: CdlScene) -> None:
    urgent = [i for i, (_, is_urgent, _, _) in cdl_scene.platform_notes.items() if is_urgent]
    searches = [e for e in _since_action(socle, "cdl.search") if e.outcome is Outcome.ACCEPTED]
    reads = [e for e in _since_action(socle, "cdl.read") if e.outcome is Outcome.ACCEPTED]
    if not searches:
        raise AssertionError("le DUI n'a pas recherché les notes de la personne (cdl.search)")
    missing = [i for i in urgent if not any(e.details.get("id") == i for e in reads)]
    if missing:
        raise AssertionError(f"note(s) urgente(s) non lue(s) par le DUI : {', '.join(missing)}")


@then("le DUI signale la note comme urgente à son utilisateur")
@then("the DUI flags the note as urgent to its user")
def flagged_urgent(socle: ScenarioContext, cdl_scene: CdlScene) -> None:
    urgent = {i for i, (_, is_urgent, _, _) in cdl_scene.platform_notes.items() if is_urgent}
    result = socle.last_action
    if result is None or not socle.dui_reported_success("Le DUI affiche-t-il la note urgente comme urgente ?"):
        raise AssertionError("le DUI n'a pas présenté le cahier de liaison")
    if result.status is ActionStatus.DONE:
        shown = set(result.data.get("urgentes") or [])
        socle.attach("Compte rendu du DUI", f"{result.detail}\nurgentes : {sorted(shown)}")
        if not urgent <= shown:
            raise AssertionError(
                f"note(s) urgente(s) non signalée(s) à l'utilisateur : {', '.join(sorted(urgent - shown))}"
            )


@then(parsers.parse("la plateforme refuse la mise à jour avec le code HTTP {status:d}"))
@then(parsers.parse("the platform rejects the update with HTTP status {status:d}"))
def update_refused(socle: ScenarioContext, status: int) -> None:
    found = _since_action(socle, "cdl.update")
    if not found:
        raise AssertionError("la plateforme n'a reçu aucune mise à jour de note (cdl.update)")
    if not any(e.outcome is Outcome.REJECTED and e.details.get("status") == status for e in found):
        raise AssertionError(
            f"mise à jour non refusée avec {status} : "
            + "; ".join(f"{e.outcome} HTTP {e.details.get('status')}" for e in found)
        )


@then("la modification faite sur la plateforme n'est pas écrasée")
@then("the change made on the platform is not overwritten")
def not_overwritten(socle: ScenarioContext, cdl_scene: CdlScene) -> None:
    from mock_services.eparcours.service import note_text

    if cdl_scene.dui_note is None or cdl_scene.platform_text is None:
        raise AssertionError("aucune modification de la plateforme dans ce scénario")
    version = _service(socle).note(cdl_scene.dui_note)
    text = note_text(version.resource or {}) if version is not None else ""
    socle.attach("Note sur la plateforme", f"version {version.version_id if version else '-'} : {text}")
    if text != cdl_scene.platform_text:
        raise AssertionError("la modification du partenaire a été écrasée par la mise à jour du DUI")


@then("le DUI signale le conflit de version à son utilisateur")
@then("the DUI reports the version conflict to its user")
def conflict_reported(socle: ScenarioContext) -> None:
    if socle.dui_reported_success(
        "Le DUI a-t-il enregistré la modification ? (« non » s'il signale que la note a changé entre-temps)"
    ):
        raise AssertionError(
            f"le DUI présente la mise à jour comme réussie : {socle.last_action.detail if socle.last_action else ''}"
        )


@then(parsers.parse('la plateforme reçoit une recherche de notes sur l\'INS de la personne et le type "{note_type}"'))
@then(parsers.parse('the platform receives a notes search on the person\'s INS and the type "{note_type}"'))
def search_received(socle: ScenarioContext, note_type: str) -> None:
    searches = [e for e in _since_action(socle, "cdl.search") if e.outcome is Outcome.ACCEPTED]
    if not searches:
        raise AssertionError("aucune recherche de notes (cdl.search) acceptée")
    person = socle.require_person()
    criteria = searches[-1].details.get("criteria") or {}
    on_person = any(
        k.split(":")[0].split(".")[0] in ("patient", "subject")
        and any(v.endswith(f"|{person.ins.value}") for v in values)
        for k, values in criteria.items()
    )
    if not on_person:
        raise AssertionError(
            f"la recherche ne porte pas sur l'INS {person.ins.value} de la personne : {json.dumps(criteria, ensure_ascii=False)}"
        )
    if not any(
        k == "type" and any(v.endswith(f"|{note_type}") or v == note_type for v in values)
        for k, values in criteria.items()
    ):
        raise AssertionError(
            f"la recherche ne porte pas sur le type {note_type} : {json.dumps(criteria, ensure_ascii=False)}"
        )


@then(parsers.parse('le DUI présente les notes "{note_type}" de la personne, et elles seules'))
@then(parsers.parse('the DUI shows the person\'s "{note_type}" notes, and only them'))
def shows_only(socle: ScenarioContext, cdl_scene: CdlScene, note_type: str) -> None:
    person = socle.require_person()
    expected = {
        v.id for v in _service(socle).notes_for(person.ins.value, note_type)
    }  # this scenario's and earlier ones
    if not expected:
        raise AssertionError(f"aucune note {note_type} de la personne sur la plateforme : le scénario ne prouve rien")
    result = socle.last_action
    if result is None or not socle.dui_reported_success(f"Le DUI présente-t-il les notes {note_type} de la personne ?"):
        raise AssertionError("le DUI n'a pas présenté de résultat de recherche")
    if result.status is ActionStatus.DONE:
        shown = {n.get("id") for n in result.data.get("notes") or []}
        socle.attach(
            "Notes présentées par le DUI", json.dumps(result.data.get("notes"), ensure_ascii=False, indent=1)[:3000]
        )
        if shown != expected:
            raise AssertionError(
                f"notes présentées {sorted(shown)}, attendues {sorted(expected)} (seulement les notes {note_type} de "
                f"{person.display_name})"
            )
