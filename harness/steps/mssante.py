"""MSSanté steps: make the DUI send, receive and acknowledge documents, then judge what the simulator recorded
(SMTP submissions, MDN receipts, IMAP authentications, directory searches, HL7 v2 relay exchanges)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import date

import pytest
from pytest_bdd import given, parsers, then, when

from harness.core.journal import Exchange, JournalFilter, Outcome
from harness.fields.identity import generate_test_ins
from harness.fields.testdata import Establishment, Person
from harness.host.simulator import Fault
from harness.runtime.environment import ScenarioContext
from harness.sut.base import DirectoryLookup, MssanteReceive, MssanteRelay, MssanteSend
from harness.sut.mssante_messages import build_message as build_multi_message
from harness.validators import Finding, Severity
from harness.validators.mssante_message import header_value, parse_message
from mock_services.mssante.directory import mailbox_from_mapping

SERVICE = "mssante"
SUBMIT = "smtp.submit"


def _describe(exchange: Exchange) -> str:
    lines = [f"{exchange.operation} {exchange.outcome} (échange {exchange.id})"]
    if exchange.error_code:
        lines.append(f"réponse: {exchange.error_code} {exchange.error_message}")
    for finding in exchange.details.get("findings", []):
        lines.append(f"- {finding['severity']} {finding['code']}: {finding['message']}")
    return "\n".join(lines)


def _send(socle: ScenarioContext, kind: str, recipients: tuple[str, ...], person_ref: str | None = None) -> None:
    person = socle.env.testdata.person(person_ref) if person_ref else socle.require_person()
    establishment = socle.establishment or socle.env.testdata.establishment(person.essms)
    action = MssanteSend(person=person, establishment=establishment, document_kind=kind, recipients=recipients)
    socle.act(
        f"envoi MSSanté {kind} de {person.display_name} à {', '.join(recipients)}",
        lambda: socle.sut.send_mssante(action),
    )


def _submissions(socle: ScenarioContext) -> list[Exchange]:
    found = socle.exchanges_since_action(SERVICE, SUBMIT)
    for exchange in found:
        socle.attach("Échange MSSanté", _describe(exchange), exchange)
    if not found:
        raise AssertionError("aucun message MSSanté reçu par le simulateur après l'action du DUI")
    return found


# Given -------------------------------------------------------------------------------------------
@given(parsers.parse('la messagerie MSSanté refusera le prochain message avec la réponse "{reply}"'))
@given(parsers.parse('le simulateur MSSanté refusera le prochain message avec la réponse "{reply}"'))
@given(parsers.parse('the MSSanté simulator will reject the next message with the reply "{reply}"'))
def fault_next_message(socle: ScenarioContext, reply: str) -> None:
    code = " ".join(reply.split()[:2])
    message = " ".join(reply.split()[2:]) or "Message refuse"
    socle.inject_fault(SERVICE, Fault("mssante.smtp_reply", {"code": code, "message": message}))
    socle.attach("Panne simulée", f"prochain DATA refusé: {reply}")


# When --------------------------------------------------------------------------------------------
@when(parsers.parse('le DUI envoie le document "{kind}" de la personne à l\'adresse "{address}" par MSSanté'))
@when(parsers.parse('the DUI sends the person\'s "{kind}" document to "{address}" by MSSanté'))
def send_to_address(socle: ScenarioContext, kind: str, address: str) -> None:
    _send(socle, kind, (address,))


@when(parsers.parse('le DUI envoie le document "{kind}" de la personne "{ref}" à l\'adresse "{address}" par MSSanté'))
@when(parsers.parse('the DUI sends the "{kind}" document of "{ref}" to "{address}" by MSSanté'))
def send_other_person(socle: ScenarioContext, kind: str, ref: str, address: str) -> None:
    _send(socle, kind, (address,), person_ref=ref)


@when(parsers.parse('le DUI envoie le document "{kind}" de la personne à sa messagerie Mon espace santé'))
@when(parsers.parse('the DUI sends the person\'s "{kind}" document to their Mon espace santé mailbox'))
def send_to_patient(socle: ScenarioContext, kind: str) -> None:
    _send(socle, kind, ("patient",))


# Then --------------------------------------------------------------------------------------------
@then("la messagerie MSSanté accepte le message")
@then("le simulateur MSSanté accepte le message")
@then("the MSSanté simulator accepts the message")
def accepted(socle: ScenarioContext) -> None:
    found = _submissions(socle)
    refused = [e for e in found if e.outcome is Outcome.REJECTED]
    if refused:
        raise AssertionError(
            "la messagerie MSSanté a refusé: " + "; ".join(f"{e.error_code} {e.error_message}" for e in refused)
        )


@then(parsers.parse('la messagerie MSSanté refuse le message avec le code "{code}"'))
@then(parsers.parse('le simulateur MSSanté refuse le message avec le code "{code}"'))
@then(parsers.parse('the MSSanté simulator rejects the message with code "{code}"'))
def rejected_with(socle: ScenarioContext, code: str) -> None:
    found = _submissions(socle)
    codes = [e.error_code for e in found if e.outcome is Outcome.REJECTED]
    if not any((c or "").startswith(code) for c in codes):
        raise AssertionError(f"refus attendu avec le code {code}, observé: {codes or 'message accepté'}")


@then("la messagerie MSSanté refuse la négociation TLS du DUI")
@then("the MSSanté service refuses the DUI's TLS negotiation")
def tls_refused(socle: ScenarioContext) -> None:
    found = socle.exchanges_since_action(SERVICE, "smtp.starttls")
    for exchange in found:
        socle.attach("Échange MSSanté", _describe(exchange), exchange)
    if not any(e.outcome is Outcome.REJECTED for e in found):
        raise AssertionError(f"aucune négociation TLS refusée par la messagerie MSSanté: {[e.outcome for e in found]}")


def _accepted_message(socle: ScenarioContext) -> tuple[Exchange, bytes]:
    accepted = [e for e in _submissions(socle) if e.outcome is Outcome.ACCEPTED]
    if not accepted:
        raise AssertionError("aucun message accepté à examiner")
    exchange = accepted[-1]
    payload = socle.env.journal.payload(exchange.digest or "")
    if payload is None:
        raise AssertionError(f"la copie du message {exchange.id} manque dans le journal")
    return exchange, payload


def _accepted_submission(socle: ScenarioContext) -> Exchange:
    accepted = [e for e in _submissions(socle) if e.outcome is Outcome.ACCEPTED]
    if not accepted:
        raise AssertionError("aucun message accepté à examiner")
    return accepted[-1]


@then("l'archive IHE_XDM.ZIP du message est conforme")
@then("the message's IHE_XDM.ZIP archive is valid")
def xdm_valid(socle: ScenarioContext) -> None:
    """What the MSSanté service found in the archive when it accepted the message (``details["xdm"]``)."""
    xdm = _accepted_submission(socle).details.get("xdm")
    if not xdm:
        raise AssertionError("le message ne contient pas de pièce jointe IHE_XDM.ZIP")
    socle.attach("Archive XDM", json.dumps({"lots": xdm["subsets"], "documents": xdm["documents"]}, ensure_ascii=False))
    problems = [Finding.from_dict(f) for f in xdm["findings"]]
    if problems or not xdm["documents"]:
        raise AssertionError("archive XDM non conforme: " + ("; ".join(str(f) for f in problems) or "aucun document"))


#: Findings of the message that are not about its X-MSS headers: the PDF copy, and the patient mailbox (the
#: recipients, not the headers).
NOT_HEADERS = frozenset({"MSS-PDF-MISSING", "MSS-PATIENT-MAILBOX"})


@then("les en-têtes X-MSS du message correspondent au document CDA")
@then("the message's X-MSS headers match the CDA document")
def headers_match(socle: ScenarioContext) -> None:
    """The header findings the MSSanté service recorded when it accepted the message."""
    details = _accepted_submission(socle).details
    findings = [Finding.from_dict(f) for f in details.get("findings", [])]
    header_findings = [f for f in findings if f.code.startswith("MSS-") and f.code not in NOT_HEADERS]
    socle.attach("Contrôle des en-têtes", "\n".join(str(f) for f in header_findings) or "aucune anomalie")
    errors = [f for f in header_findings if f.severity is Severity.ERROR]
    if errors or not details.get("documents"):
        raise AssertionError("en-têtes MSSanté non conformes: " + ("; ".join(str(f) for f in errors) or "aucun CDA"))


@then("le message est adressé à la messagerie Mon espace santé de la personne")
@then("the message is addressed to the person's Mon espace santé mailbox")
def to_patient_mailbox(socle: ScenarioContext) -> None:
    exchange, _ = _accepted_message(socle)
    person = socle.require_person()
    addresses = [r["address"].lower() for r in exchange.details.get("recipients", [])]
    if person.mailbox.lower() not in addresses:
        raise AssertionError(f"{person.mailbox} absent des destinataires acceptés {addresses}")
    if exchange.person != person.ins.value:
        raise AssertionError(f"le journal rattache le message à {exchange.person}, attendu {person.ins.value}")


@then("le DUI indique que le message est envoyé")
@then("the DUI reports the message as sent")
def dui_reports_sent(socle: ScenarioContext) -> None:
    if not socle.dui_reported_success("Le DUI indique-t-il que le message a été envoyé ?"):
        raise AssertionError(f"le DUI n'indique pas l'envoi: {socle.last_action}")


@then("le DUI signale l'échec de l'envoi")
@then("the DUI reports the sending failure")
def dui_reports_failure(socle: ScenarioContext) -> None:
    if socle.dui_reported_success("Le DUI indique-t-il que le message a été envoyé ? (« non » s'il signale un échec)"):
        detail = socle.last_action.data.get("hidden_failure", "") if socle.last_action else ""
        raise AssertionError(f"le DUI indique « envoyé » alors que le serveur a refusé le message {detail}".strip())


def _count(socle: ScenarioContext, flt: JournalFilter) -> int:
    n = socle.env.journal.count(flt)
    socle.attach("Journal", f"{n} message(s) MSSanté accepté(s) pour {flt.person or flt.essms}")
    return n


@then(
    parsers.re(r'le journal compte (?P<n>\d+) messages? MSSanté envoyés? pour la personne "(?P<ref>[^"]+)"'),
    converters={"n": int},
)
@then(
    parsers.re(r'the journal counts (?P<n>\d+) MSSanté messages? sent for the person "(?P<ref>[^"]+)"'),
    converters={"n": int},
)
def count_for_person(socle: ScenarioContext, n: int, ref: str) -> None:
    person = socle.env.testdata.person(ref)
    flt = JournalFilter(
        service=SERVICE,
        operation=SUBMIT,
        outcome=Outcome.ACCEPTED,
        person=person.ins.value,
        run_id=socle.env.run_id,
        scenario_id=socle.scenario_id,
    )
    got = _count(socle, flt)
    if got != n:
        raise AssertionError(f"{got} message(s) MSSanté compté(s) pour {person.display_name}, attendu {n}")


@then(
    parsers.re(r'le journal compte (?P<n>\d+) messages? MSSanté envoyés? par l\'ESSMS "(?P<name>[^"]+)"'),
    converters={"n": int},
)
@then(
    parsers.re(r'the journal counts (?P<n>\d+) MSSanté messages? sent by the establishment "(?P<name>[^"]+)"'),
    converters={"n": int},
)
def count_for_establishment(socle: ScenarioContext, n: int, name: str) -> None:
    essms = socle.env.testdata.establishment(name)
    flt = JournalFilter(
        service=SERVICE,
        operation=SUBMIT,
        outcome=Outcome.ACCEPTED,
        essms=essms.finess,
        run_id=socle.env.run_id,
        scenario_id=socle.scenario_id,
    )
    got = _count(socle, flt)
    if got != n:
        raise AssertionError(f"{got} message(s) MSSanté compté(s) pour {essms.name}, attendu {n}")


@then(
    parsers.re(r"la messagerie MSSanté a accepté (?P<n>\d+) exemplaires du message, sous le même Message-ID"),
    converters={"n": int},
)
@then(
    parsers.re(r"the MSSanté simulator accepted (?P<n>\d+) copies of the message under the same Message-ID"),
    converters={"n": int},
)
def copies_of_one_message(socle: ScenarioContext, n: int) -> None:
    """A resend after a lost reply (RFC 5321 §3.8) is the same message: same Message-ID (RFC 5322 §3.6.4). Reads
    every message the scenario's messaging accepted, not only since the last action."""
    flt = JournalFilter(
        service=SERVICE,
        operation=SUBMIT,
        outcome=Outcome.ACCEPTED,
        run_id=socle.env.run_id,
        scenario_id=socle.scenario_id,
    )
    found = socle.env.journal.query(flt)
    for exchange in found:
        socle.attach(
            "Échange MSSanté", f"{_describe(exchange)}\nMessage-ID: {exchange.details.get('message_id')}", exchange
        )
    ids = [str(e.details.get("message_id")) for e in found]
    if len(found) != n:
        raise AssertionError(f"{len(found)} exemplaire(s) accepté(s) par la messagerie MSSanté, attendu {n}: {ids}")
    if len(set(ids)) != 1:
        raise AssertionError(f"les exemplaires du message portent des Message-ID différents: {ids}")


