"""Mail flow of the MSSanté simulator around its store: delivery, MDN receipts, mail sent to the DUI, faults.

- An accepted submission is delivered to every recipient mailbox of the directory (``Return-Path`` and
  ``Received`` trace fields added as the delivering MTA does, RFC 5321 §4.4), after its journal commit.
- A submission that is a disposition notification (RFC 8098) is judged by :func:`harness.validators.mdn.validate_mdn`
  and must answer a message this simulator delivered (its ``Original-Message-ID``), from the mailbox that
  received it, to the original's ``Disposition-Notification-To``: journaled as ``smtp.mdn``; in strict mode an
  ERROR refuses it (``554 5.6.0``).
- The harness plays a partner and sends the DUI a message (:meth:`MailFlow.send_to_dui`): journaled as
  ``smtp.inbound`` (direction ``to_dui``) with its Message-ID, then delivered to the DUI's mailbox.
- Faults a scenario injects (``ctx.faults``): ``mailbox.full`` (``552 5.2.2`` at RCPT, RFC 3463),
  ``tls.required`` (``530 5.7.0`` at MAIL, RFC 3207), ``smtp.reply`` (any code, at DATA; see smtp.py),
  ``server.slow`` (delayed greeting), ``tls.certificate_refused`` (TLS alert at the next handshake).
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from typing import Any

from harness.core.journal import Direction, Exchange, Journal, JournalFilter, Outcome
from harness.fields.testdata import MailboxType
from harness.host.simulator import SimulatorContext
from harness.validators import Finding, Severity
from harness.validators.mdn import is_mdn, validate_mdn
from harness.validators.mssante_message import header_value, parse_message
from mock_services.mssante.directory import MailboxDirectory
from mock_services.mssante.faults import FAULT_MAILBOX_FULL, FAULT_TLS_REQUIRED
from mock_services.mssante.store import INBOX, MailStore, StoredMessage, message_id_of

MDN = "smtp.mdn"
INBOUND = "smtp.inbound"
DELIVER = "smtp.deliver"


def trace_headers(sender: str | None, recipient: str, hostname: str, exchange_id: str | None) -> bytes:
    """``Return-Path`` and ``Received`` fields a final delivery prepends (RFC 5321 §4.4)."""
    stamp = format_datetime(datetime.now(UTC))
    return (
        f"Return-Path: <{sender or ''}>\r\n"
        f"Received: from dui by {hostname} with ESMTPSA id {exchange_id or '-'}\r\n\tfor <{recipient}>; {stamp}\r\n"
    ).encode("ascii", "replace")


def looks_like_mdn(data: bytes) -> bool:
    """Cheap check on the header section: ``Content-Type: multipart/report; report-type=disposition-notification``."""
    head = data[:16384].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if b"multipart/report" not in head.lower():
        return False
    # the parameter, not a substring: a delivery-status report (RFC 3464) carrying a Disposition-Notification-To
    # header is not a read receipt
    return is_mdn(BytesHeaderParser(policy=policy.compat32).parsebytes(head + b"\r\n\r\n"))


@dataclass(frozen=True)
class Inbound:
    """A message the harness sent to the DUI, as delivered."""

    exchange: Exchange
    message: StoredMessage
    mailbox: str


class InboundIndex:
    """The inbound exchanges (``smtp.inbound``, harness -> DUI) of one run by Message-ID, read from the journal
    incrementally, so judging an MDN (RFC 8098 ``Original-Message-ID``) costs the same however many messages the
    run sent before (issue 18: it read every inbound exchange of the run per MDN).

    The first lookup of a run reads the run's inbound exchanges (the query each MDN made before); each next one
    reads only the exchanges journaled since the previous lookup, by their seq alone (``since_seq`` /
    ``until_seq`` bound it to what the journal held at that moment, as
    :class:`~harness.fields.identity_status.IdentityStatusBook` does): a range of the journal's key, where a filter
    on the service, operation or run would make the journal walk every inbound exchange of the run again. The
    cost of a lookup follows what was journaled since the previous one, not the size of the run. It holds the
    run's inbound exchanges, as the mail store holds their messages; another run starts it again. Thread-safe."""

    def __init__(self, journal: Journal, service: str) -> None:
        self.journal = journal
        self.service = service
        self._lock = threading.Lock()
        self._run: str | None = None
        self._seen = 0  # the journal's last seq read
        self._by_message_id: dict[str, list[Exchange]] = {}

    def _filter(self, run_id: str, until: int | None = None) -> JournalFilter:
        return JournalFilter(service=self.service, operation=INBOUND, run_id=run_id, until_seq=until)

    def find(self, run_id: str, message_id: str) -> list[Exchange]:
        """The inbound exchanges of ``run_id`` that sent ``message_id``, in journal order. None known: the whole
        run is read again (an unknown Message-ID, or an exchange another serving process committed under a seq
        this index had already read past), so the answer is the journal's."""
        with self._lock:
            mark = self.journal.last_seq()
            if run_id != self._run:
                self._run, self._by_message_id = run_id, {}
                read = self.journal.query(self._filter(run_id, until=mark))
            elif mark > self._seen:
                read = [
                    e
                    for e in self.journal.query(JournalFilter(since_seq=self._seen, until_seq=mark))
                    if (e.service, e.operation, e.run_id) == (self.service, INBOUND, run_id)
                ]
            else:
                read = []
            for exchange in read:
                key = exchange.details.get("message_id")
                if isinstance(key, str):
                    self._by_message_id.setdefault(key, []).append(exchange)
            self._seen = mark
            found = list(self._by_message_id.get(message_id, ()))
        if found:
            return found
        return [e for e in self.journal.query(self._filter(run_id)) if e.details.get("message_id") == message_id]


