"""INSi steps: describe the person to identify, make the DUI search / verify / qualify an INS, inject teleservice
faults, then judge from the SOAP exchanges the INSi simulator journaled and the identity status derived from them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pytest_bdd import given, parsers, then, when

from harness.core.journal import Exchange, Outcome
from harness.fields.identity import OID_INS_NIA
from harness.fields.identity_status import (
    DOCUMENT_OPERATION,
    DOCUMENT_SERVICE,
    HIGH_TRUST_DOCUMENTS,
    IdentityEvidence,
    IdentityStatus,
    document_check_exchange,
    document_kind,
    identity_evidence,
    ins_status,
    insi_returned,
    tddui_document,
)
from harness.host.simulator import Fault
from harness.runtime.environment import ScenarioContext, not_observable
from harness.sut.base import (
    ActionResult,
    ActionStatus,
    InsiSearch,
    InsiTraits,
    InsiVerify,
    MssanteSend,
)
from harness.sut.insi_actions import traits_of_person

SERVICE = "insi"
INSI_CERTIFICATES = ("INSI-AUTO", "INSI-MANU")


@dataclass
class InsiScene:
    """What INSi steps share within one scenario (besides :class:`ScenarioContext`)."""

    traits: InsiTraits | None = None
    held_ins: tuple[str, str] | None = None  # (value, OID) the DUI already holds for the person
    certificate: str | None = None  # organisation certificate the DUI is made to present instead of INSI-AUTO


@pytest.fixture
def insi_scene() -> Iterator[InsiScene]:
    yield InsiScene()  # injected faults are cleared after every scenario by the `socle` fixture


# ---------------------------------------------------------------------------------------------- helpers


def _traits(socle: ScenarioContext, scene: InsiScene) -> InsiTraits:
    if scene.traits is not None:
        return scene.traits
    return traits_of_person(socle.require_person())


def _drive(socle: ScenarioContext, label: str, method: str, action: object) -> ActionResult:
    call = getattr(socle.sut, method, None)
    if call is None:
        return socle.act(
            label,
            lambda: ActionResult(ActionStatus.ERROR, f"le pilote {socle.sut.name} ne sait pas faire « {method} »"),
        )
    result = socle.act(label, lambda: call(action))
    _journal_document_check(socle, result)
    return result


def _journal_document_check(socle: ScenarioContext, result: ActionResult) -> None:
    """Journal the identity-document check the DUI reports (``data["piece_identite"]``): a DUI-side fact (RNIV
    validation) that the identity status of every service combines with the INSi answers."""
    document = result.data.get("piece_identite") if result.status is not ActionStatus.DELEGATED else None
    if not document:
        return
    ins = socle.person.ins.value if socle.person is not None else result.data.get("ins")
    if not ins:
        return
    exchange = document_check_exchange(
        essms=_establishment_finess(socle),
        ins_value=str(ins),
        document=str(document),
        reported_status=result.data.get("statut"),
        source="pilote",
        run_id=socle.env.run_id,
        scenario_id=socle.scenario_id,
    )
    socle.attach("Contrôle de pièce d'identité déclaré par le DUI", json.dumps(exchange.details, ensure_ascii=False))
    socle.env.journal.record(exchange)


def _operator_document_check(socle: ScenarioContext, ins: str) -> None:
    """Guided recette: the operator says which high-trust document the DUI's user checked (journaled like above)."""
    channel = getattr(socle.sut, "channel", None)
    if socle.last_action is None or socle.last_action.status is not ActionStatus.DELEGATED or channel is None:
        return
    if socle.last_action.data.get("document_asked"):
        return
    if socle.prompt is not None:  # the operator is still doing the action: wait for its INSi call first
        socle.exchanges_since_action(SERVICE)
    question = (
        "Quelle pièce d'identité à haut niveau de confiance l'utilisateur du DUI a-t-il contrôlée pour cette "
        "identité ? " + ", ".join(f"{code} = {label}" for code, label in HIGH_TRUST_DOCUMENTS.items()) + ", aucune"
    )
    reply = channel.answer(
        channel.ask(socle.scenario_id, question, question, mode="question", choices=(*HIGH_TRUST_DOCUMENTS, "aucune"))
    )
    socle.last_action.data["document_asked"] = True
    socle.attach("Réponse de l'opérateur", f"{question} → {reply.answer if reply else 'pas de réponse'}")
    if reply is None or document_kind(reply.answer) is None:
        return
    exchange = document_check_exchange(
        essms=_establishment_finess(socle),
        ins_value=ins,
        document=reply.answer,
        reported_status=None,
        source="operateur",
        run_id=socle.env.run_id,
        scenario_id=socle.scenario_id,
    )
    socle.env.journal.record(exchange)


