"""MSSanté SMTP submission (message submission port, RFC 6409) as an operator's server presents it to a DUI.

Behaviour:
- STARTTLS is mandatory before anything else (RFC 3207; 530 5.7.0), then AUTH PLAIN/LOGIN (RFC 4954; 535 5.7.8
  on bad credentials) against the MSSanté test directory;
- the envelope sender must be the authenticated mailbox, or a mailbox of the same establishment when the login
  is the DUI's applicative mailbox (BAL APP sending for the BAL ORG) — 550 5.7.1 otherwise;
- every recipient must exist in the directory (professional, organisation, applicative, practice mailboxes and
  the persons' Mon espace santé mailboxes ``<INS>@patient.mssante.fr``) — 550 5.1.1 otherwise (RFC 3463);
- DATA is validated by :func:`harness.validators.mssante_message.validate_message`; in strict mode (default)
  an ERROR finding refuses the message with 554 5.6.0 and the finding's code.
Every acceptance and refusal is committed to the journal *before* the reply is sent.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import unicodedata
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from harness.core.journal import Direction, Exchange, Outcome
from harness.fields.identity_status import unqualified_ins_finding
from harness.fields.testdata import Mailbox, MailboxType
from harness.host.simulator import SimulatorContext
from harness.validators.mssante_message import validate_message
from harness.validators.xdm import XdmLimits
from mock_services.mssante.mailflow import MailFlow, looks_like_mdn

SUBMIT = "smtp.submit"
NULL_SENDER = "<>"  # the null reverse-path of MAIL FROM:<>


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


@dataclass(frozen=True)
class SmtpSettings:
    strict: bool = True
    max_message_bytes: int = 20 * 1024 * 1024
    hostname: str = "smtp.mssante.test"

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> SmtpSettings:
        known = {k: raw[k] for k in ("strict", "max_message_bytes", "hostname") if k in raw}
        return cls(**known)


class MailboxDirectory:
    """Read-only view of the MSSanté test directory for one run."""

    def __init__(self, ctx: SimulatorContext) -> None:
        self._by_address = {m.address.casefold(): m for m in ctx.testdata.mailboxes}

    def get(self, address: str) -> Mailbox | None:
        return self._by_address.get(address.strip().strip("<>").casefold())

    def may_send_as(self, login: str, sender: str) -> bool:
        user, mailbox = self.get(login), self.get(sender)
        if user is None or mailbox is None:
            return False
        if user.address.casefold() == mailbox.address.casefold():
            return True
        return user.type is MailboxType.APP and user.finess is not None and user.finess == mailbox.finess


class Authenticator:
    """aiosmtpd authenticator checking AUTH PLAIN / LOGIN against the directory's test passwords."""

    def __init__(self, ctx: SimulatorContext, directory: MailboxDirectory) -> None:
        self.ctx = ctx
        self.directory = directory

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        mailbox = self.directory.get(login)
        if (
            mailbox is not None
            and mailbox.password is not None
            and auth_data.password.decode("utf-8", "replace") == mailbox.password
        ):
            return AuthResult(success=True, auth_data=mailbox.address)
        self.ctx.record(
            Exchange(
                service=self.ctx.name,
                operation="smtp.auth",
                direction=Direction.FROM_DUI,
                outcome=Outcome.REJECTED,
                actor=login[:200],
                error_code="535 5.7.8",
                error_message="identifiant ou mot de passe MSSanté invalide",
                essms=mailbox.finess if mailbox else None,
            )
        )
        return AuthResult(success=False, handled=False, message="535 5.7.8 Authentication credentials invalid")


