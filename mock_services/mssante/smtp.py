"""MSSanté SMTP submission (message submission port, RFC 6409) as an operator's server presents it to a DUI.

Behaviour:
- STARTTLS is mandatory before anything else (RFC 3207 §4; 530 5.7.0), then AUTH (RFC 4954; PLAIN / LOGIN /
  EXTERNAL / XOAUTH2, :mod:`.smtp_auth`; 535 5.7.8 on bad credentials) against the MSSanté test directory;
  MAIL / RCPT / DATA before AUTH get 530 5.7.0 (RFC 4954 §6);
- the envelope sender must be the authenticated mailbox, or a mailbox of the same establishment when the login
  is the DUI's applicative mailbox (BAL APP sending for the BAL ORG) — 550 5.7.1 otherwise;
- every recipient must exist in the directory (professional, organisation, applicative, practice mailboxes and
  the persons' Mon espace santé mailboxes ``<INS>@patient.mssante.fr``) — 550 5.1.1 otherwise (RFC 3463);
- DATA: CR and LF only as CRLF (RFC 5321 §2.3.8) and lines of at most 1000 octets (§4.5.3.1.6) — 500 5.5.2;
  the size limit (RFC 1870) — 552 5.3.4; then the content is validated by
  :func:`harness.validators.mssante_message.validate_message`; in strict mode (default) an ERROR finding refuses the
  message with 554 5.6.0 and the finding's code. A message without Message-ID gets one from the server, which
  RFC 6409 §8.3 allows (RFC 5322 §3.6.4 makes it a SHOULD), with a warning finding;
- fault ``mssante.reply_lost``: the next accepted message is journaled (accepted, ``reply_withheld``) and delivered,
  then the connection is closed without the 250 reply. The client cannot tell it was delivered: RFC 5321 §3.8 has
  it treat the lost connection as a 451 and retry, which delivers a second copy of a message the server had
  already taken responsibility for (§6.1; §4.5.3.2.6 names these multiple copies), journaled as a second row.
Every acceptance and refusal — including the 530 of a DUI trying to work before STARTTLS or AUTH and what aiosmtpd
answers by itself (501 / 503 / 504, the 500 of an unreadable command line) — is committed to the journal *before* the
reply is sent.

aiosmtpd is used through its documented seams only (1.4, ``docs/smtp.rst`` "Subclassing", ``docs/handlers.rst``,
``docs/auth.rst``): handler hooks, AUTH mechanism hooks, ``smtp_<COMMAND>`` overrides, ``push`` and the
``Session`` / ``Envelope`` attributes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import ssl
import unicodedata
from collections.abc import Callable
from email.utils import make_msgid
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException, syntax

from harness.core.journal import Outcome
from harness.fields.identity import production_ins
from harness.fields.identity_status import IdentityStatusBook
from harness.host.asgi_tls import handshake_refusal, ssl_reason
from harness.host.connections import IDLE_TIMEOUT, ConnectionCount, peer_of
from harness.host.simulator import SimulatorContext
from harness.validators import Finding, Severity
from harness.validators.mssante_message import validate_message
from harness.validators.xdm import XdmLimits
from mock_services.mssante.directory import MailboxDirectory
from mock_services.mssante.faults import FAULT_REPLY_LOST, FAULT_SLOW, FAULT_SMTP_REPLY, FAULT_TLS_REFUSED
from mock_services.mssante.imap import certificate_structure
from mock_services.mssante.isolation import (
    RCPT_TEXT,
    SENDER_TEXT,
    connection_caller,
    mailbox_refusal,
    sender_caller,
    structure_finess,
)
from mock_services.mssante.mailflow import MailFlow, looks_like_mdn
from mock_services.mssante.settings import MssanteSettings, SmtpSettings
from mock_services.mssante.smtp_auth import AuthMechanisms, PasswordAuthenticator, peer_certificate, refusing_context

SUBMIT = "smtp.submit"
COMMAND = "smtp.command"  # a command refused by the session rules (530 before STARTTLS / AUTH)
NULL_SENDER = "<>"  # the null reverse-path of MAIL FROM:<>
REPLY_WITHHELD = "réponse 250 retenue par la panne simulée mssante.reply_lost : connexion fermée après la fin du DATA"
AUTH_LINE = 12288  # RFC 4954 §4: an AUTH line with an initial response (a PSC bearer token) may reach 12288 octets
MAX_LINE = 998  # RFC 5321 §4.5.3.1.6: 1000 octets with the CRLF
_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
_SIZE_PARAM = re.compile(r"(?:^|\s)SIZE=(\d{1,20})(?:\s|$)", re.IGNORECASE)  # RFC 1870 §3 esmtp-keyword


class _DropLoginDataNotice(logging.Filter):
    """aiosmtpd 1.4 logs a deprecation notice about its *own* use of Session.login_data on every AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Session.login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataNotice())