def _describe(exchange: Exchange) -> str:
    details = exchange.details
    lines = [
        f"{exchange.operation} {exchange.outcome} (échange {exchange.id}) — certificat client: {details.get('client_cn') or 'aucun'}"
    ]
    if exchange.error_code:
        lines.append(f"faute: {exchange.error_code} — {exchange.error_message}")
    if "cr" in details:
        ins = details.get("ins") or {}
        lines.append(f"CR {details['cr']}" + (f" — INS {ins.get('value')} ({ins.get('oid')})" if ins else ""))
    if details.get("history"):
        lines.append("historique: " + ", ".join(h["value"] for h in details["history"]))
    if details.get("request"):
        lines.append("traits envoyés: " + json.dumps(details["request"], ensure_ascii=False))
    if details.get("lps"):
        lines.append("ContexteLPS: " + json.dumps(details["lps"], ensure_ascii=False))
    for flag in details.get("identity_flags", []):
        lines.append(f"signalement: {flag}")
    for finding in details.get("findings", []):
        lines.append(f"- {finding['severity']} {finding['code']}: {finding['message']}")
    return "\n".join(lines)


def _calls(socle: ScenarioContext) -> list[Exchange]:
    found = socle.exchanges_since_action(SERVICE)
    for exchange in found:
        socle.attach("Échange INSi", _describe(exchange), exchange)
    if not found:
        raise AssertionError("aucun appel au téléservice INSi après l'action du DUI")
    return found


def _answers(socle: ScenarioContext) -> list[Exchange]:
    """The accepted calls; none and an IDAM the simulator does not know (``desir_550`` with ``details["remedy"]``,
    not an injected fault): the verdict says how to declare it instead of « aucune réponse »."""
    calls = _calls(socle)
    answers = [e for e in calls if e.outcome is Outcome.ACCEPTED]
    remedies = [e.details["remedy"] for e in calls if e.outcome is Outcome.REJECTED and e.details.get("remedy")]
    if not answers and remedies:
        raise AssertionError(f"le téléservice INSi a refusé l'appel (desir_550) : {remedies[-1]}")
    return answers


def _returned_ins(exchange: Exchange) -> str | None:
    return (exchange.details.get("ins") or {}).get("value")


def _dui_report(socle: ScenarioContext) -> ActionResult:
    if socle.last_action is None:
        raise AssertionError("le DUI n'a effectué aucune action dans ce scénario")
    socle.attach(
        "Compte rendu du DUI",
        json.dumps(
            {"statut": str(socle.last_action.status), "detail": socle.last_action.detail, **socle.last_action.data},
            ensure_ascii=False,
            default=str,
        )[:2000],
    )
    return socle.last_action


def _establishment_finess(socle: ScenarioContext) -> str:
    return socle.require_establishment().finess


# Given -------------------------------------------------------------------------------------------
_PERSON = r'la personne à identifier "(?P<nom>[^"]+)" "(?P<prenoms>[^"]+)" de sexe "(?P<sexe>[^"]+)" née? le "(?P<date>[^"]+)"'
_PERSON_EN = (
    r'the person to identify "(?P<nom>[^"]+)" "(?P<prenoms>[^"]+)" of sex "(?P<sexe>[^"]+)" born on "(?P<date>[^"]+)"'
)