# =============================================================================================================
# Mail to the DUI, receipts (MDN), IMAP, directory, faults, more outbound cases
# =============================================================================================================

INBOUND = "smtp.inbound"
MDN = "smtp.mdn"
PARTNER_FINESS = "990000990"


def _simulator(socle: ScenarioContext):  # noqa: ANN202 - the running MSSanteSimulator
    return socle.simulator(SERVICE)


def _partner(socle: ScenarioContext, address: str) -> Establishment:
    mailbox = socle.env.testdata.mailbox(address) or _simulator(socle).directory.get(address)
    if mailbox is None:
        raise AssertionError(f"{address} n'est pas dans l'annuaire MSSanté de test")
    return Establishment(
        finess=mailbox.finess or PARTNER_FINESS,
        finess_juridique=mailbox.finess or PARTNER_FINESS,
        name=mailbox.name,
        category="PS",
        mailbox=mailbox.address,
        dui_mailbox=mailbox.address,
    )


def _deliver_to_dui(socle: ScenarioContext, sender: str, kind: str, person: Person, label: str) -> None:
    establishment = socle.require_establishment()
    partner = _partner(socle, sender)
    msg = build_multi_message(
        person,
        partner,
        partner.mailbox,
        [establishment.dui_mailbox],
        (kind,),
        sender_name=partner.name,
        read_receipt_to=partner.mailbox,
    )
    inbound = _simulator(socle).flow.send_to_dui(
        msg.as_bytes(),
        sender=partner.mailbox,
        mailbox=establishment.dui_mailbox,
        person=person.ins.value,
        details={"kind": kind, "case": label},
    )
    socle.attach(
        "Message envoyé au DUI",
        f"{partner.mailbox} → {inbound.mailbox} ({label}), Message-ID {inbound.exchange.details['message_id']}",
        inbound.exchange,
    )