class SubmissionHandler:
    """aiosmtpd handler: envelope checks, DATA validation, journal, replies."""

    def __init__(
        self, ctx: SimulatorContext, directory: MailboxDirectory, settings: SmtpSettings, flow: MailFlow | None = None
    ) -> None:
        self.ctx = ctx
        self.directory = directory
        self.settings = settings
        self.flow = flow  # delivery into the store, MDN receipts, faults (mailflow.py)
        self.limits = XdmLimits(max_total_bytes=max(settings.max_message_bytes * 4, 1024 * 1024))

    def _reject(
        self, *, code: str, message: str, actor: str | None, details: dict[str, Any], payload: bytes | None = None
    ) -> str:
        sender = self.directory.get(details.get("from", "") or "")
        self.ctx.record(
            Exchange(
                service=self.ctx.name,
                operation=SUBMIT,
                direction=Direction.FROM_DUI,
                outcome=Outcome.REJECTED,
                actor=actor,
                essms=sender.finess if sender else None,
                error_code=code,
                error_message=message,
                payload=payload,
                payload_type="message/rfc822" if payload else None,
                details=details,
                person=details.get("person"),
            )
        )
        return ascii_reply(f"{code} {message}")

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        login = str(session.auth_data or "")
        refusal = self.flow.refuse_sender() if self.flow is not None else None
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
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.directory.get(address) is None:
            return await asyncio.to_thread(
                self._reject,
                code="550 5.1.1",
                actor=str(session.auth_data or ""),
                message=f"{address}: adresse inconnue de l'annuaire MSSante",
                details={"stage": "rcpt", "from": envelope.mail_from, "recipient": address},
            )
        full = self.flow.refuse_recipient(address) if self.flow is not None else None
        if full is not None:
            return await asyncio.to_thread(
                self._reject,
                code=full[0],
                actor=str(session.auth_data or ""),
                message=full[1],
                details={"stage": "rcpt", "from": envelope.mail_from, "recipient": address, "fault": True},
            )
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        login = str(session.auth_data or "")
        slow = self.ctx.take_fault("server.slow")
        if slow is not None:
            await asyncio.sleep(float(slow.params.get("seconds", 2.0)))
        try:
            return await asyncio.to_thread(self._data, login, envelope)
        except Exception as exc:  # a validator bug must not leak a traceback nor skip the journal
            return await asyncio.to_thread(
                self._reject,
                code="451 4.3.0",
                actor=login,
                message=f"erreur interne du simulateur ({type(exc).__name__}); message non accepte, reessayez",
                details={"stage": "data", "from": envelope.mail_from, "internal_error": repr(exc)[:500]},
            )

    def _data(self, login: str, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        data = content if isinstance(content, bytes) else str(content).encode("utf-8", "surrogateescape")
        recipients = [
            {"address": r, "type": str(m.type) if (m := self.directory.get(r)) else "?"} for r in envelope.rcpt_tos
        ]
        details: dict[str, Any] = {"from": envelope.mail_from, "recipients": recipients}
        fault = self.ctx.take_fault("smtp.reply")
        if fault is not None:
            code = str(fault.params.get("code", "554 5.6.0"))
            text = str(fault.params.get("message", "Message refuse (panne simulee)"))
            return self._reject(code=code, message=text, actor=login, details={**details, "fault": True}, payload=data)
        if self.flow is not None and looks_like_mdn(data):  # a read receipt (RFC 8098): judged as such
            sender = None if envelope.mail_from == NULL_SENDER else envelope.mail_from
            return self.flow.receive_mdn(login, sender, list(envelope.rcpt_tos), data)[1]
        if envelope.mail_from == NULL_SENDER:
            return self._reject(
                code="550 5.7.1",
                actor=login,
                details=details,
                payload=data,
                message="expediteur vide (MAIL FROM:<>) reserve aux accuses de lecture (RFC 8098)",
            )
        report = validate_message(data, recipients=list(envelope.rcpt_tos), limits=self.limits)
        details.update(
            message_id=report.message_id,
            subject=report.subject,
            attachments=report.attachments,
            # templateIds tell a CDA R2 level 1 (IHE XDS-SD) from a structured one (observe-only mode matches them)
            documents=[
                {"code": h.code, "ins": h.ins.value if h.ins else None, "templates": list(h.template_ids)}
                for h in report.cda
            ],
            findings=[f.to_dict() for f in report.findings],
            to_patient_mailbox=any(r["type"] == "PAT" for r in recipients),
            recipient_counts=MailFlow.counts(recipients),
            person=report.person.value if report.person else None,
        )
        if self.settings.strict and report.errors:
            first = report.errors[0]
            more = f" (+{len(report.errors) - 1})" if len(report.errors) > 1 else ""
            return self._reject(
                code="554 5.6.0",
                message=f"{first.code}: {first.message}{more}",
                actor=login,
                details=details,
                payload=data,
            )
        sender = self.directory.get(envelope.mail_from or "")
        # RNIV: only a qualified identity's INS may be used; a warning (never a refusal) when this DUI did not
        # qualify it through INSi in this run (harness.fields.identity_status derives it from the journal).
        unqualified = unqualified_ins_finding(
            self.ctx.journal,
            run_id=self.ctx.run.run_id,
            essms=sender.finess if sender else None,
            ins_value=details["person"],
        )
        if unqualified is not None:
            details["findings"].append(unqualified.to_dict())
        exchange = self.ctx.record(
            Exchange(
                service=self.ctx.name,
                operation=SUBMIT,
                direction=Direction.FROM_DUI,
                outcome=Outcome.ACCEPTED,
                actor=login,
                essms=sender.finess if sender else None,
                person=details["person"],
                payload=data,
                payload_type="message/rfc822",
                details=details,
            )
        )
        if self.flow is not None:
            self.flow.deliver(envelope.mail_from, list(envelope.rcpt_tos), data, exchange.id)
        return f"250 2.0.0 Ok: queued as {exchange.id}"


class JournalingSMTP(SMTP):
    """aiosmtpd's SMTP that also journals the DATA refusals it decides itself (size, line length, RFC 5321
    §4.5.3.1) and answers them with RFC 3463 enhanced status codes."""

    def __init__(self, handler: SubmissionHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._submission = handler

    async def push(self, status: Any) -> None:
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else str(status)
        refusal = None
        if text.startswith("552 Error: Too much mail data"):
            refusal = ("552 5.3.4", f"message trop volumineux (limite {self.data_size_limit} octets)")
        elif text.startswith("500 Line too long"):
            refusal = ("500 5.5.2", "ligne trop longue (RFC 5321 4.5.3.1.6)")
        if refusal is not None:
            envelope = self.envelope
            status = await asyncio.to_thread(
                self._submission._reject,
                code=refusal[0],
                message=refusal[1],
                actor=str(getattr(self.session, "auth_data", "") or ""),
                details={
                    "stage": "data",
                    "from": envelope.mail_from if envelope else None,
                    "recipients": [{"address": r} for r in (envelope.rcpt_tos if envelope else [])],
                },
            )
        await super().push(status)


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
        self.authenticator = Authenticator(ctx, self.directory)
        self.tls_context = tls_context or ctx.pki.server_ssl_context()  # built once: loading the chain costs ~1 ms
        self._server: asyncio.base_events.Server | None = None

    def _protocol(self) -> SMTP:
        from mock_services.mssante.smtp_auth import MssanteSMTP  # STARTTLS faults, AUTH EXTERNAL / XOAUTH2

        return MssanteSMTP(
            self.handler,
            hostname=self.settings.hostname,
            ident="socle-harness MSSante simulator",
            tls_context=self.tls_context,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=self.authenticator,
            data_size_limit=self.settings.max_message_bytes,
            enable_SMTPUTF8=False,
            timeout=60,
        )

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host=self.ctx.bind_host, port=self.ctx.port("smtp"))
        port = self._server.sockets[0].getsockname()[1]
        host = f"[{self.ctx.bind_host}]" if ":" in self.ctx.bind_host else self.ctx.bind_host
        return f"{host}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