class MailFlow:
    def __init__(
        self, ctx: SimulatorContext, store: MailStore, directory: MailboxDirectory, *, strict: bool, hostname: str
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.directory = directory
        self.strict = strict
        self.hostname = hostname
        self.inbound = InboundIndex(ctx.journal, ctx.name)

    # -- faults on the SMTP dialogue --------------------------------------------------------------------------------
    def refuse_sender(self, caller: Mapping[str, str | None] | None = None) -> tuple[str, str] | None:
        """``caller``: the identities of the transaction (the authenticated mailbox, its establishment), which a
        fault aimed at a test session is matched on (:meth:`SimulatorContext.take_fault`)."""
        if self.ctx.take_fault(FAULT_TLS_REQUIRED, **(caller or {})) is not None:
            return "530 5.7.0", "Must issue a STARTTLS command first (TLS requis, panne simulee)"
        return None

    def refuse_recipient(self, address: str, caller: Mapping[str, str | None] | None = None) -> tuple[str, str] | None:
        if self.store.over_quota(address):  # [settings.mssante] mailbox_quota_bytes (RFC 3463 §3.3 X.2.2)
            return (
                "552 5.2.2",
                f"{address}: boite aux lettres pleine (quota de {self.store.quota_bytes} octets atteint)",
            )
        # a fault aimed at another recipient (params.address) or another session is not taken: it stays whole
        fault = self.ctx.take_fault(FAULT_MAILBOX_FULL, match={"address": address}, **(caller or {}))
        if fault is None:
            return None
        return "552 5.2.2", f"{address}: boite aux lettres pleine (panne simulee)"

    # -- delivery -----------------------------------------------------------------------------------------------
    def deliver(
        self,
        sender: str | None,
        recipients: list[str],
        data: bytes,
        exchange_id: str | None,
        *,
        session: str | None = None,
        added: bytes = b"",
    ) -> dict[str, int]:
        """Deliver an accepted submission to each recipient's INBOX (``session``: the exchange's test session);
        returns ``{address: uid}``. ``added``: header fields the server added in front of ``data`` (a Message-ID),
        kept with each copy so that the body stays the bytes the journal holds (stored once when shared)."""
        delivered: dict[str, int] = {}
        for rcpt in recipients:
            mailbox = self.directory.get(rcpt)
            if mailbox is None:
                continue
            stored = self.store.deliver(
                mailbox.address,
                data,  # the body, kept once for every recipient and the Sent copy
                prefix=trace_headers(sender, mailbox.address, self.hostname, exchange_id) + added,
                exchange_id=exchange_id,
                session=session,
            )
            delivered[mailbox.address] = stored.uid
        if sender is not None and self.directory.get(sender) is not None:
            self.store.deliver(
                sender,
                data,
                prefix=added,
                folder="Sent",
                flags=("\\Seen",),
                exchange_id=exchange_id,
                recent=False,
                session=session,
            )
        return delivered

    @staticmethod
    def counts(recipients: list[dict[str, str]]) -> dict[str, int]:
        """Recipients by kind: the persons' Mon espace santé mailboxes feed the MSSanté usage indicator apart."""
        patient = sum(1 for r in recipients if r.get("type") == str(MailboxType.PAT))
        return {"patient": patient, "professional": len(recipients) - patient}

    # -- MDN ----------------------------------------------------------------------------------------------------
    def originals(self, message_id: str) -> list[Exchange]:
        """The inbound exchanges (harness -> DUI) of this run that sent ``message_id`` (:class:`InboundIndex`)."""
        return self.inbound.find(self.ctx.run.run_id, message_id)

    def receive_mdn(self, login: str, sender: str | None, recipients: list[str], data: bytes) -> tuple[Exchange, str]:
        """Judge and journal an MDN submission; returns the exchange and the SMTP reply."""
        report = validate_mdn(data)
        findings = list(report.findings)
        original = self.originals(report.original_message_id)[-1:] if report.original_message_id else []
        details: dict[str, Any] = {
            "from": sender,
            "recipients": [{"address": r} for r in recipients],
            "original_message_id": report.original_message_id,
            "disposition": report.disposition,
            "processed": report.processed,
            "error_code": report.error_code,
            "error_label": report.error_label,
            "final_recipient": report.final_recipient,
            "original_recipient": report.original_recipient,
            "subject": report.subject,
        }
        person = None
        if report.original_message_id and not original:
            findings.append(
                _finding("MDN-ORIGINAL-UNKNOWN", f"l'accusé désigne un message inconnu: {report.original_message_id}")
            )
        if original:
            inbound = original[0]
            person = inbound.person
            details["original_exchange"] = inbound.id
            dui_mailbox = str(inbound.details.get("to", ""))
            expected_to = str(inbound.details.get("disposition_notification_to", ""))
            if report.final_recipient and report.final_recipient.casefold() != dui_mailbox.casefold():
                findings.append(
                    _finding(
                        "MDN-FINAL-RECIPIENT",
                        f"Final-Recipient {report.final_recipient}: le message avait été remis à {dui_mailbox}",
                    )
                )
            who = sender or login  # a null envelope sender (RFC 8098 §3): the authenticated mailbox answers for it
            if who and not self.directory.may_send_as(who, dui_mailbox) and who.casefold() != dui_mailbox.casefold():
                findings.append(
                    _finding("MDN-FROM", f"accusé envoyé par {who}, le message avait été remis à {dui_mailbox}")
                )
            if expected_to and expected_to.casefold() not in {r.casefold() for r in recipients}:
                findings.append(
                    _finding(
                        "MDN-TO",
                        f"accusé adressé à {', '.join(recipients)} au lieu de {expected_to} (Disposition-Notification-To)",
                    )
                )
        details["findings"] = [f.to_dict() for f in findings]
        errors = [f for f in findings if f.severity is Severity.ERROR]
        if self.strict and errors:
            exchange = self.ctx.record(
                MDN,
                Outcome.REJECTED,
                actor=login,
                person=person,
                error_code="554 5.6.0",
                error_message=f"{errors[0].code}: {errors[0].message}",
                payload=data,
                payload_type="message/rfc822",
                details=details,
            )
            return exchange, _ascii(f"554 5.6.0 {errors[0].code}: {errors[0].message}")
        exchange = self.ctx.record(
            MDN,
            Outcome.ACCEPTED,
            actor=login,
            person=person,
            payload=data,
            payload_type="message/rfc822",
            details=details,
            essms=self.directory.get(sender).finess if sender and self.directory.get(sender) else None,
        )
        self.deliver(sender, recipients, data, exchange.id, session=exchange.session_id)
        return exchange, f"250 2.0.0 Ok: MDN queued as {exchange.id}"

    # -- mail sent by the harness to the DUI --------------------------------------------------------------------
    def send_to_dui(
        self,
        data: bytes,
        *,
        sender: str,
        mailbox: str,
        person: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Inbound:
        """Deliver a message a (simulated) professional sends to the DUI's mailbox; journaled first."""
        target = self.directory.get(mailbox)
        if target is None:
            raise LookupError(f"BAL inconnue de l'annuaire: {mailbox}")
        msg = parse_message(data)
        info: dict[str, Any] = {
            "from": sender,
            "to": target.address,
            "message_id": message_id_of(data),
            "subject": header_value(msg, "Subject"),
            "disposition_notification_to": (header_value(msg, "Disposition-Notification-To") or "").strip().strip("<>")
            or None,
            **(details or {}),
        }
        full = self.refuse_recipient(target.address)
        if full is not None:
            exchange = self.ctx.record(
                INBOUND,
                Outcome.REJECTED,
                direction=Direction.TO_DUI,
                actor=sender,
                essms=target.finess,
                person=person,
                error_code=full[0],
                error_message=full[1],
                payload=data,
                payload_type="message/rfc822",
                details=info,
            )
            raise MailboxFullError(exchange)
        exchange = self.ctx.record(
            INBOUND,
            Outcome.ACCEPTED,
            direction=Direction.TO_DUI,
            actor=sender,
            essms=target.finess,
            person=person,
            payload=data,
            payload_type="message/rfc822",
            details=info,
        )
        stored = self.store.deliver(
            target.address,
            data,
            prefix=trace_headers(sender, target.address, self.hostname, exchange.id),
            folder=INBOX,
            exchange_id=exchange.id,
            session=exchange.session_id,
        )
        return Inbound(exchange, stored, target.address)


class MailboxFullError(Exception):
    def __init__(self, exchange: Exchange) -> None:
        super().__init__(f"{exchange.error_code} {exchange.error_message}")
        self.exchange = exchange


def _ascii(text: str) -> str:
    """SMTP replies are 7-bit ASCII (RFC 5321 §4.2)."""
    return (
        unicodedata.normalize("NFKD", text)
        .encode("ascii", "ignore")
        .decode("ascii")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def _finding(code: str, message: str) -> Finding:
    return Finding(code, message)
