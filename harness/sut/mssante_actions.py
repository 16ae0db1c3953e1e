"""MSSanté actions of the reference DUI.

- send documents by SMTP submission (STARTTLS + AUTH), one or several CDA documents per message, structured
  or not (CDA N1), to professionals and to the person's Mon espace santé mailbox (``X-MSS-MES: FIN`` on demand);
  a connection lost after the end of DATA, before the reply, leaves the outcome unknown (RFC 5321 §4.5.3.2.6):
  treated as a 451 (§3.8), the message is resent once, the same bytes under the same Message-ID (RFC 5322
  §3.6.4), so that the copies are recognisably one message;
- read the establishment's mailbox over IMAP4rev1 (STARTTLS, then a password or ``AUTHENTICATE EXTERNAL`` with
  the organisation certificate), integrate each received ``IHE_XDM.ZIP`` into the record of a known person
  and return the MDN (RFC 8098) the ANS volet asks for: ``processed``, or ``processed/error`` with the
  integration code (902 unknown patient, 903 no INS, 904 INS/traits mismatch, 905 incomplete identity);
- hand a document to the integration platform as HL7 v2 over MLLP (:mod:`harness.sut.mssante_hl7`);
- look addresses up in the directory (Annuaire Santé FHIR search).

Defects of the faulty DUI for this capability are declared here and checked with ``self.has(...)``.
"""

from __future__ import annotations

import imaplib
import io
import json
import re
import smtplib
import ssl
import urllib.parse
import zipfile
from dataclasses import dataclass, replace
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import make_msgid
from typing import Any

from harness.fields.identity import INS, INS_OIDS, OID_INS_NIR
from harness.fields.testdata import Person
from harness.fields.xmlsafe import XMLSafetyError, parse_xml
from harness.sut.base import (
    ActionResult,
    ActionStatus,
    Defect,
    DirectoryLookup,
    MssanteReceive,
    MssanteRelay,
    MssanteSend,
    SutEnvironment,
)
from harness.sut.documents import BuildOptions, build_message
from harness.sut.mssante_hl7 import RelayOptions, relay_document
from harness.sut.mssante_messages import MdnOptions, build_mdn
from harness.sut.mssante_messages import build_message as build_multi_message
from harness.validators import xdm as X

MSSANTE_DEFECTS = (
    Defect("entetes-mss-absents", "n'ajoute pas les en-têtes X-MSS-CODECDA et X-MSS-INS"),
    Defect("codecda-errone", "met le libellé du document dans X-MSS-CODECDA au lieu du code"),
    Defect("oid-ins-errone", "identifie la personne avec un OID d'IPP local au lieu de l'OID INS"),
    Defect("xdm-sans-metadata", "produit une archive IHE_XDM.ZIP sans METADATA.XML"),
    Defect("xdm-hash-faux", "déclare un hash SHA-1 faux dans METADATA.XML"),
    Defect("messagerie-patient-erronee", "adresse la messagerie patient avec l'INS sans sa clé"),
    Defect("ignore-refus-smtp", "indique « envoyé » à l'utilisateur même quand le serveur refuse le message"),
    Defect("fin-ignore", "n'ajoute pas X-MSS-MES: FIN quand le professionnel ne veut pas de réponse"),
    Defect("xdm-un-seul-document", "ne met que le premier document dans l'archive quand on en envoie plusieurs"),
    Defect("imap-sans-starttls", "relève la messagerie IMAP sans STARTTLS (mot de passe en clair)"),
    Defect("mdn-absent", "ne renvoie pas d'accusé MDN quand le message en demande un"),
    Defect("mdn-toujours-traite", "renvoie « processed » même quand le document n'a pas pu être intégré"),
    Defect("traits-non-compares", "intègre le document sans comparer les traits d'identité à ceux de l'INS connu"),
    Defect("mdn-sans-original-message-id", "omet Original-Message-ID dans l'accusé MDN"),
    Defect("mdn-objet-sans-code", "n'écrit pas [KO Intégration système !][code] dans l'objet de l'accusé d'erreur"),
    Defect("message-non-marque-lu", "laisse le message traité non lu (\\Seen) dans la messagerie"),
    Defect("hl7-zam-ignore", "n'acquitte pas les accusés métier ZAM de la plateforme d'intégration"),
    Defect(
        "hl7-sans-destinataire-patient", "oublie le drapeau DESTMSSANTEPAT quand la personne doit recevoir le document"
    ),
    Defect("smtp-essai-sans-tls", "tente d'abord d'envoyer sur SMTP sans STARTTLS ni authentification"),
    Defect("message-id-absent", "n'écrit pas d'en-tête Message-ID dans le message"),
    Defect("xdm-type-texte", "joint IHE_XDM.ZIP en text/plain au lieu de application/zip"),
    Defect("smtp-lf-seul", "termine les lignes du message par LF seul au lieu de CRLF"),
    Defect("entetes-8bit", "écrit l'objet en UTF-8 brut sans SMTPUTF8 au lieu de l'encoder (RFC 2047)"),
    Defect("ins-production-mss", "envoie l'INS de la personne sous l'OID de production 1.2.250.1.213.1.4.8"),
    Defect("hl7-pid-autre-ins", "met dans PID-3 l'INS d'une autre personne (dossiers mal rapprochés)"),
    Defect("hl7-cle-ins-pid-erronee", "calcule mal la clé de l'INS qu'il met dans PID-3"),
    Defect("annuaire-non-consulte", "ne consulte pas l'annuaire et propose une adresse devinée"),
    Defect(
        "attente-smtp-trop-courte",
        "abandonne l'envoi après 1 s sans réponse du serveur (la RFC 5321 §4.5.3.2 laisse 10 minutes après le DATA)",
    ),
    Defect(
        "renvoi-nouveau-message-id",
        "renvoie sous un nouveau Message-ID le message dont la réponse au DATA s'est perdue (RFC 5322 §3.6.4)",
    ),
)