def _other_person(socle: ScenarioContext) -> Person:
    rng = random.Random(f"{socle.env.run_id}:{socle.scenario_id}")
    birth = date(1941, 6, 3)
    return Person(
        id="INCONNU",
        family="INCONNU",
        given="Marcel",
        sex="M",
        birth_date=birth,
        ins=generate_test_ins(rng, sex="M", birth_date=birth),
        essms=PARTNER_FINESS,
        patient_mailbox=False,
    )


@given(
    parsers.parse(
        'le professionnel "{sender}" envoie au DUI le document "{kind}" de la personne avec demande d\'accusé de lecture'
    )
)
@given(
    parsers.parse('the professional "{sender}" sends the DUI the person\'s "{kind}" document asking for a read receipt')
)
def partner_sends(socle: ScenarioContext, sender: str, kind: str) -> None:
    _deliver_to_dui(socle, sender, kind, socle.require_person(), "personne connue")


@given(
    parsers.parse('le professionnel "{sender}" envoie au DUI le document "{kind}" d\'une personne inconnue de l\'ESSMS')
)
@given(
    parsers.parse(
        'the professional "{sender}" sends the DUI the "{kind}" document of a person unknown to the establishment'
    )
)
def partner_sends_unknown(socle: ScenarioContext, sender: str, kind: str) -> None:
    _deliver_to_dui(socle, sender, kind, _other_person(socle), "personne inconnue")