@given(parsers.re(_PERSON + r'(?: à "(?P<lieu>[^"]+)")?$'))
@given(parsers.re(_PERSON_EN + r'(?: in "(?P<lieu>[^"]+)")?$'))
def person_to_identify(
    insi_scene: InsiScene, socle: ScenarioContext, nom: str, prenoms: str, sexe: str, date: str, lieu: str | None = None
) -> None:
    insi_scene.traits = InsiTraits(
        birth_name=nom, first_names=tuple(prenoms.split()), sex=sexe, birth_date=date, birth_place=lieu or None
    )
    socle.attach("Personne à identifier", f"{nom} {prenoms}, {sexe}, née le {date}" + (f" à {lieu}" if lieu else ""))


@given(parsers.re(r'le DUI a enregistré pour la personne l\'INS "(?P<ins>[0-9AB]{15})" \(OID "(?P<oid>[0-9.]+)"\)'))
@given(parsers.re(r'the DUI holds the INS "(?P<ins>[0-9AB]{15})" \(OID "(?P<oid>[0-9.]+)"\) for the person'))
def dui_holds_ins(insi_scene: InsiScene, socle: ScenarioContext, ins: str, oid: str) -> None:
    insi_scene.held_ins = (ins, oid)
    socle.attach("INS enregistré dans le DUI", f"{ins} ({oid})")


@given(parsers.parse('le DUI présente le certificat d\'organisation "{name}" au lieu de son certificat INSi'))
@given(parsers.parse('the DUI presents the organisation certificate "{name}" instead of its INSi certificate'))
def other_certificate(insi_scene: InsiScene, socle: ScenarioContext, name: str) -> None:
    insi_scene.certificate = name
    socle.attach("Certificat client", f"le DUI présentera {name} (CN attendu par INSi : INSI-AUTO ou INSI-MANU)")


@given("le téléservice INSi ne reconnaît pas le numéro d'autorisation (IDAM) du logiciel")
@given("the INSi teleservice does not know the software's authorisation number (IDAM)")
def unknown_idam(insi_scene: InsiScene, socle: ScenarioContext) -> None:
    socle.inject_fault(SERVICE, Fault("insi.faute", {"code": "desir_550"}))
    socle.attach("Panne simulée INSi", "IDAM inconnu : prochaine requête refusée (siram_100 / desir_550)")


@given("le téléservice INSi est indisponible")
@given("the INSi teleservice is unavailable")
def unavailable(insi_scene: InsiScene, socle: ScenarioContext) -> None:
    socle.inject_fault(SERVICE, Fault("insi.indisponible", {"mode": "soap"}, remaining=3))
    socle.attach("Panne simulée INSi", "service indisponible : env:Receiver / siram_40 / insi_102")


@given("l'identité de la personne n'a pas encore été qualifiée par le DUI")
@given("the person's identity has not been qualified by the DUI yet")
def not_yet_qualified(socle: ScenarioContext) -> None:
    person = socle.require_person()
    status = ins_status(
        socle.env.journal, run_id=socle.env.run_id, essms=_establishment_finess(socle), ins_value=person.ins.value
    )
    socle.attach("Statut de l'identité", f"{person.display_name} : {status.label}")
    if status is IdentityStatus.QUALIFIED:
        raise AssertionError(
            f"précondition : l'identité de {person.display_name} est déjà qualifiée dans cette campagne"
        )


# When --------------------------------------------------------------------------------------------
@when("le DUI recherche l'INS de la personne par ses traits d'identité")
@when("the DUI searches the person's INS by identity traits")
def search(socle: ScenarioContext, insi_scene: InsiScene) -> None:
    traits = _traits(socle, insi_scene)
    action = InsiSearch(
        traits=traits, establishment=socle.require_establishment(), client_certificate=insi_scene.certificate
    )
    _drive(socle, f"recherche INSi de {traits.birth_name} {' '.join(traits.first_names)}", "search_ins", action)