SMTP_TIMEOUT = 30.0  # seconds the reference DUI waits for each SMTP reply
SHORT_SMTP_TIMEOUT = 1.0  # the faulty DUI's "attente-smtp-trop-courte"
RESENT = "renvoyé une fois : connexion perdue après la fin du DATA, avant la réponse du serveur (RFC 5321 §3.8)"


class _ReplyLost(Exception):
    """The connection closed after the end of DATA and before its reply: delivered or not, nobody can tell."""


class _Submission(smtplib.SMTP):
    """smtplib's client that knows whether the end of DATA (``<CRLF>.<CRLF>``, RFC 5321 §4.1.1.4) went out."""

    data_ended = False

    def send(self, s: bytes | str) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.data_ended = True


#: Integration codes the reference DUI returns (ANS volet, table applicationErrorCondition).
UNKNOWN_PATIENT = ("902", "Identifiant patient inconnu")
NO_INS = ("903", "INS non présent dans le document")
INS_MISMATCH = ("904", "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur")
INCOMPLETE = ("905", "L'INS transmis n'est pas complet")
OTHER = ("906", "Erreur 'Autre'")
HL7 = {"h": "urn:hl7-org:v3"}


@dataclass(frozen=True)
class ReceivedIdentity:
    """The person a received document is about: INS (15 characters) and CDA traits (birth name, first name,
    birth date ``YYYYMMDD``, sex)."""

    ins: str | None
    family: str | None
    given: str | None
    birth_date: str | None
    sex: str | None