@given(
    parsers.parse(
        'le professionnel "{sender}" envoie au DUI le document "{kind}" de la personne avec des traits d\'identité différents'
    )
)
@given(
    parsers.parse(
        'the professional "{sender}" sends the DUI the person\'s "{kind}" document with different identity traits'
    )
)
def partner_sends_mismatch(socle: ScenarioContext, sender: str, kind: str) -> None:
    person = socle.require_person()
    other = replace(person, birth_date=person.birth_date.replace(year=person.birth_date.year + 1))
    _deliver_to_dui(socle, sender, kind, other, "INS connu, date de naissance différente")


@given(parsers.parse('l\'annuaire MSSanté contient la BAL "{address}" de type "{kind}"'))
@given(parsers.parse('the MSSanté directory holds the "{kind}" mailbox "{address}"'))
def directory_adds(socle: ScenarioContext, address: str, kind: str) -> None:
    mailbox = _simulator(socle).directory.add(mailbox_from_mapping({"address": address, "type": kind, "name": address}))
    _simulator(socle).store.ensure_mailbox(mailbox.address)
    socle.attach("Annuaire", f"BAL {mailbox.type} {mailbox.address} ajoutée pour la campagne")


@given(parsers.parse('la messagerie "{address}" est pleine'))
@given(parsers.parse('the mailbox "{address}" is full'))
def mailbox_full(socle: ScenarioContext, address: str) -> None:
    socle.inject_fault(SERVICE, Fault("mssante.mailbox_full", {"address": address}))
    socle.attach("Panne simulée", f"{address}: boîte pleine (552 5.2.2)")


@given("la messagerie MSSanté refuse les INS de production")
@given("the MSSanté messaging refuses production INS")
def mss_refuses_production_ins(socle: ScenarioContext, request: pytest.FixtureRequest) -> None:
    """The harness-wide policy ``production_ins = "refuse"`` (harness.fields.identity) for this scenario."""
    from harness.fields.identity import ProductionInsPolicy

    simulator = _simulator(socle)
    previous = simulator.production_ins
    simulator.production_ins = ProductionInsPolicy.REFUSE
    request.addfinalizer(lambda: setattr(simulator, "production_ins", previous))
    socle.attach("MSSanté", 'politique INS de production : « refuse » (production_ins = "refuse") pour ce scénario')


@given("la messagerie MSSanté exigera TLS au prochain envoi")
@given("le simulateur MSSanté exigera TLS au prochain envoi")
@given("the MSSanté simulator will require TLS on the next message")
def tls_required(socle: ScenarioContext) -> None:
    socle.inject_fault(SERVICE, Fault("mssante.tls_required"))
    socle.attach("Panne simulée", "prochain MAIL FROM refusé: 530 5.7.0")