def ascii_reply(text: str) -> str:
    """SMTP replies are 7-bit ASCII (RFC 5321 §4.2): strip accents from French wording."""
    return (
        unicodedata.normalize("NFKD", text)
        .encode("ascii", "ignore")
        .decode("ascii")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def reply_code(reply: str) -> str:
    """``550 5.1.1`` of a reply: the basic code, and the enhanced status code (RFC 3463) when there is one."""
    parts = reply.split(maxsplit=2)
    if len(parts) > 1 and re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", parts[1]):
        return f"{parts[0]} {parts[1]}"
    return parts[0] if parts else ""


def wire_problem(data: bytes) -> str | None:
    """The first RFC 5321 rule the DATA bytes break (after dot-unstuffing), in French; ``None`` if none."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf and _BARE_LF.search(data):  # counts first: C-speed on the common, clean message
        return "LF seul, CRLF attendu (RFC 5321 §2.3.8)"
    if data.count(b"\r") != crlf and _BARE_CR.search(data):
        return "CR seul, CRLF attendu (RFC 5321 §2.3.8)"
    lines = data.split(b"\r\n")
    if max(map(len, lines), default=0) > MAX_LINE:
        number, line = next((n, x) for n, x in enumerate(lines, start=1) if len(x) > MAX_LINE)
        return f"ligne {number} de {len(line) + 2} octets, 1000 au plus (RFC 5321 §4.5.3.1.6)"
    return None


class SubmissionHandler(AuthMechanisms):
    """aiosmtpd handler: envelope checks, DATA validation, journal, replies; AUTH EXTERNAL / XOAUTH2 hooks
    (:class:`~mock_services.mssante.smtp_auth.AuthMechanisms`)."""

    def __init__(
        self, ctx: SimulatorContext, directory: MailboxDirectory, settings: SmtpSettings, flow: MailFlow | None = None
    ) -> None:
        self.ctx = ctx
        self.directory = directory
        self.settings = settings
        self.flow = flow  # delivery into the store, MDN receipts, faults (mailflow.py)
        # the harness-wide production-INS policy (setting production_ins = "warn" | "refuse", default warn)
        self.production_ins = MssanteSettings.from_mapping(ctx.settings).production_ins
        self.identities = IdentityStatusBook(ctx.journal)  # RNIV status per (run, ESSMS, INS), kept incrementally
        self.limits = XdmLimits(max_total_bytes=max(settings.max_message_bytes * 4, 1024 * 1024))

    def _caller(self, login: str | None) -> dict[str, str | None]:
        """The authenticated mailbox and its establishment: the identities a fault aimed at a session is matched on."""
        mailbox = self.directory.get(login) if login else None
        return {"actor": login or None, "essms": mailbox.finess if mailbox else None}

    def _reject(
        self,
        *,
        code: str,
        message: str,
        actor: str | None,
        details: dict[str, Any],
        payload: bytes | None = None,
        session: str | None = None,
    ) -> str:
        sender = self.directory.get(details.get("from", "") or "")
        self.ctx.record(
            SUBMIT,
            Outcome.REJECTED,
            actor=actor,
            essms=sender.finess if sender else None,
            error_code=code,
            error_message=message,
            payload=payload,
            payload_type="message/rfc822" if payload else None,
            details=details,
            person=details.get("person"),
            session=session,
        )
        return ascii_reply(f"{code} {message}")

    def refuse_command(self, session: Session, command: str, reply: str, reason: str) -> str:
        """Journal a command refused by the session rules (``smtp.command``: peer, command, reply); returns the reply."""
        peer = session.peer
        login = self.directory.get(str(session.auth_data)) if session.auth_data else None
        self.ctx.record(
            COMMAND,
            Outcome.REJECTED,
            actor=str(session.auth_data) if session.auth_data else None,
            essms=login.finess if login else None,
            error_code=reply_code(reply),
            error_message=reason,
            details={
                "peer": f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer),
                "command": command,
                "reply": reply,
                "tls": session.ssl is not None,
                "authenticated": bool(session.authenticated),
            },
        )
        return reply

    def refuse_oversize(self, session: Session, envelope: Envelope, limit: int) -> str:
        """Journal a DATA that aiosmtpd stopped reading at the size limit (RFC 1870); returns the 552 reply."""
        return self._reject(
            code="552 5.3.4",
            message=f"message trop volumineux (limite {limit} octets)",
            actor=str(session.auth_data or ""),
            details={
                "stage": "data",
                "from": envelope.mail_from,
                "recipients": [{"address": r} for r in envelope.rcpt_tos],
            },
        )

    def refuse_announced_size(self, session: Session, arg: str, announced: int, limit: int) -> str:
        """Journal a MAIL whose SIZE parameter exceeds the limit (RFC 1870 §6.1: 552 before any data)."""
        sender = arg.partition(":")[2].split()[0] if ":" in arg else arg
        return self._reject(
            code="552 5.3.4",
            message=f"message annoncé de {announced} octets (SIZE), limite {limit} octets",
            actor=str(session.auth_data or ""),
            details={"stage": "mail", "from": sender.strip("<>") or NULL_SENDER, "size": announced},
        )

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        _hook_reached(server)
        login = str(session.auth_data or "")
        refusal = self.flow.refuse_sender(self._caller(login)) if self.flow is not None else None
        if refusal is not None:
            return await asyncio.to_thread(
                self._reject,
                code=refusal[0],
                actor=login,
                message=refusal[1],
                details={"stage": "mail", "from": address, "fault": True},
            )
        # RFC 8098 §3: an MDN's envelope sender is null (MAIL FROM:<>); accepted from an authenticated mailbox,
        # and at DATA only for a read receipt
        if address.strip() in ("", NULL_SENDER):
            address = NULL_SENDER  # kept as "<>": aiosmtpd takes an empty mail_from for a missing MAIL command
        if address != NULL_SENDER and not self.directory.may_send_as(login, address):
            return await asyncio.to_thread(
                self._reject,
                code="550 5.7.1",
                actor=login,
                message=f"expediteur {address} non autorise pour le compte {login}",
                details={"stage": "mail", "from": address},
            )
        sender = self.directory.get(address) if address != NULL_SENDER else None
        caller = self._session_caller(server, login) if sender is not None else None
        other = mailbox_refusal(self.ctx, caller, sender) if sender is not None else None
        if other is not None:  # a mailbox of its establishment held by another session: its Sent copy would leak
            return await asyncio.to_thread(
                self._reject,
                code="550 5.7.1",
                actor=login,
                message=f"expediteur {address}: {SENDER_TEXT}",
                details={"stage": "mail", "from": address, "autre_session": other},
                session=self.ctx.session_of(*caller) if caller else None,
            )
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    def _session_caller(self, server: SMTP, login: str) -> tuple[str, str] | None:
        """Who the transaction is, for the test sessions: the authenticated mailbox or its establishment, else the
        certificate presented at STARTTLS (:mod:`mock_services.mssante.isolation`)."""
        return sender_caller(self.ctx, self.directory.get(login)) or connection_caller(
            self.ctx, finess=structure_finess(certificate_structure(peer_certificate(server)))
        )

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        _hook_reached(server)
        recipient = self.directory.get(address)
        if recipient is None:
            return await asyncio.to_thread(
                self._reject,
                code="550 5.1.1",
                actor=str(session.auth_data or ""),
                message=f"{address}: adresse inconnue de l'annuaire MSSante",
                details={"stage": "rcpt", "from": envelope.mail_from, "recipient": address},
            )
        login = str(session.auth_data or "")
        caller = self._session_caller(server, login)
        refusal = mailbox_refusal(self.ctx, caller, recipient)
        if refusal is not None:  # another test session's mailbox: before its quota or faults tell anything of it
            return await asyncio.to_thread(
                self._reject,
                code="550 5.7.1",
                actor=login,
                message=f"{address}: {RCPT_TEXT}",
                details={"stage": "rcpt", "from": envelope.mail_from, "recipient": address, "autre_session": refusal},
                session=self.ctx.session_of(*caller) if caller else None,
            )
        full = self.flow.refuse_recipient(address, self._caller(login)) if self.flow is not None else None
        if full is not None:
            return await asyncio.to_thread(
                self._reject,
                code=full[0],
                actor=login,
                message=full[1],
                details={"stage": "rcpt", "from": envelope.mail_from, "recipient": address, "fault": True},
            )
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        _hook_reached(server)
        login = str(session.auth_data or "")
        slow = self.ctx.take_fault(FAULT_SLOW, **self._caller(login))
        if slow is not None:
            await asyncio.sleep(float(slow.params.get("seconds", 2.0)))
        try:
            reply, withheld = await asyncio.to_thread(self._data, login, envelope)
        except Exception as exc:  # a validator bug must not leak a traceback nor skip the journal
            return await asyncio.to_thread(
                self._reject,
                code="451 4.3.0",
                actor=login,
                message=f"erreur interne du simulateur ({type(exc).__name__}); message non accepte, reessayez",
                details={"stage": "data", "from": envelope.mail_from, "internal_error": repr(exc)[:500]},
            )
        if withheld and isinstance(server, MssanteSMTP):
            server.reply_lost = True  # push() closes the connection instead of sending the reply
        return reply

    def _data(self, login: str, envelope: Envelope) -> tuple[str, bool]:
        """Judge and journal one message: ``(reply, withheld)``, ``withheld`` when fault ``mssante.reply_lost``
        takes the reply of this accepted message."""
        content = envelope.original_content or envelope.content
        data = content if isinstance(content, bytes) else str(content).encode("utf-8", "surrogateescape")
        recipients = [
            {"address": r, "type": str(m.type) if (m := self.directory.get(r)) else "?"} for r in envelope.rcpt_tos
        ]
        details: dict[str, Any] = {"from": envelope.mail_from, "recipients": recipients}
        fault = self.ctx.take_fault(FAULT_SMTP_REPLY, **self._caller(login))
        if fault is not None:
            code = str(fault.params.get("code", "554 5.6.0"))
            text = str(fault.params.get("message", "Message refuse (panne simulee)"))
            refusal = self._reject(
                code=code, message=text, actor=login, details={**details, "fault": True}, payload=data
            )
            return refusal, False
        problem = wire_problem(data)
        if problem is not None:
            refusal = self._reject(
                code="500 5.5.2", message=problem, actor=login, details={**details, "stage": "data"}, payload=data
            )
            return refusal, False
        if self.flow is not None and looks_like_mdn(data):  # a read receipt (RFC 8098): judged as such
            sender = None if envelope.mail_from == NULL_SENDER else envelope.mail_from
            return self.flow.receive_mdn(login, sender, list(envelope.rcpt_tos), data)[1], False
        if envelope.mail_from == NULL_SENDER:
            refusal = self._reject(
                code="550 5.7.1",
                actor=login,
                details=details,
                payload=data,
                message="expediteur vide (MAIL FROM:<>) reserve aux accuses de lecture (RFC 8098)",
            )
            return refusal, False
        report = validate_message(
            data, recipients=list(envelope.rcpt_tos), limits=self.limits, smtputf8=envelope.smtp_utf8
        )
        verdict = production_ins(report.person, self.production_ins) if report.person is not None else None
        if verdict is not None:
            severity = Severity.ERROR if verdict.refuse else Severity.WARNING
            report.findings.append(Finding(verdict.code, verdict.message, severity))
        message_id = report.message_id
        if report.message_id_missing:  # RFC 6409 §8.3: the submission server may add it
            message_id = make_msgid(domain=self.settings.hostname)
            details["message_id_added"] = True
        details.update(
            message_id=message_id,
            subject=report.subject,
            attachments=report.attachments,
            # templateIds tell a CDA R2 level 1 (IHE XDS-SD) from a structured one (observe-only mode matches them)
            documents=[
                {"code": h.code, "ins": h.ins.value if h.ins else None, "templates": list(h.template_ids)}
                for h in report.cda
            ],
            findings=[f.to_dict() for f in report.findings],
            # the IHE_XDM.ZIP as judged here (its findings are also in "findings"): the steps read it, not re-judge it
            xdm=(
                {
                    "subsets": list(report.xdm.subsets),
                    "documents": [d.path for d in report.xdm.documents],
                    "findings": [f.to_dict() for f in report.xdm.findings],
                }
                if report.xdm is not None
                else None
            ),
            to_patient_mailbox=any(r["type"] == "PAT" for r in recipients),
            recipient_counts=MailFlow.counts(recipients),
            person=report.person.value if report.person else None,
        )
        if report.errors and (self.settings.strict or (verdict is not None and verdict.refuse)):
            first = report.errors[0]
            more = f" (+{len(report.errors) - 1})" if len(report.errors) > 1 else ""
            refusal = self._reject(
                code="554 5.6.0",
                message=f"{first.code}: {first.message}{more}",
                actor=login,
                details=details,
                payload=data,
            )
            return refusal, False
        sender = self.directory.get(envelope.mail_from or "")
        # RNIV: only a qualified identity's INS may be used; a warning (never a refusal) when this DUI did not
        # qualify it through INSi in this run (harness.fields.identity_status derives it from the journal).
        unqualified = self.identities.unqualified_ins_finding(
            run_id=self.ctx.run.run_id,
            essms=sender.finess if sender else None,
            ins_value=details["person"],
        )
        if unqualified is not None:
            details["findings"].append(unqualified.to_dict())
        withheld = (
            self.ctx.take_fault(FAULT_REPLY_LOST, **self._caller(login)) is not None
        )  # accepted all the same: journaled as such
        if withheld:
            details.update(fault=True, reply_withheld=REPLY_WITHHELD)
        exchange = self.ctx.record(
            SUBMIT,
            Outcome.ACCEPTED,
            actor=login,
            essms=sender.finess if sender else None,
            person=details["person"],
            payload=data,
            payload_type="message/rfc822",
            details=details,
        )
        if self.flow is not None:
            added = f"Message-ID: {message_id}\r\n".encode("ascii") if details.get("message_id_added") else b""
            self.flow.deliver(
                envelope.mail_from, list(envelope.rcpt_tos), data, exchange.id, session=exchange.session_id, added=added
            )
        return f"250 2.0.0 Ok: queued as {exchange.id}", withheld


def _hook_reached(server: SMTP) -> None:
    """Tell the protocol object that the handler decides this command's reply (journaled by the handler)."""
    if isinstance(server, MssanteSMTP):
        server.hook_reached = True


STARTTLS_FREE = frozenset({"NOOP", "EHLO", "STARTTLS", "QUIT"})  # RFC 3207 §4
AUTH_NEEDED = frozenset({"MAIL", "RCPT", "DATA", "VRFY", "HELP"})  # aiosmtpd's auth_required set (RFC 4954 §6)


class MssanteSMTP(SMTP):
    """aiosmtpd's SMTP with the operator's session rules, so that each refusal is the handler's and is journaled:

    - STARTTLS first (RFC 3207 §4) and AUTH before a transaction (RFC 4954 §6) are checked in the ``smtp_<COMMAND>``
      overrides (aiosmtpd's own ``require_starttls`` answers before any hook, so it is off);
    - DATA: aiosmtpd's per-line limit is raised to the message limit, so the handler gets the bytes and says which
      RFC 5321 rule they break; what aiosmtpd still stops by itself is a message over the size limit, recognised by
      the DATA reply that comes without the envelope's content (``push`` override) and journaled as 552 5.3.4;
    - fault ``tls.certificate_refused``: the next STARTTLS uses a context that trusts no client certificate;
    - fault ``mssante.reply_lost``: the reply to the end of DATA is not sent, the connection is closed instead
      (the handler has journaled and delivered the message: ``reply_lost``);
    - bounds (issue 15 item 5): a connection over the listener's or the peer's limit (``connections``) gets the
      greeting ``421 <domain> Service not available...`` and is closed (RFC 5321 §3.1 and §4.2.3: 421 is the
      temporary refusal of a connection; no enhanced status code in a greeting, RFC 2034 §4); a session silent
      for ``timeout`` seconds gets ``421 4.4.2 <domain> Error: timeout exceeded`` (RFC 5321 §4.5.3.2, RFC 3463
      4.4.2; the enhanced code only after EHLO) and is closed. Both are told to ``refused(listener, peer,
      reason)`` (the host's coalesced ``connection.refused`` journal).
    """

    def __init__(
        self,
        handler: SubmissionHandler,
        connections: ConnectionCount | None = None,
        refused: Callable[[str, str, str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        # read by SMTP.__init__ for its StreamReader: one line may be as long as the whole message (bounded by it)
        self.line_length_limit = max(int(kwargs.get("data_size_limit") or 0), AUTH_LINE) + 3
        super().__init__(handler, **kwargs)
        self.handler = handler
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit, {"AUTH": AUTH_LINE})
        self.reading_data = False
        self.data_envelope: Envelope | None = None
        self.command: str | None = None  # the command being answered (None: aiosmtpd's command-line reader)
        self.hook_reached = False  # whether the handler's hook decides the reply (set by the handler)
        self.journaled_reply = False  # the next reply was journaled by whoever decided it
        self.reply_lost = False  # fault mssante.reply_lost: close instead of replying to the end of DATA
        self.connections = connections
        self.refused = refused
        self.peer = "?"
        self.counted = False  # this connection is counted in ``connections`` (released when it is lost)
        self.turned_away = False  # refused at connection: aiosmtpd's session never started

    def _report(self, reason: str) -> None:
        if self.refused is not None:  # the journal commit blocks: off the event loop
            asyncio.get_running_loop().run_in_executor(None, self.refused, "smtp", self.peer, reason)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None and self.connections is not None:  # the TCP connection (not its STARTTLS layer)
            self.peer = peer_of(transport.get_extra_info("peername"))
            reason = self.connections.admit(self.peer)
            if reason is not None:
                self.turned_away = True
                greeting = f"421 {self.hostname} Service not available, too many connections, try again later"
                transport.write(greeting.encode("ascii") + b"\r\n")  # type: ignore[attr-defined]
                transport.close()
                self._report(reason)
                return
            self.counted = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.counted and self.connections is not None:
            self.counted = False
            self.connections.release(self.peer)
        if not self.turned_away:
            super().connection_lost(error)

    def eof_received(self) -> bool | None:
        return False if self.turned_away else super().eof_received()

    def _timeout_cb(self) -> None:
        """aiosmtpd's idle timer (reset by each command): say 421 before closing, and journal it."""
        if self.transport is not None and not self.transport.is_closing():
            enhanced = "4.4.2 " if self.session is not None and self.session.extended_smtp else ""
            self.transport.write(f"421 {enhanced}{self.hostname} Error: timeout exceeded\r\n".encode("ascii"))  # type: ignore[attr-defined]
            self._report(IDLE_TIMEOUT)
        super()._timeout_cb()

    async def _run(self, command: str, run: Any, arg: str | None) -> None:
        """Run aiosmtpd's command; a refusal it decides itself (syntax 501, sequence 503...) is journaled as
        ``smtp.command`` by :meth:`push`."""
        self.command, self.hook_reached = command, False
        try:
            await run(arg)
        finally:
            self.command = None

    async def _push_journaled(self, status: str) -> None:
        self.journaled_reply = True
        await self.push(status)

    async def _session_refuses(self, command: str) -> bool:
        """Refuse (530 5.7.0, journaled) a command the session state does not allow yet."""
        session = self.session
        assert session is not None
        if session.ssl is None and command not in STARTTLS_FREE:
            reply, reason = "530 5.7.0 Must issue a STARTTLS command first", f"{command} avant STARTTLS (RFC 3207 §4)"
        elif command in AUTH_NEEDED and not session.authenticated:
            reply, reason = "530 5.7.0 Authentication required", f"{command} avant AUTH (RFC 4954 §6)"
        else:
            return False
        await self._push_journaled(
            await asyncio.to_thread(self.handler.refuse_command, session, command, reply, reason)
        )
        return True

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:  # noqa: N802 - aiosmtpd's command method names
        if not await self._session_refuses("HELO"):
            await self._run("HELO", super().smtp_HELO, hostname)

    @syntax("RSET")
    async def smtp_RSET(self, arg: str) -> None:  # noqa: N802
        if not await self._session_refuses("RSET"):
            await self._run("RSET", super().smtp_RSET, arg)

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: str) -> None:  # noqa: N802
        if not await self._session_refuses("HELP"):
            await self._run("HELP", super().smtp_HELP, arg)

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: str) -> None:  # noqa: N802
        if not await self._session_refuses("VRFY"):
            await self._run("VRFY", super().smtp_VRFY, arg)

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:  # noqa: N802
        if not await self._session_refuses("AUTH"):
            await self._run("AUTH", super().smtp_AUTH, arg)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:  # noqa: N802
        if await self._session_refuses("MAIL"):
            return
        announced = _SIZE_PARAM.search(arg or "")
        limit = int(self.data_size_limit or 0)
        if announced and limit and int(announced[1]) > limit and self.session is not None:  # RFC 1870 §6.1
            await self._push_journaled(
                await asyncio.to_thread(
                    self.handler.refuse_announced_size, self.session, arg or "", int(announced[1]), limit
                )
            )
            return
        await self._run("MAIL", super().smtp_MAIL, arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:  # noqa: N802
        if not await self._session_refuses("RCPT"):
            await self._run("RCPT", super().smtp_RCPT, arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
        if await self._session_refuses("DATA"):
            return
        self.data_envelope = self.envelope  # aiosmtpd fills *this* envelope's content before handle_DATA
        try:
            await self._run("DATA", super().smtp_DATA, arg)
        finally:
            self.data_envelope = None
            self.reading_data = False

    async def push(self, status: Any) -> None:
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else str(status)
        envelope, session = self.data_envelope, self.session
        if envelope is not None and text.startswith("354"):
            self.reading_data = True  # aiosmtpd is reading the message
        elif self.reading_data and envelope is not None and session is not None:
            self.reading_data = False
            if envelope.original_content is None:  # the reply came before the content reached the handler
                status = await asyncio.to_thread(
                    self.handler.refuse_oversize, session, envelope, int(self.data_size_limit or 0)
                )
            elif self.reply_lost and self.transport is not None:
                self.reply_lost = False
                self.transport.close()  # the message is accepted and journaled; its 250 never leaves
                return
        elif self.journaled_reply:
            self.journaled_reply = False
        elif text[:1] in ("4", "5") and session is not None and not self._journaled_elsewhere(text):
            reason = (
                f"{self.command} refusé par le protocole: {text}"
                if self.command
                else f"commande refusée par le protocole: {text}"
            )
            await asyncio.to_thread(self.handler.refuse_command, session, self.command or "", text, reason)
        await super().push(status)

    def _journaled_elsewhere(self, reply: str) -> bool:
        """The handler's hooks journal their MAIL / RCPT / DATA refusals, the AUTH layer its 535."""
        if self.command in ("MAIL", "RCPT", "DATA") and self.hook_reached:
            return True
        return self.command == "AUTH" and reply.startswith("535")

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:  # noqa: N802
        ctx = self.handler.ctx
        if not arg and self.tls_context is not None and ctx.take_fault(FAULT_TLS_REFUSED) is not None:
            await asyncio.to_thread(
                ctx.record,
                "smtp.starttls",
                Outcome.REJECTED,
                error_code="TLS bad_certificate",
                error_message="certificat client refusé (panne simulée)",
                details={"fault": True},
            )
            server = ctx.pki.server
            self.tls_context = refusing_context(str(server.chain_path), str(server.key_path))
        try:
            await self._run("STARTTLS", super().smtp_STARTTLS, arg)
        except TLSSetupException as exc:  # a refused handshake is journaled with the peer (issue 20 item 8)
            peer = self.session.peer if self.session is not None else None
            refusal = handshake_refusal(ctx.name, "smtp.starttls", peer, ssl_reason(exc.__cause__), "smtp")
            await asyncio.to_thread(ctx.commit, refusal)
            raise


class SubmissionServer:
    """The SMTP submission listener (one aiosmtpd protocol instance per connection)."""

    def __init__(
        self,
        ctx: SimulatorContext,
        directory: MailboxDirectory | None = None,
        flow: MailFlow | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = SmtpSettings.from_mapping(dict(ctx.settings))
        self.directory = directory or MailboxDirectory(ctx)
        self.handler = SubmissionHandler(ctx, self.directory, self.settings, flow)
        self.authenticator = PasswordAuthenticator(ctx, self.directory)
        self.tls_context = tls_context or ctx.pki.server_ssl_context()  # built once: loading the chain costs ~1 ms
        self._server: asyncio.base_events.Server | None = None
        self._connections: ConnectionCount | None = None

    def _protocol(self) -> SMTP:
        assert self._connections is not None
        return MssanteSMTP(
            self.handler,
            connections=self._connections,
            refused=self.ctx.refused,
            hostname=self.settings.hostname,
            ident="socle-harness MSSante simulator",
            tls_context=self.tls_context,
            require_starttls=False,  # enforced by MssanteSMTP, which journals the 530
            auth_required=True,
            auth_require_tls=True,
            authenticator=self.authenticator,
            data_size_limit=self.settings.max_message_bytes,
            enable_SMTPUTF8=False,
            timeout=self.settings.idle_timeout,
        )

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        self._connections = ConnectionCount(self.ctx.connection_limits)  # this listener's, used from its loop
        self._server = await loop.create_server(
            self._protocol, host=self.ctx.bind_host, port=self.ctx.port("smtp"), reuse_port=self.ctx.reuse_port or None
        )
        port = self._server.sockets[0].getsockname()[1]
        return self.ctx.address(port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