@when("le DUI vérifie l'INS de la personne auprès du téléservice INSi")
@when("the DUI verifies the person's INS with the INSi teleservice")
def verify(socle: ScenarioContext, insi_scene: InsiScene) -> None:
    traits = _traits(socle, insi_scene)
    if insi_scene.held_ins is not None:
        ins, oid = insi_scene.held_ins
    else:
        person = socle.require_person()
        ins, oid = person.ins.value, person.ins.oid
    action = InsiVerify(
        traits=traits,
        ins=ins,
        oid=oid,
        establishment=socle.require_establishment(),
        client_certificate=insi_scene.certificate,
    )
    _drive(socle, f"vérification INSi de l'INS {ins}", "verify_ins", action)


@when("le DUI qualifie l'identité de la personne auprès du téléservice INSi")
@when("the DUI qualifies the person's identity with the INSi teleservice")
def qualify(socle: ScenarioContext, insi_scene: InsiScene) -> None:
    traits = _traits(socle, insi_scene)
    action = InsiSearch(
        traits=traits, establishment=socle.require_establishment(), client_certificate=insi_scene.certificate
    )
    _drive(
        socle,
        f"qualification de l'identité de {traits.birth_name} {' '.join(traits.first_names)}",
        "qualify_identity",
        action,
    )


@when(parsers.parse("le DUI qualifie l'identité de la personne sur présentation de sa pièce d'identité \"{document}\""))
@when(parsers.parse('the DUI qualifies the person\'s identity on presentation of the identity document "{document}"'))
def qualify_with_document(socle: ScenarioContext, insi_scene: InsiScene, document: str) -> None:
    """RNIV qualification: the person presents a high-trust document (FR Core code or label), the DUI's user checks
    the traits against it, and the DUI obtains the INS from INSi."""
    kind = document_kind(document)
    if kind is None:
        raise ValueError(f"pièce d'identité inconnue : {document!r} ({', '.join(HIGH_TRUST_DOCUMENTS)})")
    traits = _traits(socle, insi_scene)
    action = InsiSearch(
        traits=traits,
        establishment=socle.require_establishment(),
        client_certificate=insi_scene.certificate,
        identity_document=kind,
    )
    _drive(
        socle,
        f"qualification de l'identité sur présentation : {HIGH_TRUST_DOCUMENTS[kind]}",
        "qualify_identity",
        action,
    )


@when(
    parsers.parse(
        'le DUI envoie le document "{kind}" de la personne à l\'adresse "{address}" par MSSanté en s\'assurant que son identité est qualifiée'
    )
)
@when(
    parsers.parse(
        'the DUI sends the person\'s "{kind}" document to "{address}" by MSSanté making sure the identity is qualified'
    )
)
def send_qualified(socle: ScenarioContext, kind: str, address: str) -> None:
    person = socle.require_person()
    action = MssanteSend(
        person=person, establishment=socle.require_establishment(), document_kind=kind, recipients=(address,)
    )
    _drive(
        socle,
        f"envoi MSSanté {kind} de {person.display_name} à {address} (identité qualifiée)",
        "send_mssante_qualified",
        action,
    )


# Then --------------------------------------------------------------------------------------------
@then("le téléservice INSi reçoit un appel conforme avec les contextes ContexteBAM et ContexteLPS")
@then("the INSi teleservice receives a valid call with the ContexteBAM and ContexteLPS contexts")
def valid_call(socle: ScenarioContext) -> None:
    problems: list[str] = []
    for exchange in _calls(socle):
        details = exchange.details
        if exchange.outcome is Outcome.REJECTED:
            problems.append(f"appel refusé : {exchange.error_code} {exchange.error_message}")
            continue
        if details.get("client_cn") not in INSI_CERTIFICATES:
            problems.append(f"certificat client {details.get('client_cn')!r} au lieu d'INSI-AUTO / INSI-MANU")
        lps = details.get("lps") or {}
        missing = [k for k in ("idam", "nom", "version", "instance") if not lps.get(k)]
        if missing or not details.get("bam"):
            problems.append(
                f"contextes incomplets (ContexteBAM {'présent' if details.get('bam') else 'absent'}, LPS sans {missing})"
            )
        errors = [f["code"] for f in details.get("findings", []) if f["severity"] == "error"]
        if errors:
            problems.append("anomalies : " + ", ".join(errors))
    if problems:
        raise AssertionError("appel INSi non conforme : " + " ; ".join(problems))