def read_received(data: bytes) -> tuple[Message, list[ReceivedIdentity]] | None:
    """The identities of the CDA documents of a received message, or ``None`` if it carries no IHE_XDM.ZIP."""
    msg = BytesParser(policy=policy.compat32).parsebytes(data)
    archive = next((p for p in msg.walk() if (p.get_filename() or "").upper() == "IHE_XDM.ZIP"), None)
    if archive is None:
        return None
    identities: list[ReceivedIdentity] = []
    try:
        with zipfile.ZipFile(io.BytesIO(archive.get_payload(decode=True) or b"")) as zf:
            names = [n for n in zf.namelist() if n.upper().startswith("IHE_XDM/") and n.upper().endswith(".XML")]
            metadata = [n for n in names if n.upper().endswith("/METADATA.XML")]
            documents = [n for n in names if n not in metadata]
            meta_ins: set[str] = set()
            for name in metadata:
                root = parse_xml(zf.read(name))
                for ei in root.iter(f"{{{X.RIM}}}ExternalIdentifier"):
                    if ei.get("identificationScheme") == X.DOC_PATIENT_ID:
                        meta_ins.add((ei.get("value") or "").split("^", 1)[0])
            for name in documents:
                if zf.getinfo(name).file_size > 50 * 1024 * 1024:
                    continue
                root = parse_xml(zf.read(name))
                ins = None
                for pid in root.findall("h:recordTarget/h:patientRole/h:id", HL7):
                    if pid.get("root") in INS_OIDS:
                        ins = pid.get("extension")
                patient = root.find("h:recordTarget/h:patientRole/h:patient", HL7)
                family = given = birth = sex = None
                if patient is not None:
                    family_el = patient.find("h:name/h:family", HL7)
                    given_el = patient.find("h:name/h:given", HL7)
                    birth_el = patient.find("h:birthTime", HL7)
                    sex_el = patient.find("h:administrativeGenderCode", HL7)
                    family = (family_el.text or "").strip() if family_el is not None else None
                    given = (given_el.text or "").strip() if given_el is not None else None
                    birth = (birth_el.get("value") or "")[:8] if birth_el is not None else None
                    sex = sex_el.get("code") if sex_el is not None else None
                identities.append(
                    ReceivedIdentity(
                        ins or (next(iter(meta_ins)) if len(meta_ins) == 1 else None), family, given, birth, sex
                    )
                )
    except (zipfile.BadZipFile, XMLSafetyError, KeyError, OSError, ValueError):
        return msg, [ReceivedIdentity(None, None, None, None, None)]
    return msg, identities


