"""DMP steps: make the DUI feed, replace, mask, find and retrieve documents, then judge what the DMP simulator
journaled (ITI-41 ``iti41.provide_and_register``, ITI-18, ITI-43, ITI-57, TD0.2)."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from harness.core.journal import Exchange, JournalFilter, Outcome
from harness.host.simulator import Fault
from harness.runtime.environment import ScenarioContext
from harness.sut.base import DmpFeed, DmpQuery, DmpUpdate

SERVICE = "dmp"
FEED = "iti41.provide_and_register"
FIND = "iti18.registry_stored_query"
RETRIEVE = "iti43.retrieve_document_set"
UPDATE = "iti57.update_document_set"


@pytest.fixture
def dmp_documents() -> list[dict[str, str]]:
    """The documents the DUI reported as fed during this scenario (uniqueId, entryUUID), oldest first."""
    return []


def _describe(exchange: Exchange) -> str:
    lines = [f"{exchange.operation} {exchange.outcome} (échange {exchange.id})"]
    if exchange.error_code:
        lines.append(f"erreur: {exchange.error_code} {exchange.error_message}")
    for finding in exchange.details.get("findings", []):
        lines.append(f"- {finding['severity']} {finding['code']}: {finding['message']}")
    return "\n".join(lines)


def _simulator(socle: ScenarioContext):  # noqa: ANN202 - mock_services.dmp.DMPSimulator
    return socle.simulator(SERVICE)


def _since_action(socle: ScenarioContext, operation: str) -> list[Exchange]:
    found = socle.exchanges_since_action(SERVICE, operation)
    for exchange in found:
        socle.attach("Échange DMP", _describe(exchange), exchange)
    if not found:
        raise AssertionError(f"aucune requête {operation} reçue par le simulateur DMP après l'action du DUI")
    return found


def _in_scenario(socle: ScenarioContext, operation: str) -> list[Exchange]:
    return socle.env.journal.query(
        JournalFilter(service=SERVICE, operation=operation, run_id=socle.env.run_id, scenario_id=socle.scenario_id)
    )


def _last_document(dmp_documents: list[dict[str, str]]) -> dict[str, str]:
    if not dmp_documents:
        raise AssertionError("le DUI n'a signalé aucun document versé au DMP dans ce scénario")
    return dmp_documents[-1]


def _feed(socle: ScenarioContext, dmp_documents: list[dict[str, str]], kind: str, replaces: str | None = None) -> None:
    person = socle.require_person()
    action = DmpFeed(person=person, establishment=socle.require_establishment(), document_kind=kind, replaces=replaces)
    label = f"{'remplacement' if replaces else 'versement'} DMP {kind} de {person.display_name}"
    result = socle.act(label, lambda: socle.sut.dmp_feed(action))
    if result.reported_success and result.data.get("unique_id"):
        dmp_documents.append({"unique_id": result.data["unique_id"], "entry_uuid": result.data.get("entry_uuid", "")})


# Given -------------------------------------------------------------------------------------------
@given("la personne a un DMP actif qui autorise l'ESSMS")
@given("the person has an active DMP that authorises the establishment")
def active_dmp(socle: ScenarioContext) -> None:
    from mock_services.dmp.store import Authorisation, DmpState

    person = socle.require_person()
    _simulator(socle).set_person(person.ins.value, state=DmpState.ACTIVE, authorisation=Authorisation.VALID)
    socle.attach("DMP", f"DMP actif, autorisation VALIDE pour {person.display_name}")


@given("le DMP de la personne est fermé")
@given("the person's DMP is closed")
def closed_dmp(socle: ScenarioContext) -> None:
    from mock_services.dmp.store import DmpState

    person = socle.require_person()
    _simulator(socle).set_person(person.ins.value, state=DmpState.CLOSED)
    socle.attach("DMP", f"DMP fermé pour {person.display_name}")


@given("le DMP refusera le prochain versement : DMP fermé entre-temps")
@given("the DMP will refuse the next feed: DMP closed in the meantime")
def closed_on_next(socle: ScenarioContext) -> None:
    socle.inject_fault(SERVICE, Fault("dmp.closed", remaining=1))
    socle.attach("Panne simulée", "prochaine requête DMP: DMPClosed")


@given(parsers.parse('le DMP répondra à la prochaine requête par une faute SOAP "{reason}"'))
@given(parsers.parse('the DMP will answer the next request with a SOAP fault "{reason}"'))
def soap_fault_next(socle: ScenarioContext, reason: str) -> None:
    socle.inject_fault(SERVICE, Fault("dmp.soap_fault", {"code": "Receiver", "reason": reason}))
    socle.attach("Panne simulée", f"prochaine requête DMP: faute SOAP {reason}")


@given("le DMP refuse les INS de production")
@given("the DMP refuses production INS")
def refuse_production_ins(socle: ScenarioContext, request: pytest.FixtureRequest) -> None:
    from harness.fields.identity import ProductionInsPolicy

    simulator = _simulator(socle)
    previous = simulator.production_ins
    simulator.production_ins = ProductionInsPolicy.REFUSE
    request.addfinalizer(lambda: setattr(simulator, "production_ins", previous))
    socle.attach("DMP", 'politique INS de production : « refuse » (production_ins = "refuse") pour ce scénario')


# When --------------------------------------------------------------------------------------------
@when(parsers.parse('le DUI verse le document "{kind}" de la personne dans son DMP'))
@when(parsers.parse('the DUI feeds the person\'s DMP with the "{kind}" document'))
def feed(socle: ScenarioContext, dmp_documents: list[dict[str, str]], kind: str) -> None:
    _feed(socle, dmp_documents, kind)


@when(parsers.parse('le DUI remplace ce document dans le DMP par une nouvelle version "{kind}"'))
@when(parsers.parse('the DUI replaces this document in the DMP with a new "{kind}" version'))
def replace_document(socle: ScenarioContext, dmp_documents: list[dict[str, str]], kind: str) -> None:
    _feed(socle, dmp_documents, kind, replaces=_last_document(dmp_documents)["unique_id"])


@when("le DUI masque ce document aux professionnels dans le DMP")
@when("the DUI masks this document from professionals in the DMP")
def mask(socle: ScenarioContext, dmp_documents: list[dict[str, str]]) -> None:
    document = _last_document(dmp_documents)
    action = DmpUpdate(socle.require_person(), socle.require_establishment(), document["unique_id"], "masquer")
    socle.act(f"masquage du document {document['unique_id']}", lambda: socle.sut.dmp_update(action))


@when("le DUI recherche les documents de la personne dans le DMP")
@when("the DUI searches the person's documents in the DMP")
def find(socle: ScenarioContext) -> None:
    action = DmpQuery(socle.require_person(), socle.require_establishment())
    socle.act("recherche des documents du DMP", lambda: socle.sut.dmp_find(action))


@when("le DUI récupère ce document dans le DMP")
@when("the DUI retrieves this document from the DMP")
def retrieve(socle: ScenarioContext, dmp_documents: list[dict[str, str]]) -> None:
    document = _last_document(dmp_documents)
    action = DmpQuery(socle.require_person(), socle.require_establishment(), unique_id=document["unique_id"])
    socle.act(f"récupération du document {document['unique_id']}", lambda: socle.sut.dmp_retrieve(action))


# Then --------------------------------------------------------------------------------------------
@then("le DMP accepte le document")
@then("the DMP accepts the document")
def accepted(socle: ScenarioContext) -> None:
    found = _since_action(socle, FEED)
    refused = [e for e in found if e.outcome is Outcome.REJECTED]
    if refused:
        raise AssertionError(
            "le DMP a refusé le document: " + "; ".join(f"{e.error_code} {e.error_message}" for e in refused)
        )


@then(parsers.parse('le DMP refuse le document avec l\'erreur "{code}"'))
@then(parsers.parse('the DMP rejects the document with the error "{code}"'))
def rejected_with(socle: ScenarioContext, code: str) -> None:
    found = _since_action(socle, FEED)
    codes = [f["code"] for e in found if e.outcome is Outcome.REJECTED for f in e.details.get("findings", [])] + [
        e.error_code or "" for e in found if e.outcome is Outcome.REJECTED
    ]
    if code not in codes:
        raise AssertionError(f"refus attendu avec l'erreur {code}, observé: {sorted(set(codes)) or 'document accepté'}")


@then("le lot versé contient le document de signature XAdES relié au lot")
@then("the submission holds the XAdES signature document linked to the submission set")
def signature_present(socle: ScenarioContext) -> None:
    exchange = _accepted_feed(socle)
    types = [d.get("typeCode") for d in exchange.details.get("documents", [])]
    socle.attach("Documents du lot", ", ".join(str(t) for t in types))
    if "E1762" not in types:
        raise AssertionError(f"aucun document de signature (typeCode E1762) dans le lot accepté: {types}")


@then("le patientId transmis au DMP est l'INS de la personne avec une clé valide")
@then("the patientId sent to the DMP is the person's INS with a valid key")
def patient_id_is_ins(socle: ScenarioContext) -> None:
    exchange = _accepted_feed(socle)
    person = socle.require_person()
    if exchange.person != person.ins.value:
        raise AssertionError(f"le DMP a rattaché le versement à {exchange.person}, attendu l'INS {person.ins.value}")


def _accepted_feed(socle: ScenarioContext) -> Exchange:
    found = [e for e in _since_action(socle, FEED) if e.outcome is Outcome.ACCEPTED]
    if not found:
        raise AssertionError("aucun versement accepté par le DMP")
    return found[-1]


@then("le DUI indique que le document est versé au DMP")
@then("the DUI reports the document as fed to the DMP")
def dui_reports_fed(socle: ScenarioContext) -> None:
    socle.dui_shows(
        "Le DUI indique-t-il que le document est versé au DMP ?",
        lambda data: (
            None if socle.last_action.reported_success else f"le DUI n'indique pas le versement: {socle.last_action}"
        ),
    )


@then("le DUI signale que le DMP de la personne est fermé")
@then("the DUI reports that the person's DMP is closed")
def dui_reports_closed(socle: ScenarioContext) -> None:
    def check(data: dict) -> str | None:
        result = socle.last_action
        if result.reported_success:
            return f"le DUI indique « versé » alors que le DMP de la personne est fermé {data.get('hidden_failure', '')}".strip()
        socle.attach("Message du DUI", result.detail)
        if "fermé" not in result.detail and "DMPClosed" not in result.detail:
            return f"le DUI signale un échec sans dire que le DMP est fermé: {result.detail}"
        return None

    socle.dui_shows("Le DUI signale-t-il que le DMP de la personne est fermé (document non versé) ?", check)


@then("le DUI signale le refus du DMP")
@then("the DUI reports the DMP's refusal")
def dui_reports_refusal(socle: ScenarioContext) -> None:
    socle.dui_shows(
        "Le DUI signale-t-il que le DMP a refusé le document ?",
        lambda data: (
            f"le DUI indique un succès alors que le DMP a refusé {data.get('hidden_failure', '')}".strip()
            if socle.last_action.reported_success
            else None
        ),
    )


@then("aucun document n'est versé au DMP pour la personne")
@then("no document is fed to the person's DMP")
def nothing_fed(socle: ScenarioContext) -> None:
    person = socle.require_person()
    accepted_feeds = [
        e for e in _in_scenario(socle, FEED) if e.outcome is Outcome.ACCEPTED and e.person == person.ins.value
    ]
    socle.attach("Journal", f"{len(accepted_feeds)} versement(s) accepté(s) pour {person.display_name}")
    if accepted_feeds:
        raise AssertionError(f"{len(accepted_feeds)} document(s) versé(s) alors que le DMP est fermé")


@then("le DMP a remplacé le document initial par la nouvelle version")
@then("the DMP replaced the initial document with the new version")
def replaced(socle: ScenarioContext, dmp_documents: list[dict[str, str]]) -> None:
    if len(dmp_documents) < 2:
        raise AssertionError("le DUI n'a pas signalé deux versions du document")
    exchange = _accepted_feed(socle)
    targets = set(exchange.details.get("replaced", {}).values())
    socle.attach("Remplacement", f"documents remplacés: {sorted(targets) or 'aucun'}")
    if dmp_documents[-2]["entry_uuid"] not in targets:
        raise AssertionError(
            f"le versement n'a remplacé aucun document (association RPLC vers {dmp_documents[-2]['entry_uuid']} absente)"
        )


@then("le DMP accepte la mise à jour du document")
@then("the DMP accepts the document update")
def update_accepted(socle: ScenarioContext) -> None:
    found = _since_action(socle, UPDATE)
    refused = [e for e in found if e.outcome is Outcome.REJECTED]
    if refused:
        raise AssertionError(
            "le DMP a refusé la mise à jour: " + "; ".join(f"{e.error_code} {e.error_message}" for e in refused)
        )


@then("le document est masqué aux professionnels dans le DMP")
@then("the document is masked from professionals in the DMP")
def masked(socle: ScenarioContext, dmp_documents: list[dict[str, str]]) -> None:
    document = _last_document(dmp_documents)
    changes = [
        c for e in _since_action(socle, UPDATE) if e.outcome is Outcome.ACCEPTED for c in e.details.get("changes", [])
    ]
    codes = [
        code for c in changes if c.get("document") == document["unique_id"] for code in c.get("confidentiality", [])
    ]
    socle.attach("Confidentialité", ", ".join(codes) or "inchangée")
    if "MASQUE_PS" not in codes:
        raise AssertionError(
            f"le document {document['unique_id']} n'est pas masqué aux professionnels (codes: {codes or 'aucun'})"
        )


@then("la recherche dans le DMP renvoie le document versé")
@then("the DMP search returns the fed document")
def search_returns(socle: ScenarioContext, dmp_documents: list[dict[str, str]]) -> None:
    document = _last_document(dmp_documents)
    found = _since_action(socle, FIND)
    refused = [e for e in found if e.outcome is Outcome.REJECTED]
    if refused:
        raise AssertionError(
            "le DMP a refusé la recherche: " + "; ".join(f"{e.error_code} {e.error_message}" for e in refused)
        )
    results = [r for e in found for r in e.details.get("results", [])]
    if document["unique_id"] not in results:
        raise AssertionError(f"la recherche n'a pas renvoyé le document {document['unique_id']} (résultats: {results})")


@then("le document récupéré est identique au document versé")
@then("the retrieved document is identical to the fed document")
def retrieved_identical(socle: ScenarioContext, dmp_documents: list[dict[str, str]]) -> None:
    document = _last_document(dmp_documents)
    found = [e for e in _since_action(socle, RETRIEVE) if e.outcome is Outcome.ACCEPTED]
    if not any(document["unique_id"] in e.details.get("retrieved", []) for e in found):
        raise AssertionError(f"le DMP n'a pas renvoyé le document {document['unique_id']}")
    socle.dui_shows(
        "Le document affiché par le DUI est-il identique à celui qu'il a versé ?",
        lambda data: (
            None
            if socle.last_action.reported_success and data.get("identical", False)
            else f"le DUI n'a pas récupéré un document identique à celui qu'il a versé: {socle.last_action}"
        ),
    )


@then(
    parsers.re(r'le journal compte (?P<n>\d+) documents? versés? au DMP pour la personne "(?P<ref>[^"]+)"'),
    converters={"n": int},
)
@then(
    parsers.re(r'the journal counts (?P<n>\d+) documents? fed to the DMP for the person "(?P<ref>[^"]+)"'),
    converters={"n": int},
)
def count_fed(socle: ScenarioContext, n: int, ref: str) -> None:
    person = socle.env.testdata.person(ref)
    flt = JournalFilter(
        service=SERVICE,
        operation=FEED,
        outcome=Outcome.ACCEPTED,
        person=person.ins.value,
        run_id=socle.env.run_id,
        scenario_id=socle.scenario_id,
    )
    got = socle.env.journal.count(flt)
    socle.attach("Journal", f"{got} versement(s) DMP accepté(s) pour {person.display_name}")
    if got != n:
        raise AssertionError(f"{got} versement(s) DMP compté(s) pour {person.display_name}, attendu {n}")


def _no_finding(socle: ScenarioContext, exchange: Exchange, codes: tuple[str, ...], what: str) -> None:
    found = [f for f in exchange.details.get("findings", []) if f["code"].startswith(codes)]
    if found:
        raise AssertionError(f"{what}: " + "; ".join(f"{f['code']} {f['message']}" for f in found))


@then("le document est déclaré au DMP comme document CDA R2")
@then("the document is declared to the DMP as a CDA R2 document")
def declared_cda(socle: ScenarioContext) -> None:
    exchange = _accepted_feed(socle)
    kinds = [v.get("kind") for v in exchange.details.get("validation", [])]
    mimes = [d.get("mimeType") for d in exchange.details.get("documents", []) if d.get("typeCode") != "E1762"]
    socle.attach("Documents du lot", f"mimeType {mimes}, vérifiés comme {kinds}")
    if not mimes or any(m != "text/xml" for m in mimes) or "cda" not in kinds:
        raise AssertionError(f"document déclaré {mimes} au lieu de text/xml (CDA R2)")


@then("le DMP a lié la consultation au patient du VIHF")
@then("the DMP bound the query to the VIHF patient")
def bound_to_vihf(socle: ScenarioContext) -> None:
    person = socle.require_person()
    for exchange in _since_action(socle, FIND):
        pair = (exchange.details.get("vihf_patient"), exchange.details.get("requested_patient"))
        if exchange.outcome is not Outcome.ACCEPTED or pair != (person.ins.to_xds(), person.ins.to_xds()):
            raise AssertionError(
                f"recherche {exchange.outcome} : VIHF pour {pair[0]}, patient demandé {pair[1]} "
                f"(attendu {person.ins.to_xds()} des deux côtés)"
            )


@then("le journal rattache le versement à l'ESSMS authentifié")
@then("the journal attaches the feed to the authenticated establishment")
def authenticated_essms(socle: ScenarioContext) -> None:
    exchange = _accepted_feed(socle)
    finess = socle.require_establishment().finess
    socle.attach("Structure", f"journal: {exchange.essms}, authentifiée: {exchange.details.get('structure')}")
    if exchange.essms != finess or exchange.details.get("structure") != finess:
        raise AssertionError(
            f"versement rattaché à {exchange.essms} (structure authentifiée {exchange.details.get('structure')}), attendu {finess}"
        )
    _no_finding(
        socle, exchange, ("DMP-AUTEUR-STRUCTURE",), "structure déclarée différente de la structure authentifiée"
    )


@then("le versement a été transmis en MTOM")
@then("the feed was sent with MTOM")
def sent_with_mtom(socle: ScenarioContext) -> None:
    exchange = _accepted_feed(socle)
    if exchange.details.get("mtom") is not True:
        raise AssertionError("versement ITI-41 reçu sans MTOM/XOP (IHE ITI TF-2b §3.41)")
    _no_finding(socle, exchange, ("MTOM-",), "MTOM")


@then("aucun INS de production n'est transmis au DMP")
@then("no production INS is sent to the DMP")
def no_production_ins(socle: ScenarioContext) -> None:
    for exchange in socle.exchanges_since_action(SERVICE):
        _no_finding(socle, exchange, ("INS-PRODUCTION",), f"{exchange.operation}: INS de production transmis au DMP")


@then("les codes du versement sont dans les jeux de valeurs du DMP")
@then("the codes of the feed are in the DMP value sets")
def codes_in_value_sets(socle: ScenarioContext) -> None:
    exchange = _accepted_feed(socle)
    found = [f for f in exchange.details.get("findings", []) if "jeu de valeurs" in f["message"]]
    if found:
        raise AssertionError("; ".join(f["message"] for f in found))


@then("la signature du lot a été vérifiée par le DMP")
@then("the submission's signature was verified by the DMP")
def signature_verified(socle: ScenarioContext) -> None:
    exchange = _accepted_feed(socle)
    types = [d.get("typeCode") for d in exchange.details.get("documents", [])]
    if "E1762" not in types:
        raise AssertionError("aucun document de signature (typeCode E1762) dans le lot")
    _no_finding(socle, exchange, ("DSG-",), "signature du lot")