@then(parsers.parse('le téléservice INSi répond "{cr}" avec l\'INS de la personne'))
@then(parsers.parse('the INSi teleservice answers "{cr}" with the person\'s INS'))
def answers_with_person_ins(socle: ScenarioContext, cr: str) -> None:
    answers = _answers(socle)
    if not answers:
        raise AssertionError("le téléservice INSi n'a renvoyé aucune réponse (seulement des fautes)")
    last = answers[-1]
    if last.details.get("cr") != cr:
        raise AssertionError(f"CR {cr} attendu, reçu CR {last.details.get('cr')}")
    person = socle.require_person()
    if _returned_ins(last) != person.ins.value:
        raise AssertionError(f"INS renvoyé {_returned_ins(last)}, attendu {person.ins.value}")


@then('le téléservice INSi répond "01" sans identité')
@then('the INSi teleservice answers "01" with no identity')
def answers_no_identity(socle: ScenarioContext) -> None:
    answers = _answers(socle)
    if not answers or any(e.details.get("cr") != "01" for e in answers):
        raise AssertionError(f"CR 01 attendu, reçu {[e.details.get('cr') for e in answers] or 'aucune réponse'}")


@then('le téléservice INSi répond d\'abord "02" (plusieurs identités)')
@then('the INSi teleservice first answers "02" (several identities)')
def answers_several_first(socle: ScenarioContext) -> None:
    answers = _answers(socle)
    if not answers or answers[0].details.get("cr") != "02":
        raise AssertionError(
            f"CR 02 attendu en premier, reçu {[e.details.get('cr') for e in answers] or 'aucune réponse'}"
        )


@then("le DUI affine la recherche avec le lieu de naissance et obtient une identité unique")
@then("the DUI refines the search with the birth place and gets a single identity")
def refined_with_place(socle: ScenarioContext) -> None:
    answers = _answers(socle)
    later = [e for e in answers[1:] if (e.details.get("request") or {}).get("lieu_naissance")]
    if not later:
        raise AssertionError("le DUI n'a pas relancé la recherche avec le lieu de naissance après le CR 02")
    if later[-1].details.get("cr") != "00":
        raise AssertionError(f"la recherche affinée donne CR {later[-1].details.get('cr')}, CR 00 attendu")


@then("le DUI enregistre l'INS renvoyé par le téléservice")
@then("the DUI records the INS returned by the teleservice")
def dui_records_returned_ins(socle: ScenarioContext) -> None:
    found = [e for e in _answers(socle) if e.details.get("cr") == "00"]
    if not found:
        raise AssertionError("le téléservice INSi n'a renvoyé aucun INS")
    expected = _returned_ins(found[-1])
    _dui_report(socle)
    socle.dui_shows(
        f"Le DUI a-t-il enregistré l'INS {expected} renvoyé par le téléservice ?",
        lambda data: (
            None
            if data.get("ins") == expected
            else f"le DUI indique l'INS {data.get('ins')!r}, le téléservice a renvoyé {expected}"
        ),
    )


@then("le DUI n'attribue pas d'INS à la personne")
@then("the DUI assigns no INS to the person")
def dui_assigns_no_ins(socle: ScenarioContext) -> None:
    _dui_report(socle)
    socle.dui_shows(
        "Le DUI laisse-t-il la personne sans INS ?",
        lambda data: (
            None
            if not data.get("ins")
            else f"le DUI a attribué l'INS {data['ins']} alors qu'INSi n'a renvoyé aucune identité"
        ),
    )