@given("la messagerie MSSanté refusera le prochain certificat client")
@given("le simulateur MSSanté refusera le prochain certificat client")
@given("the MSSanté simulator will refuse the next client certificate")
def certificate_refused(socle: ScenarioContext) -> None:
    socle.inject_fault(SERVICE, Fault("mssante.tls_certificate_refused"))
    socle.attach("Panne simulée", "prochaine négociation TLS: certificat client refusé")


@given("la messagerie MSSanté perdra sa réponse au prochain message")
@given("le simulateur MSSanté perdra sa réponse au prochain message")
@given("the MSSanté simulator will lose its reply to the next message")
def reply_lost(socle: ScenarioContext) -> None:
    socle.inject_fault(SERVICE, Fault("mssante.reply_lost"))
    socle.attach("Panne simulée", "prochain message accepté: connexion fermée sans la réponse 250 (réponse perdue)")


@given(
    parsers.re(r"la messagerie MSSanté répondra en (?P<seconds>\d+(?:\.\d+)?) secondes? au prochain message"),
    converters={"seconds": float},
)
@given(
    parsers.re(r"le simulateur MSSanté répondra en (?P<seconds>\d+(?:\.\d+)?) secondes? au prochain message"),
    converters={"seconds": float},
)
@given(
    parsers.re(r"the MSSanté simulator will answer the next message in (?P<seconds>\d+(?:\.\d+)?) seconds?"),
    converters={"seconds": float},
)
def slow_server(socle: ScenarioContext, seconds: float) -> None:
    socle.inject_fault(SERVICE, Fault("mssante.slow_server", {"seconds": seconds}))
    socle.attach("Panne simulée", f"réponse au prochain DATA après {seconds} s")


@when("le DUI relève sa messagerie MSSanté")
@when("the DUI collects its MSSanté mail")
def collect(socle: ScenarioContext) -> None:
    _collect(socle, "password")


@when("le DUI relève sa messagerie MSSanté avec son certificat d'organisation")
@when("the DUI collects its MSSanté mail with its organisation certificate")
def collect_with_certificate(socle: ScenarioContext) -> None:
    _collect(socle, "certificate")


def _collect(socle: ScenarioContext, auth: str) -> None:
    establishment = socle.require_establishment()
    patients = tuple(p for p in socle.env.testdata.persons if p.essms == establishment.finess)
    action = MssanteReceive(establishment=establishment, patients=patients, auth=auth)
    socle.act(f"relève de la messagerie MSSanté {establishment.dui_mailbox}", lambda: socle.sut.receive_mssante(action))


@when(
    parsers.parse(
        'le DUI envoie le document "{kind}" de la personne à sa messagerie Mon espace santé sans possibilité de réponse'
    )
)
@when(
    parsers.parse(
        'the DUI sends the person\'s "{kind}" document to their Mon espace santé mailbox with no reply allowed'
    )
)
def send_to_patient_fin(socle: ScenarioContext, kind: str) -> None:
    person = socle.require_person()
    establishment = socle.require_establishment()
    action = MssanteSend(
        person=person, establishment=establishment, document_kind=kind, recipients=("patient",), end_of_exchange=True
    )
    socle.act(
        f"envoi MSSanté {kind} (X-MSS-MES: FIN) à la messagerie de {person.display_name}",
        lambda: socle.sut.send_mssante(action),
    )


@when(
    parsers.parse(
        'le DUI envoie les documents "{first}" et "{second}" de la personne à l\'adresse "{address}" par MSSanté'
    )
)
@when(parsers.parse('the DUI sends the person\'s "{first}" and "{second}" documents to "{address}" by MSSanté'))
def send_two(socle: ScenarioContext, first: str, second: str, address: str) -> None:
    person = socle.require_person()
    action = MssanteSend(
        person=person,
        establishment=socle.require_establishment(),
        document_kind=first,
        recipients=(address,),
        extra_kinds=(second,),
    )
    socle.act(
        f"envoi MSSanté {first} + {second} de {person.display_name} à {address}", lambda: socle.sut.send_mssante(action)
    )


@when(parsers.parse("le DUI cherche l'adresse MSSanté \"{query}\" dans l'annuaire"))
@when(parsers.parse('the DUI looks up the MSSanté address "{query}" in the directory'))
def lookup(socle: ScenarioContext, query: str) -> None:
    socle.act(
        f"recherche de {query} dans l'annuaire MSSanté",
        lambda: socle.sut.lookup_directory(DirectoryLookup(query=query)),
    )


def _inbound(socle: ScenarioContext) -> Exchange:
    found = socle.env.journal.query(
        JournalFilter(service=SERVICE, operation=INBOUND, run_id=socle.env.run_id, scenario_id=socle.scenario_id)
    )
    if not found:
        raise AssertionError("aucun message n'a été envoyé au DUI dans ce scénario")
    return found[-1]