class MssanteActions:
    """Mixin of :class:`harness.sut.reference.ReferenceDUI`."""

    env: SutEnvironment | None

    def has(self, defect: str) -> bool:  # provided by ReferenceDUI
        raise NotImplementedError

    def tls_context(self, certificate: str | None = None) -> ssl.SSLContext:  # provided by ReferenceDUI
        raise NotImplementedError

    # -- sending ------------------------------------------------------------------------------------------------
    def _mss_options(self) -> BuildOptions:
        return BuildOptions(
            mss_headers=not self.has("entetes-mss-absents"),
            codecda_override="Dossier de liaison d'urgence" if self.has("codecda-errone") else None,
            patient_id_oid="1.2.250.1.999.1.1" if self.has("oid-ins-errone") else None,
            xdm_metadata=not self.has("xdm-sans-metadata"),
            xdm_wrong_hash=self.has("xdm-hash-faux"),
        )

    def _patient_mailbox(self, action: MssanteSend) -> str:
        if self.has("messagerie-patient-erronee"):
            return f"{action.person.ins.number}@patient.mssante.fr"
        return action.person.mailbox

    def _mss_report(self, result: ActionResult) -> ActionResult:
        if self.has("ignore-refus-smtp") and result.status is ActionStatus.FAILED:
            return ActionResult(ActionStatus.DONE, "message envoyé", {"hidden_failure": result.detail})
        return result

    def _env(self) -> SutEnvironment:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        return self.env

    def _tls(self, certificate: str | None = None) -> ssl.SSLContext:
        self._env()
        return self.tls_context(certificate)

    def _wire_bytes(self, msg: Message) -> bytes | None:
        """What a faulty DUI puts on the wire instead of letting smtplib render the message (RFC 5321 / 5322)."""
        if self.has("entetes-8bit"):
            msg.replace_header("Subject", f"{msg['Subject']} (établissement)")
            return msg.as_bytes(policy=policy.SMTPUTF8)  # raw UTF-8 header, though the server offers no SMTPUTF8
        if self.has("smtp-lf-seul"):
            return msg.as_bytes(policy=policy.SMTP).replace(b"\r\n", b"\n")
        return None

    def _try_in_clear(self, sender: str) -> None:
        """The faulty DUI's first attempt: MAIL FROM before STARTTLS (refused 530 5.7.0)."""
        host, _, port = self._env().endpoints["mssante"]["smtp"].rpartition(":")
        try:
            with smtplib.SMTP(host.strip("[]"), int(port), timeout=30) as smtp:
                smtp.ehlo("dui-reference.test")
                smtp.mail(sender)
        except (OSError, smtplib.SMTPException):
            pass

    def _submit(
        self,
        msg: Message,
        sender: str,
        recipients: list[str],
        *,
        certificate: str | None = None,
        wire: bytes | None = None,
    ) -> ActionResult:
        """SMTP submission: STARTTLS, AUTH (PLAIN with the password, or EXTERNAL with the certificate), send
        (``wire``: exact bytes for DATA, dot-stuffed here, RFC 5321 §4.5.2); resent once, unchanged, when the
        reply to the end of DATA is lost (RFC 5321 §3.8: a lost connection is a 451)."""
        env = self._env()
        password = env.credentials.get(sender)
        if password is None and certificate is None:
            return ActionResult(ActionStatus.ERROR, f"aucun mot de passe MSSanté configuré pour {sender}")
        try:
            return self._submit_once(msg, sender, recipients, password, certificate=certificate, wire=wire)
        except _ReplyLost:
            pass
        if self.has("renvoi-nouveau-message-id"):
            msg.replace_header("Message-ID", make_msgid(domain=sender.rpartition("@")[2] or "dui.test"))
        try:
            result = self._submit_once(msg, sender, recipients, password, certificate=certificate, wire=wire)
        except _ReplyLost:
            return ActionResult(ActionStatus.FAILED, "envoi incertain: connexion perdue deux fois après la fin du DATA")
        if result.status is ActionStatus.DONE:
            return ActionResult(ActionStatus.DONE, f"message envoyé ({RESENT})", {**result.data, "resent": True})
        return result

    def _submit_once(
        self,
        msg: Message,
        sender: str,
        recipients: list[str],
        password: str | None,
        *,
        certificate: str | None,
        wire: bytes | None,
    ) -> ActionResult:
        """One SMTP session; raises :class:`_ReplyLost` when the connection drops after the end of DATA."""
        host, _, port = self._env().endpoints["mssante"]["smtp"].rpartition(":")
        smtp: _Submission | None = None
        try:
            timeout = SHORT_SMTP_TIMEOUT if self.has("attente-smtp-trop-courte") else SMTP_TIMEOUT
            with _Submission(host.strip("[]"), int(port), timeout=timeout) as smtp:
                smtp.ehlo("dui-reference.test")
                smtp.starttls(context=self._tls(certificate))
                smtp.ehlo("dui-reference.test")
                if certificate is not None:
                    smtp.auth("EXTERNAL", lambda challenge=None: sender)
                else:
                    smtp.login(sender, password or "")
                if wire is None:
                    refused = smtp.send_message(msg, from_addr=sender, to_addrs=recipients)
                else:
                    refused = _send_raw(smtp, sender, recipients, wire)
        except smtplib.SMTPRecipientsRefused as exc:
            detail = "; ".join(
                f"{addr}: {code} {text.decode('ascii', 'replace')}" for addr, (code, text) in exc.recipients.items()
            )
            return ActionResult(ActionStatus.FAILED, f"destinataire(s) refusé(s): {detail}")
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode("ascii", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            )
            return ActionResult(ActionStatus.FAILED, f"refus du serveur MSSanté: {exc.smtp_code} {text}")
        except smtplib.SMTPServerDisconnected as exc:
            # the server closed after the end of DATA; a reply this DUI stopped waiting for is not a lost one
            if smtp is not None and smtp.data_ended and not isinstance(exc.__context__, TimeoutError):
                raise _ReplyLost from exc
            return ActionResult(ActionStatus.FAILED, f"envoi impossible: {exc}")
        except (OSError, smtplib.SMTPException) as exc:
            return ActionResult(ActionStatus.FAILED, f"envoi impossible: {exc}")
        if refused:
            return ActionResult(ActionStatus.FAILED, f"destinataires refusés: {sorted(refused)}")
        return ActionResult(
            ActionStatus.DONE, "message envoyé", {"message_id": str(msg["Message-ID"]), "recipients": recipients}
        )

    def send_mssante(self, action: MssanteSend) -> ActionResult:
        self._env()
        sender = action.establishment.dui_mailbox
        recipients = [self._patient_mailbox(action) if r == "patient" else r for r in action.recipients]
        if self.has("ins-production-mss"):
            ins = action.person.ins
            action = replace(action, person=replace(action.person, ins=INS(ins.number, ins.key, OID_INS_NIR)))
        end = action.end_of_exchange and not self.has("fin-ignore")
        kinds = (action.document_kind, *action.extra_kinds)
        if self.has("xdm-un-seul-document"):
            kinds = kinds[:1]
        if len(kinds) == 1 and kinds[0] != "DOC-NS":
            msg = build_message(
                action.person,
                action.establishment,
                sender,
                recipients,
                action.document_kind,
                end_of_exchange=end,
                options=self._mss_options(),
            )
        else:
            msg = build_multi_message(
                action.person,
                action.establishment,
                sender,
                recipients,
                kinds,
                end_of_exchange=end,
                options=self._mss_options(),
            )
        if self.has("message-id-absent"):
            del msg["Message-ID"]
        if self.has("xdm-type-texte"):
            for part in msg.walk():
                if (part.get_filename() or "").upper() == "IHE_XDM.ZIP":
                    part.set_type("text/plain")
        if self.has("smtp-essai-sans-tls"):
            self._try_in_clear(sender)
        return self._mss_report(self._submit(msg, sender, recipients, wire=self._wire_bytes(msg)))

    # -- receiving ----------------------------------------------------------------------------------------------
    def _decide(
        self, identities: list[ReceivedIdentity], patients: tuple[Person, ...]
    ) -> tuple[tuple[str, str] | None, Person | None]:
        """The integration outcome of one message: ``(error or None, person)``."""
        if not identities:
            return OTHER, None
        identity = identities[0]
        if any(i.ins != identity.ins for i in identities):
            return OTHER, None
        if not identity.ins:
            return NO_INS, None
        person = next((p for p in patients if p.ins.value == identity.ins), None)
        if person is None:
            return UNKNOWN_PATIENT, None
        if self.has("traits-non-compares"):
            return None, person
        if not (identity.family and identity.given and identity.birth_date and identity.sex):
            return INCOMPLETE, person
        same = (
            identity.family.casefold() == person.family.casefold()
            and identity.given.split()[0].casefold() == person.given.split()[0].casefold()
            and identity.birth_date == person.birth_date.strftime("%Y%m%d")
            and identity.sex == person.sex
        )
        return (None if same else INS_MISMATCH), person

    def _imap(self, action: MssanteReceive) -> imaplib.IMAP4:
        env = self._env()
        host, _, port = env.endpoints["mssante"]["imap"].rpartition(":")
        imap = imaplib.IMAP4(host.strip("[]"), int(port), timeout=30)
        mailbox = action.establishment.dui_mailbox
        if self.has("imap-sans-starttls"):
            imap.login(mailbox, env.credentials.get(mailbox, ""))
            return imap
        if action.auth == "certificate":
            imap.starttls(ssl_context=self._tls(self._certificate(action)))
            imap.authenticate("EXTERNAL", lambda _challenge: mailbox.encode("utf-8"))
        else:
            imap.starttls(ssl_context=self._tls())
            imap.login(mailbox, env.credentials.get(mailbox, ""))
        return imap

    @staticmethod
    def _certificate(action: MssanteReceive) -> str:
        return f"MSS-{action.establishment.finess}"

    def receive_mssante(self, action: MssanteReceive) -> ActionResult:
        establishment = action.establishment
        handled: list[dict[str, Any]] = []
        try:
            imap = self._imap(action)
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            return ActionResult(ActionStatus.FAILED, f"messagerie MSSanté inaccessible: {exc}")
        try:
            imap.select("INBOX")
            typ, data = imap.uid("SEARCH", None, "UNSEEN")
            uids = data[0].split() if typ == "OK" and data and data[0] else []
            for uid in uids:
                typ, fetched = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                raw = next((part[1] for part in fetched if isinstance(part, tuple)), None) if typ == "OK" else None
                if raw is None:
                    continue
                outcome = self._integrate(action, raw)
                if outcome is None:
                    continue
                if not self.has("message-non-marque-lu"):
                    imap.uid("STORE", uid.decode(), "+FLAGS", "(\\Seen)")
                handled.append({"uid": int(uid), **outcome})
            imap.logout()
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            return ActionResult(ActionStatus.FAILED, f"relève IMAP interrompue: {exc}", {"messages": handled})
        failed = [h for h in handled if h.get("mdn") == "failed"]
        summary = ", ".join(f"{h['message_id']}: {h['result']}" for h in handled) or "aucun message"
        status = ActionStatus.FAILED if failed else ActionStatus.DONE
        return ActionResult(
            status, f"{len(handled)} message(s) traité(s) pour {establishment.name}: {summary}", {"messages": handled}
        )

    def _integrate(self, action: MssanteReceive, raw: bytes) -> dict[str, Any] | None:
        read = read_received(raw)
        if read is None:
            return None  # no document (a receipt, a plain message): left for a person to read
        msg, identities = read
        error, person = self._decide(identities, action.patients)
        if self.has("mdn-toujours-traite"):
            error = None
        outcome: dict[str, Any] = {
            "message_id": str(msg.get("Message-ID", "")).strip(),
            "person": person.ins.value if person else (identities[0].ins if identities else None),
            "result": "processed" if error is None else error[0],
        }
        notify = str(msg.get("Disposition-Notification-To", "")).strip().strip("<>")
        if notify and not self.has("mdn-absent"):
            establishment = action.establishment
            mdn = build_mdn(
                raw,
                reporter=establishment.dui_mailbox,
                reporter_name=establishment.name,
                error=error,
                options=MdnOptions(
                    original_message_id=not self.has("mdn-sans-original-message-id"),
                    ko_subject=not self.has("mdn-objet-sans-code"),
                ),
            )
            certificate = self._certificate(action) if action.auth == "certificate" else None
            sent = self._submit(mdn, establishment.dui_mailbox, [_address(notify)], certificate=certificate)
            outcome["mdn"] = "sent" if sent.status is ActionStatus.DONE else "failed"
            outcome["mdn_detail"] = sent.detail
        return outcome

    # -- HL7 v2 relay -------------------------------------------------------------------------------------------
    def relay_mssante_hl7(self, action: MssanteRelay) -> ActionResult:
        options = RelayOptions(
            document=self._mss_options(),
            patient_flag=not self.has("hl7-sans-destinataire-patient"),
            acknowledge_zam=not self.has("hl7-zam-ignore"),
            pid_ins="other"
            if self.has("hl7-pid-autre-ins")
            else "wrong-key"
            if self.has("hl7-cle-ins-pid-erronee")
            else "person",
        )
        return relay_document(self._env(), action, options)

    # -- directory ----------------------------------------------------------------------------------------------
    def lookup_directory(self, action: DirectoryLookup) -> ActionResult:
        env = self._env()
        if self.has("annuaire-non-consulte"):
            guess = action.query if "@" in action.query else f"{action.query}@mssante.fr"
            return ActionResult(ActionStatus.DONE, f"adresse proposée: {guess}", {"addresses": [guess]})
        import http.client

        base = urllib.parse.urlsplit(env.endpoints["mssante"]["directory"])
        params = [("mailbox-mss", action.query)] + (
            [("mailbox-mss-type", action.mailbox_type)] if action.mailbox_type else []
        )
        path = f"{base.path}/PractitionerRole?{urllib.parse.urlencode(params)}"
        conn = http.client.HTTPSConnection(base.hostname or "127.0.0.1", base.port, context=self._tls(), timeout=30)
        try:
            conn.request("GET", path, headers={"Accept": "application/fhir+json"})
            response = conn.getresponse()
            body = response.read()
        except OSError as exc:
            return ActionResult(ActionStatus.FAILED, f"annuaire injoignable: {exc}")
        finally:
            conn.close()
        if response.status != 200:
            return ActionResult(ActionStatus.FAILED, f"annuaire: HTTP {response.status}")
        bundle = json.loads(body)
        addresses = [
            telecom["value"]
            for entry in bundle.get("entry", [])
            for telecom in entry.get("resource", {}).get("telecom", [])
            if telecom.get("system") == "email"
        ]
        return ActionResult(ActionStatus.DONE, f"{len(addresses)} adresse(s) trouvée(s)", {"addresses": addresses})


def _send_raw(smtp: smtplib.SMTP, sender: str, recipients: list[str], wire: bytes) -> dict[str, Any]:
    """MAIL, RCPT, DATA with bytes smtplib would have normalised (its ``data`` turns bare LF into CRLF)."""
    code, text = smtp.mail(sender)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, text, sender)
    for rcpt in recipients:
        code, text = smtp.rcpt(rcpt)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({rcpt: (code, text)})
    code, text = smtp.docmd("DATA")
    if code != 354:
        raise smtplib.SMTPDataError(code, text)
    smtp.send(re.sub(rb"(?m)^\.", b"..", wire) + (b"" if wire.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    code, text = smtp.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, text)
    return {}


def _address(value: str) -> str:
    from email.utils import parseaddr

    return parseaddr(value)[1] or value