@then("le téléservice INSi renvoie une identité provisoire (NIA)")
@then("the INSi teleservice returns a provisional identity (NIA)")
def returns_nia(socle: ScenarioContext) -> None:
    answers = [e for e in _answers(socle) if e.details.get("cr") == "00"]
    if not answers or (answers[-1].details.get("ins") or {}).get("oid") != OID_INS_NIA:
        raise AssertionError(f"identité NIA (OID {OID_INS_NIA}) attendue dans la réponse INSi")


@then("le DUI conserve l'identité au statut provisoire sans utiliser le NIA comme INS")
@then("the DUI keeps the identity provisional without using the NIA as an INS")
def keeps_provisional(socle: ScenarioContext) -> None:
    _dui_report(socle)
    socle.dui_shows(
        "L'identité reste-t-elle au statut provisoire, sans INS, dans le DUI ?",
        lambda data: (
            None
            if not data.get("ins") and data.get("statut") == "provisoire"
            else f"le DUI utilise le NIA comme INS (INS {data.get('ins')!r}, statut {data.get('statut')!r})"
        ),
    )


@then("le téléservice INSi renvoie un INS actif différent, avec l'INS enregistré par le DUI dans son historique")
@then("the INSi teleservice returns a different active INS, with the DUI's INS in its history")
def returns_history(socle: ScenarioContext, insi_scene: InsiScene) -> None:
    if insi_scene.held_ins is None:
        raise AssertionError("étape « le DUI a enregistré pour la personne l'INS ... » manquante")
    held = insi_scene.held_ins[0]
    answers = [e for e in _answers(socle) if e.details.get("cr") == "00"]
    if not answers:
        raise AssertionError("le téléservice INSi n'a renvoyé aucun INS")
    first = answers[0]
    history = [h["value"] for h in first.details.get("history", [])]
    if _returned_ins(first) == held or held not in history:
        raise AssertionError(
            f"INS actif {_returned_ins(first)} et historique {history} : l'INS {held} devait être dans l'historique"
        )


@then("le DUI remplace l'INS enregistré par l'INS actif renvoyé par le téléservice")
@then("the DUI replaces the INS it held with the active INS returned by the teleservice")
def replaces_with_active(socle: ScenarioContext) -> None:
    answers = [e for e in _answers(socle) if e.details.get("cr") == "00"]
    if not answers:
        raise AssertionError("le téléservice INSi n'a renvoyé aucun INS")
    active = _returned_ins(answers[0])
    _dui_report(socle)
    socle.dui_shows(
        f"Le DUI affiche-t-il maintenant l'INS actif {active} ?",
        lambda data: (
            None
            if data.get("ins") == active
            else f"le DUI garde l'INS {data.get('ins')!r} au lieu de l'INS actif {active}"
        ),
    )


def _status_target(socle: ScenarioContext) -> str:
    if socle.person is not None:
        return socle.person.ins.value
    returned = [_returned_ins(e) for e in _answers(socle) if _returned_ins(e)]
    if not returned:
        raise AssertionError("aucun INS renvoyé par INSi : pas de statut à examiner")
    return str(returned[-1])


def _evidence(socle: ScenarioContext) -> IdentityEvidence:
    """The RNIV evidence for the person's INS: INSi answers and document checks journaled for this DUI in this run;
    in observe-only mode, the document check comes from the TDDUI export (FR Core identityReliability), else the
    status is « non vérifiable »."""
    ins = _status_target(socle)
    essms = _establishment_finess(socle)
    _operator_document_check(socle, ins)
    window = socle.observation()
    if window is None:
        return identity_evidence(socle.env.journal, run_id=socle.env.run_id, essms=essms, ins_value=ins)
    evidence = identity_evidence(socle.env.journal, run_id=None, essms=essms, ins_value=ins)
    if evidence.document is None:
        document = tddui_document(socle.env.journal, essms=essms, ins_value=ins)
        if document is None:
            not_observable(
                f"contrôle de la pièce d'identité de l'INS {ins} (RNIV) : non vérifiable, aucun export TDDUI ne le dit"
            )
        check = document_check_exchange(
            essms=essms, ins_value=ins, document=document, reported_status=None, source="tddui"
        )
        evidence = IdentityEvidence(evidence.insi_exchanges, (check,), evidence.nia)
    return evidence