def _mdn_for_inbound(socle: ScenarioContext) -> Exchange:
    inbound = _inbound(socle)
    found = socle.exchanges_since_action(SERVICE, MDN)
    for exchange in found:
        socle.attach(
            "Accusé MDN reçu", _describe(exchange) + f"\nDisposition: {exchange.details.get('disposition')}", exchange
        )
    mine = [e for e in found if e.details.get("original_message_id") == inbound.details.get("message_id")]
    if not mine:
        others = [e.details.get("original_message_id") for e in found]
        raise AssertionError(
            f"aucun accusé MDN pour le message {inbound.details.get('message_id')} (accusés reçus: {others or 'aucun'}); "
            f"DUI: {socle.last_action.detail if socle.last_action else ''}"
        )
    refused = [e for e in mine if e.outcome is Outcome.REJECTED]
    if refused:
        raise AssertionError("accusé MDN refusé: " + "; ".join(f"{e.error_code} {e.error_message}" for e in refused))
    return mine[-1]


@then('la messagerie MSSanté reçoit un accusé de lecture MDN "processed" pour ce message')
@then('le simulateur MSSanté reçoit un accusé de lecture MDN "processed" pour ce message')
@then('the MSSanté simulator receives a "processed" MDN for that message')
def mdn_processed(socle: ScenarioContext) -> None:
    mdn = _mdn_for_inbound(socle)
    if not mdn.details.get("processed"):
        raise AssertionError(
            f"accusé d'erreur {mdn.details.get('error_code')} au lieu de processed: {mdn.details.get('disposition')}"
        )


@then(parsers.parse('la messagerie MSSanté reçoit un accusé de lecture MDN d\'erreur "{code}" pour ce message'))
@then(parsers.parse('le simulateur MSSanté reçoit un accusé de lecture MDN d\'erreur "{code}" pour ce message'))
@then(parsers.parse('the MSSanté simulator receives an error MDN "{code}" for that message'))
def mdn_error(socle: ScenarioContext, code: str) -> None:
    mdn = _mdn_for_inbound(socle)
    if mdn.details.get("error_code") != code:
        got = mdn.details.get("error_code") or "processed (aucune erreur)"
        raise AssertionError(f"accusé MDN attendu avec l'erreur {code}, reçu: {got} ({mdn.details.get('disposition')})")


@then("le message est marqué lu dans la messagerie du DUI")
@then("the message is flagged as read in the DUI's mailbox")
def marked_read(socle: ScenarioContext) -> None:
    inbound = _inbound(socle)
    copies = [m for _, folder, m in _simulator(socle).store.find(inbound.details["message_id"]) if folder == "INBOX"]
    socle.attach("Messagerie du DUI", ", ".join(f"UID {m.uid}: {sorted(m.flags) or 'non lu'}" for m in copies))
    if not copies or not all(m.seen for m in copies):
        raise AssertionError("le message traité n'est pas marqué \\Seen dans la messagerie du DUI")


@then("le DUI s'est authentifié sur IMAP avec son certificat d'organisation")
@then("the DUI authenticated on IMAP with its organisation certificate")
def imap_certificate(socle: ScenarioContext) -> None:
    found = socle.exchanges_since_action(SERVICE, "imap.auth")
    for exchange in found:
        socle.attach("Authentification IMAP", f"{exchange.outcome} {exchange.actor} {exchange.details}", exchange)
    if not any(e.outcome is Outcome.ACCEPTED and e.details.get("method") == "tls-client-certificate" for e in found):
        raise AssertionError("aucune authentification IMAP par certificat d'organisation (AUTHENTICATE EXTERNAL)")


@then("le DUI ne s'est jamais authentifié sur IMAP sans TLS")
@then("the DUI never authenticated on IMAP without TLS")
def imap_no_cleartext(socle: ScenarioContext) -> None:
    found = socle.exchanges_since_action(SERVICE, "imap.auth")
    clear = [e for e in found if e.outcome is Outcome.REJECTED and "STARTTLS" in (e.error_message or "")]
    if clear:
        raise AssertionError(f"le DUI a envoyé son mot de passe IMAP avant STARTTLS: {clear[0].error_message}")
    if not any(e.outcome is Outcome.ACCEPTED for e in found):
        raise AssertionError("le DUI ne s'est pas authentifié sur IMAP")


@then("le DUI n'a jamais tenté d'envoyer sur SMTP sans TLS ni authentification")
@then("the DUI never tried to send over SMTP without TLS or authentication")
def smtp_no_cleartext(socle: ScenarioContext) -> None:
    """RFC 3207 §4 / RFC 4954 §6: the simulator journals every command refused 530 (``smtp.command``)."""
    refused = socle.exchanges_since_action(SERVICE, "smtp.command")
    for exchange in refused:
        socle.attach(
            "Commande SMTP refusée", f"{exchange.details.get('peer')}: {exchange.details.get('reply')}", exchange
        )
    if refused:
        shown = "; ".join(f"{e.details.get('command')} → {e.details.get('reply')}" for e in refused)
        raise AssertionError(f"le DUI a envoyé des commandes SMTP avant STARTTLS ou AUTH: {shown}")


