"""MSSanté steps: make the DUI send documents, then judge the SMTP exchanges the simulator recorded."""

from __future__ import annotations

import json

from pytest_bdd import given, parsers, then, when

from harness.journal import Exchange, JournalFilter, Outcome
from harness.runtime import ScenarioContext
from harness.simulator import Fault
from harness.sut.base import MssanteSend
from harness.validators import Severity
from harness.validators.mssante_message import validate_message

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
    socle.act(f"envoi MSSanté {kind} de {person.display_name} à {', '.join(recipients)}", lambda: socle.sut.send_mssante(action))


def _submissions(socle: ScenarioContext) -> list[Exchange]:
    found = socle.exchanges_since_action(SERVICE, SUBMIT)
    for exchange in found:
        socle.attach("Échange MSSanté", _describe(exchange), exchange)
    if not found:
        raise AssertionError("aucun message MSSanté reçu par le simulateur après l'action du DUI")
    return found


# Given -------------------------------------------------------------------------------------------
@given(parsers.parse('le simulateur MSSanté refusera le prochain message avec la réponse "{reply}"'))
@given(parsers.parse('the MSSanté simulator will reject the next message with the reply "{reply}"'))
def fault_next_message(socle: ScenarioContext, reply: str) -> None:
    code = " ".join(reply.split()[:2])
    message = " ".join(reply.split()[2:]) or "Message refuse"
    socle.env.host.faults.inject(SERVICE, Fault("smtp.reply", {"code": code, "message": message}))
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
@then("le simulateur MSSanté accepte le message")
@then("the MSSanté simulator accepts the message")
def accepted(socle: ScenarioContext) -> None:
    found = _submissions(socle)
    refused = [e for e in found if e.outcome is Outcome.REJECTED]
    if refused:
        raise AssertionError(
            "le simulateur MSSanté a refusé: " + "; ".join(f"{e.error_code} {e.error_message}" for e in refused)
        )


@then(parsers.parse('le simulateur MSSanté refuse le message avec le code "{code}"'))
@then(parsers.parse('the MSSanté simulator rejects the message with code "{code}"'))
def rejected_with(socle: ScenarioContext, code: str) -> None:
    found = _submissions(socle)
    codes = [e.error_code for e in found if e.outcome is Outcome.REJECTED]
    if not any((c or "").startswith(code) for c in codes):
        raise AssertionError(f"refus attendu avec le code {code}, observé: {codes or 'message accepté'}")


def _accepted_message(socle: ScenarioContext) -> tuple[Exchange, bytes]:
    accepted = [e for e in _submissions(socle) if e.outcome is Outcome.ACCEPTED]
    if not accepted:
        raise AssertionError("aucun message accepté à examiner")
    exchange = accepted[-1]
    payload = socle.env.journal.payload(exchange.digest or "")
    if payload is None:
        raise AssertionError(f"la copie du message {exchange.id} manque dans le journal")
    return exchange, payload


@then("l'archive IHE_XDM.ZIP du message est conforme")
@then("the message's IHE_XDM.ZIP archive is valid")
def xdm_valid(socle: ScenarioContext) -> None:
    exchange, payload = _accepted_message(socle)
    report = validate_message(payload, recipients=[r["address"] for r in exchange.details.get("recipients", [])])
    if report.xdm is None:
        raise AssertionError("le message ne contient pas de pièce jointe IHE_XDM.ZIP")
    socle.attach("Archive XDM", json.dumps({"lots": report.xdm.subsets, "documents": [d.path for d in report.xdm.documents]}, ensure_ascii=False))
    problems = list(report.xdm.findings)
    if problems or not report.xdm.documents:
        raise AssertionError("archive XDM non conforme: " + ("; ".join(str(f) for f in problems) or "aucun document"))


@then("les en-têtes X-MSS du message correspondent au document CDA")
@then("the message's X-MSS headers match the CDA document")
def headers_match(socle: ScenarioContext) -> None:
    exchange, payload = _accepted_message(socle)
    report = validate_message(payload)
    header_findings = [f for f in report.findings if f.code.startswith("MSS-") and f.code != "MSS-PDF-MISSING"]
    socle.attach("Contrôle des en-têtes", "\n".join(str(f) for f in header_findings) or "aucune anomalie")
    errors = [f for f in header_findings if f.severity is Severity.ERROR]
    if errors or not report.cda:
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


@then(parsers.re(r'le journal compte (?P<n>\d+) messages? MSSanté envoyés? pour la personne "(?P<ref>[^"]+)"'), converters={"n": int})
@then(parsers.re(r'the journal counts (?P<n>\d+) MSSanté messages? sent for the person "(?P<ref>[^"]+)"'), converters={"n": int})
def count_for_person(socle: ScenarioContext, n: int, ref: str) -> None:
    person = socle.env.testdata.person(ref)
    flt = JournalFilter(service=SERVICE, operation=SUBMIT, outcome=Outcome.ACCEPTED, person=person.ins.value,
                        run_id=socle.env.run_id, scenario_id=socle.scenario_id)
    got = _count(socle, flt)
    if got != n:
        raise AssertionError(f"{got} message(s) MSSanté compté(s) pour {person.display_name}, attendu {n}")


@then(parsers.re(r'le journal compte (?P<n>\d+) messages? MSSanté envoyés? par l\'ESSMS "(?P<name>[^"]+)"'), converters={"n": int})
@then(parsers.re(r'the journal counts (?P<n>\d+) MSSanté messages? sent by the establishment "(?P<name>[^"]+)"'), converters={"n": int})
def count_for_establishment(socle: ScenarioContext, n: int, name: str) -> None:
    essms = socle.env.testdata.establishment(name)
    flt = JournalFilter(service=SERVICE, operation=SUBMIT, outcome=Outcome.ACCEPTED, essms=essms.finess,
                        run_id=socle.env.run_id, scenario_id=socle.scenario_id)
    got = _count(socle, flt)
    if got != n:
        raise AssertionError(f"{got} message(s) MSSanté compté(s) pour {essms.name}, attendu {n}")