def _status(socle: ScenarioContext) -> IdentityStatus:
    evidence = _evidence(socle)
    socle.attach(
        "Statut de l'identité (RNIV, d'après le journal)", f"INS {_status_target(socle)} : {evidence.describe()}"
    )
    return evidence.status


@then(parsers.parse('l\'identité de la personne est au statut "{label}" pour le DUI'))
@then(parsers.parse('the person\'s identity has the status "{label}" for the DUI'))
def status_is(socle: ScenarioContext, label: str) -> None:
    expected = IdentityStatus.from_label(label)
    status = _status(socle)
    if status is not expected:
        raise AssertionError(f"statut {status.label}, attendu {expected.label}")


@then(parsers.parse('l\'identité de la personne est au moins au statut "{label}" pour le DUI'))
@then(parsers.parse('the person\'s identity has at least the status "{label}" for the DUI'))
def status_at_least(socle: ScenarioContext, label: str) -> None:
    expected = IdentityStatus.from_label(label)
    status = _status(socle)
    if not status.includes(expected):
        raise AssertionError(f"statut {status.label}, au moins {expected.label} attendu")


@then("le téléservice INSi a renvoyé l'INS de la personne au DUI")
@then("the INSi teleservice returned the person's INS to the DUI")
def insi_returned_person_ins(socle: ScenarioContext) -> None:
    """RNIV: the INS was retrieved or verified through INSi (one answer suffices)."""
    ins = socle.require_person().ins.value
    calls = socle.exchanges_since_action(SERVICE) if socle.observation() is None else _calls(socle)
    for exchange in calls:
        socle.attach("Échange INSi", _describe(exchange), exchange)
    returning = [e for e in calls if (insi_returned(e) or ("", ""))[0] == ins]
    if not returning:
        raise AssertionError(f"aucune réponse INSi n'a renvoyé l'INS {ins} au DUI après son action")


@then(parsers.parse('le DUI a contrôlé la pièce d\'identité "{document}" de la personne'))
@then(parsers.parse('the DUI checked the person\'s identity document "{document}"'))
def document_checked(socle: ScenarioContext, document: str) -> None:
    kind = document_kind(document)
    ins = socle.require_person().ins.value
    _operator_document_check(socle, ins)
    checks = [
        e
        for e in socle.exchanges_since_action(DOCUMENT_SERVICE, DOCUMENT_OPERATION)
        if e.person == ins and e.outcome is Outcome.ACCEPTED
    ]
    kinds = [e.details.get("document") for e in checks]
    if kind not in kinds:
        report = socle.last_action.data.get("piece_identite") if socle.last_action else None
        raise AssertionError(
            f"le DUI ne déclare pas avoir contrôlé la pièce {kind} (contrôles déclarés : {kinds or 'aucun'} ; "
            f"piece_identite rapportée : {report!r})"
        )


@then("le DUI affiche le statut d'identité établi d'après le journal")
@then("the DUI shows the identity status established from the journal")
def dui_status_matches(socle: ScenarioContext) -> None:
    """What the DUI calls the identity must be what the evidence supports (RNIV: no « qualifiée » without INSi and
    without a document check)."""
    evidence = _evidence(socle)
    expected = evidence.status.label
    socle.attach("Statut de l'identité (RNIV, d'après le journal)", evidence.describe())
    socle.dui_shows(
        f"Le DUI affiche-t-il l'identité au statut « {expected} » ?",
        lambda data: (
            None
            if data.get("statut") == expected
            else f"le DUI affiche l'identité « {data.get('statut')} », le journal établit « {evidence.describe()} »"
        ),
    )