@then("le message porte le Message-ID du DUI")
@then("the message carries the DUI's own Message-ID")
def own_message_id(socle: ScenarioContext) -> None:
    """RFC 5322 §3.6.4: the originator should write Message-ID; the submission server adds it otherwise (RFC 6409
    §8.3), which the simulator records."""
    exchange, _ = _accepted_message(socle)
    socle.attach("Message-ID", str(exchange.details.get("message_id")), exchange)
    if exchange.details.get("message_id_added"):
        raise AssertionError(
            f"message sans Message-ID: le serveur a dû en ajouter un ({exchange.details['message_id']})"
        )


@then("le message porte l'en-tête X-MSS-MES: FIN")
@then("the message carries the X-MSS-MES: FIN header")
def has_fin(socle: ScenarioContext) -> None:
    _, payload = _accepted_message(socle)
    value = header_value(parse_message(payload), "X-MSS-MES")
    socle.attach("En-tête X-MSS-MES", str(value))
    if value != "FIN":
        raise AssertionError(f"X-MSS-MES attendu FIN, trouvé {value!r}")


@then(parsers.re(r"l'archive IHE_XDM.ZIP du message contient (?P<n>\d+) documents? CDA"), converters={"n": int})
@then(parsers.re(r"the message's IHE_XDM.ZIP archive holds (?P<n>\d+) CDA documents?"), converters={"n": int})
def xdm_count(socle: ScenarioContext, n: int) -> None:
    """The CDA documents the MSSanté service read in the archive when it accepted the message."""
    codes = [d.get("code") for d in _accepted_submission(socle).details.get("documents", [])]
    socle.attach("Documents CDA de l'archive", ", ".join(str(c) for c in codes))
    if len(codes) != n:
        raise AssertionError(f"{len(codes)} document(s) CDA dans l'archive, attendu {n}")


@then(
    parsers.re(r"le journal compte (?P<n>\d+) messages? MSSanté vers une messagerie Mon espace santé"),
    converters={"n": int},
)
@then(
    parsers.re(r"the journal counts (?P<n>\d+) MSSanté messages? to a Mon espace santé mailbox"), converters={"n": int}
)
def count_patient(socle: ScenarioContext, n: int) -> None:
    found = socle.env.journal.query(
        JournalFilter(
            service=SERVICE,
            operation=SUBMIT,
            outcome=Outcome.ACCEPTED,
            run_id=socle.env.run_id,
            scenario_id=socle.scenario_id,
        )
    )
    got = sum(1 for e in found if e.details.get("recipient_counts", {}).get("patient", 0) > 0)
    socle.attach("Journal", f"{got} message(s) vers Mon espace santé sur {len(found)} accepté(s)")
    if got != n:
        raise AssertionError(f"{got} message(s) MSSanté vers Mon espace santé, attendu {n}")


@then(parsers.parse('le DUI propose l\'adresse "{address}"'))
@then(parsers.parse('the DUI offers the address "{address}"'))
def offers(socle: ScenarioContext, address: str) -> None:
    searches = socle.exchanges_since_action(SERVICE, "fhir.search")
    for exchange in searches:
        socle.attach("Recherche dans l'annuaire", f"{exchange.details}", exchange)
    if not searches:
        raise AssertionError("le DUI n'a pas consulté l'annuaire MSSanté (aucune recherche FHIR)")
    socle.dui_shows(
        f"Le DUI propose-t-il l'adresse {address} ?",
        lambda data: (
            None
            if address in data.get("addresses", [])
            else f"{address} absent des adresses proposées {data.get('addresses', [])}"
        ),
    )


# -- HL7 v2 relay ---------------------------------------------------------------------------------------------
@when(
    parsers.re(
        r'le DUI transmet le document "(?P<kind>[^"]+)" de la personne à la plateforme d\'intégration en HL7 v2 '
        r'\((?P<message_type>[A-Z]{3}\^[A-Z0-9]{3})\) pour "(?P<address>[^"]+)"(?P<patient> et sa messagerie Mon espace santé)?'
    )
)
@when(
    parsers.re(
        r'the DUI hands the person\'s "(?P<kind>[^"]+)" document to the integration platform in HL7 v2 '
        r'\((?P<message_type>[A-Z]{3}\^[A-Z0-9]{3})\) for "(?P<address>[^"]+)"(?P<patient> and their Mon espace santé mailbox)?'
    )
)
def relay(socle: ScenarioContext, kind: str, message_type: str, address: str, patient: str | None) -> None:
    person = socle.require_person()
    action = MssanteRelay(
        person=person,
        establishment=socle.require_establishment(),
        document_kind=kind,
        recipients=(address,),
        to_patient=bool(patient),
        message_type=message_type,
    )
    socle.act(
        f"transmission HL7 v2 {message_type} du document {kind} de {person.display_name}",
        lambda: socle.sut.relay_mssante_hl7(action),
    )


