"""The MSSanté SMTP protocol object: :class:`JournalingSMTP` plus the operator's other ways in.

- ``AUTH EXTERNAL`` (RFC 4954 + RFC 4422 appendix A): the organisation certificate presented during STARTTLS
  (test PKI, ``OU`` = ``1`` + FINESS) opens the ORG / APP mailboxes of that structure; the optional initial
  response is the mailbox to act as (authorization identity);
- ``AUTH XOAUTH2``: ``user=<PER mailbox>^Aauth=Bearer <Pro Santé Connect access token>^A^A``; the token is checked
  in-process by the PSC simulator and must belong to the professional (idNat_PS) of that personal mailbox;
- fault ``tls.certificate_refused``: the next STARTTLS handshake uses a context that trusts no client
  certificate authority, so the client's certificate is refused by a TLS alert.
Refusals are journaled (``smtp.auth``) before the ``535 5.7.8`` answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import re
import ssl
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from harness.core.journal import Direction, Exchange, Outcome
from harness.fields.testdata import Mailbox, MailboxType
from mock_services.mssante.imap import certificate_mailboxes, certificate_structure, verify_bearer
from mock_services.mssante.smtp import JournalingSMTP

_XOAUTH2 = re.compile(rb"^user=(?P<user>[^\x01]*)\x01auth=[Bb]earer (?P<token>[^\x01]*)\x01\x01$")


class MssanteSMTP(JournalingSMTP):
    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        # RFC 4954 §4: an AUTH line with an initial response (a PSC bearer token) may reach 12288 octets; aiosmtpd's
        # limits dict is a class attribute, so this connection gets its own.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.command_size_limits["AUTH"] = 12288
        # The command reader was built with the DATA line limit (1001, RFC 5321 §4.5.3.1.6, still checked by DATA
        # itself); the AUTH line needs the larger one.
        reader = self._stream_reader
        if reader is not None:
            reader._limit = max(reader._limit, 12288 + 2)  # noqa: SLF001 - asyncio has no public setter

    async def smtp_STARTTLS(self, arg: str) -> None:
        ctx = self._submission.ctx
        if not arg and self.tls_context is not None and ctx.take_fault("tls.certificate_refused") is not None:
            await asyncio.to_thread(
                ctx.record,
                Exchange(
                    service=ctx.name,
                    operation="smtp.starttls",
                    direction=Direction.FROM_DUI,
                    outcome=Outcome.REJECTED,
                    error_code="TLS bad_certificate",
                    error_message="certificat client refusé (panne simulée)",
                    details={"fault": True},
                ),
            )
            server = ctx.pki.server
            self.tls_context = refusing_context(str(server.chain_path), str(server.key_path))
        await super().smtp_STARTTLS(arg)

    async def _initial_or_challenge(self, args: list[str]) -> bytes | None:
        if len(args) > 1:
            if args[1] == "=":
                return b""
            try:
                return base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await self.push("501 5.5.2 Can't decode base64")
                return None
        blob = await self.challenge_auth("")
        return None if blob is MISSING else blob  # type: ignore[return-value]

    def _peercert(self) -> dict[str, Any] | None:
        transport = self.transport
        return transport.get_extra_info("peercert") if transport is not None else None

    async def auth_EXTERNAL(self, _server: Any, args: list[str]) -> AuthResult:
        blob = await self._initial_or_challenge(args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        authzid = blob.decode("utf-8", "replace").strip()
        allowed = certificate_mailboxes(self._submission.directory, certificate_structure(self._peercert()))
        chosen: Mailbox | None = None
        if allowed:
            chosen = (
                allowed[0]
                if not authzid
                else next((m for m in allowed if m.address.casefold() == authzid.casefold()), None)
            )
        if chosen is None:
            reason = (
                "aucun certificat client reconnu pour cette BAL"
                if self._peercert()
                else "aucun certificat client présenté"
            )
            return await self._refuse("EXTERNAL", authzid, reason)
        return AuthResult(success=True, auth_data=chosen.address)

    async def auth_XOAUTH2(self, _server: Any, args: list[str]) -> AuthResult:
        blob = await self._initial_or_challenge(args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        match = _XOAUTH2.match(blob)
        if match is None:
            return await self._refuse("XOAUTH2", "", "réponse XOAUTH2 mal formée")
        user = match["user"].decode("utf-8", "replace")
        mailbox = self._submission.directory.get(user)
        if mailbox is None or mailbox.type is not MailboxType.PER:
            return await self._refuse("XOAUTH2", user, "XOAUTH2 est réservé aux BAL personnelles (PER)")
        id_nat_ps = verify_bearer(self._submission.ctx, match["token"].decode("ascii", "replace"))
        if id_nat_ps is None:
            return await self._refuse("XOAUTH2", user, "jeton Pro Santé Connect invalide, expiré ou révoqué")
        if mailbox not in self._submission.directory.for_professional(id_nat_ps):
            return await self._refuse("XOAUTH2", user, f"la BAL {user} n'appartient pas au professionnel {id_nat_ps}")
        return AuthResult(success=True, auth_data=mailbox.address)

    async def _refuse(self, mechanism: str, actor: str, reason: str) -> AuthResult:
        ctx = self._submission.ctx
        await asyncio.to_thread(
            ctx.record,
            Exchange(
                service=ctx.name,
                operation="smtp.auth",
                direction=Direction.FROM_DUI,
                outcome=Outcome.REJECTED,
                actor=actor[:200] or None,
                error_code="535 5.7.8",
                error_message=reason,
                details={"mechanism": mechanism},
            ),
        )
        return AuthResult(success=False, handled=False, message="535 5.7.8 Authentication credentials invalid")


def refusing_context(chain: str, key: str) -> ssl.SSLContext:
    """A server context that requires a client certificate and trusts no authority (every certificate refused)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(chain, key)
    ctx.verify_mode = ssl.CERT_REQUIRED  # and no CA loaded: any client certificate fails verification
    return ctx