@then("le DUI refuse d'envoyer par MSSanté l'INS d'une identité non qualifiée")
@then("the DUI refuses to send the INS of an unqualified identity by MSSanté")
def refuses_unqualified_sending(socle: ScenarioContext) -> None:
    sent = [e for e in socle.exchanges_since_action("mssante", "smtp.submit") if e.outcome is Outcome.ACCEPTED]
    for exchange in sent:
        flagged = [f["message"] for f in exchange.details.get("findings", []) if f["code"] == "INS-NON-QUALIFIE"]
        socle.attach("Message MSSanté envoyé", "; ".join(flagged) or "INS qualifié", exchange)
        if flagged:
            raise AssertionError("le DUI a envoyé par MSSanté l'INS d'une identité non qualifiée : " + flagged[0])
    if socle.dui_reported_success("Le DUI a-t-il envoyé le document malgré l'identité non qualifiée ?"):
        raise AssertionError("le DUI indique avoir envoyé le document alors que l'identité n'est pas qualifiée")


@then(parsers.parse('le téléservice INSi refuse l\'appel avec la faute "{code}"'))
@then(parsers.parse('the INSi teleservice rejects the call with the fault "{code}"'))
def rejected_with(socle: ScenarioContext, code: str) -> None:
    calls = _calls(socle)
    codes = [e.error_code for e in calls if e.outcome is Outcome.REJECTED]
    if code not in codes:
        raise AssertionError(f"faute {code} attendue, observé : {codes or [e.details.get('cr') for e in calls]}")


@then(parsers.parse('les traits sont refusés, par le DUI ou par le téléservice INSi avec la faute "{code}"'))
@then(parsers.parse('the traits are refused, by the DUI or by the INSi teleservice with the fault "{code}"'))
def traits_refused(socle: ScenarioContext, code: str) -> None:
    """Traits outside the INSi rules never get an answer: the DUI checks them itself (no call) or INSi refuses them."""
    calls = socle.exchanges_since_action(SERVICE)
    for exchange in calls:
        socle.attach("Échange INSi", _describe(exchange), exchange)
    answered = [e for e in calls if e.outcome is Outcome.ACCEPTED]
    if answered:
        raise AssertionError(
            f"le téléservice INSi a répondu CR {answered[-1].details.get('cr')} à des traits invalides"
        )
    other = [e.error_code for e in calls if e.error_code != code]
    if other:
        raise AssertionError(f"faute {code} attendue, observé : {other}")


@then("le DUI signale l'échec de l'appel INSi à l'utilisateur")
@then("the DUI reports the INSi call failure to its user")
def dui_reports_insi_failure(socle: ScenarioContext) -> None:
    if socle.dui_reported_success("Le DUI a-t-il indiqué que la recherche INSi avait abouti ?"):
        report = socle.last_action
        hidden = report.data.get("hidden_failure", "") if report else ""
        raise AssertionError(
            f"le DUI présente l'appel INSi comme abouti alors que le téléservice l'a refusé {hidden}".strip()
        )


@then("la messagerie MSSanté ne relève aucun INS non qualifié")
@then("le simulateur MSSanté ne relève aucun INS non qualifié")
@then("the MSSanté simulator finds no unqualified INS")
def no_unqualified_ins(socle: ScenarioContext) -> None:
    found = [e for e in socle.exchanges_since_action("mssante", "smtp.submit") if e.outcome is Outcome.ACCEPTED]
    if not found:
        raise AssertionError("aucun message MSSanté accepté à examiner")
    for exchange in found:
        flagged = [f for f in exchange.details.get("findings", []) if f["code"] == "INS-NON-QUALIFIE"]
        socle.attach(
            "Contrôle INS du message MSSanté", "; ".join(f["message"] for f in flagged) or "INS qualifié", exchange
        )
        if flagged:
            raise AssertionError(flagged[0]["message"])