def _hl7_documents(socle: ScenarioContext) -> list[Exchange]:
    found = socle.exchanges_since_action(SERVICE, "hl7.document")
    for exchange in found:
        socle.attach(
            "Message HL7 v2 reçu par la plateforme",
            _describe(exchange) + f"\nACK {exchange.details.get('ack')}",
            exchange,
        )
    if not found:
        raise AssertionError("la plateforme d'intégration n'a reçu aucun message HL7 v2 du DUI")
    return found


@then("la plateforme d'intégration acquitte le message HL7 v2 (AA)")
@then("the integration platform acknowledges the HL7 v2 message (AA)")
def hl7_accepted(socle: ScenarioContext) -> None:
    refused = [e for e in _hl7_documents(socle) if e.outcome is Outcome.REJECTED]
    if refused:
        raise AssertionError(
            "message HL7 v2 refusé: " + "; ".join(f"{e.error_code} {e.error_message}" for e in refused)
        )


@then(
    parsers.re(
        r'la messagerie MSSanté remet le document à "(?P<address>[^"]+)"(?P<patient> et à la messagerie Mon espace santé de la personne)?'
    )
)
@then(
    parsers.re(
        r'le simulateur MSSanté remet le document à "(?P<address>[^"]+)"(?P<patient> et à la messagerie Mon espace santé de la personne)?'
    )
)
@then(
    parsers.re(
        r'the MSSanté simulator delivers the document to "(?P<address>[^"]+)"(?P<patient> and to the person\'s Mon espace santé mailbox)?'
    )
)
def relayed_to(socle: ScenarioContext, address: str, patient: str | None) -> None:
    relayed = [e for e in socle.exchanges_since_action(SERVICE, "smtp.relay") if e.outcome is Outcome.ACCEPTED]
    if not relayed:
        raise AssertionError("aucun courriel MSSanté émis par la plateforme d'intégration")
    exchange = relayed[-1]
    wanted = [address] + ([socle.require_person().mailbox] if patient else [])
    store = _simulator(socle).store
    socle.attach(
        "Courriel MSSanté de la plateforme",
        json.dumps(exchange.details.get("recipients"), ensure_ascii=False),
        exchange,
    )
    for target in wanted:
        copies = [m for m in store.messages(target) if m.exchange_id == exchange.id]
        if not copies:
            raise AssertionError(f"le document n'a pas été remis dans la BAL {target}")


@then("le DUI acquitte les accusés métier ZAM^Z02 et ZAM^Z03 de la plateforme")
@then("the DUI acknowledges the platform's ZAM^Z02 and ZAM^Z03 business acknowledgements")
def zam_acknowledged(socle: ScenarioContext) -> None:
    zams = socle.exchanges_since_action(SERVICE, "hl7.zam")
    for exchange in zams:
        socle.attach(
            "Accusé métier", f"{exchange.details.get('trigger')} → ACK {exchange.details.get('ack')}", exchange
        )
    triggers = {e.details.get("trigger") for e in zams if e.outcome is Outcome.ACCEPTED}
    unacknowledged = [e.details.get("trigger") for e in zams if e.outcome is Outcome.REJECTED]
    if unacknowledged:
        raise AssertionError(f"accusés métier non acquittés par le DUI: {unacknowledged}")
    if not {"ZAM^Z02", "ZAM^Z03"} <= triggers:
        raise AssertionError(
            f"accusés métier acquittés: {sorted(t for t in triggers if t) or 'aucun'}, attendu ZAM^Z02 et ZAM^Z03"
        )


@then("le message HL7 v2 identifie la personne par le même INS dans PID-3 et dans le document CDA")
@then("the HL7 v2 message identifies the person by the same INS in PID-3 and in the CDA document")
def hl7_same_ins(socle: ScenarioContext) -> None:
    """Every identity the message carries agrees (volet « Transmission de documents CDA en HL7 v2 », PID-3 per the
    CI-SIS INS annex): the relay journals the INS of PID-3 and of each CDA document and refuses a mismatch (904)."""
    wanted = socle.require_person().ins.value
    for exchange in _hl7_documents(socle):
        pid, cda = exchange.details.get("pid_ins"), exchange.details.get("cda_ins")
        if exchange.outcome is Outcome.REJECTED:
            raise AssertionError(f"message HL7 v2 refusé: {exchange.error_code} {exchange.error_message}")
        if pid != wanted or cda != [wanted]:
            raise AssertionError(f"INS de PID-3 {pid}, INS des documents CDA {cda}: attendu {wanted} partout")
