"""AUTH of the MSSanté SMTP submission, through aiosmtpd's documented AUTH API (aiosmtpd 1.4, ``docs/auth.rst``):

- ``PLAIN`` / ``LOGIN`` (RFC 4616, draft-murchison-sasl-login): the :class:`PasswordAuthenticator` callback
  (``authenticator=`` of ``SMTP``) checks the login and password against the test directory; ``LOGIN`` is
  aiosmtpd's built-in mechanism, ``PLAIN`` a hook of the handler that first refuses an authorization identity other
  than the login (aiosmtpd's drops it);
- ``EXTERNAL`` (RFC 4954 + RFC 4422 appendix A) and ``XOAUTH2`` are *AUTH mechanism hooks* of the handler
  (:class:`AuthMechanisms`, mixed into the submission handler): ``auth_<MECHANISM>(server, args) -> AuthResult``,
  talking to the client only through ``server.challenge_auth`` and ``server.push``.
  ``EXTERNAL``: the organisation certificate presented during STARTTLS (test PKI, ``OU`` = ``1`` + FINESS) opens the
  ORG / APP mailboxes of that structure; the optional initial response is the mailbox to act as (authorization
  identity). ``XOAUTH2``: ``user=<PER mailbox>^Aauth=Bearer <Pro Santé Connect access token>^A^A``; the token is
  checked in-process by the PSC simulator and must belong to the professional (idNat_PS) of that personal mailbox.
Every refusal is journaled (``smtp.auth``) before the ``535 5.7.8`` answer (RFC 4954 §6).
This module does not import :mod:`mock_services.mssante.smtp` (which uses it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import ssl
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from harness.core.journal import Outcome
from harness.fields.testdata import Mailbox, MailboxType
from harness.host.simulator import SimulatorContext
from mock_services.mssante.auth_backoff import SMTP_TEMPORARY_REFUSAL, shared_backoff
from mock_services.mssante.directory import MailboxDirectory
from mock_services.mssante.imap import certificate_mailboxes, certificate_structure, verify_bearer
from mock_services.mssante.isolation import AUTH_TEXT, connection_caller, mailbox_refusal, structure_finess
from mock_services.mssante.settings import MssanteSettings

AUTH = "smtp.auth"
INVALID = "535 5.7.8 Authentication credentials invalid"
OTHER_SESSION = f"535 5.7.8 {AUTH_TEXT}"  # the mailbox is another test session's (issue 19 item 4)
_XOAUTH2 = re.compile(rb"^user=(?P<user>[^\x01]*)\x01auth=[Bb]earer (?P<token>[^\x01]*)\x01\x01$")


def record_auth_refusal(
    ctx: SimulatorContext,
    actor: str,
    reason: str,
    *,
    mechanism: str,
    essms: str | None = None,
    error_code: str = "535 5.7.8",
    extra: dict[str, Any] | None = None,
    session: str | None = None,
) -> None:
    """Journal one refused AUTH (never the secret); ``session``: the caller's test session, when the refusal is
    that the mailbox is another session's (:mod:`mock_services.mssante.isolation`)."""
    ctx.record(
        AUTH,
        Outcome.REJECTED,
        actor=actor[:200] or None,
        essms=essms,
        error_code=error_code,
        error_message=reason,
        details={"mechanism": mechanism, **(extra or {})},
        session=session,
    )


def refuse_other_session(
    ctx: SimulatorContext,
    caller: tuple[str, str] | None,
    mailbox: Mailbox,
    refusal: str,
    mechanism: str,
    extra: dict[str, Any],
) -> None:
    """Journal the AUTH refused because the mailbox is another open session's, in the caller's session."""
    record_auth_refusal(
        ctx,
        mailbox.address,
        refusal,
        mechanism=mechanism,
        extra={**extra, "autre_session": True},
        session=ctx.session_of(*caller) if caller else None,
    )


class PasswordAuthenticator:
    """aiosmtpd authenticator callback for the built-in PLAIN / LOGIN: the directory's test passwords."""

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
        peer = str(session.peer[0]) if isinstance(session.peer, tuple) and session.peer else "?"
        backoff = shared_backoff(self.ctx, MssanteSettings.from_mapping(self.ctx.settings).auth_backoff)
        decision = backoff.check(login, peer)
        if decision.refused:  # too many failures: refused without checking the password (RFC 4954 §6: 454 4.7.0)
            record_auth_refusal(
                self.ctx,
                login,
                "trop d'échecs d'authentification : refus temporaire",
                mechanism=mechanism,
                essms=mailbox.finess if mailbox else None,
                error_code="454 4.7.0",
                extra={**decision.details(), "peer": peer},
            )
            return AuthResult(success=False, handled=False, message=SMTP_TEMPORARY_REFUSAL)
        password = auth_data.password.decode("utf-8", "replace")
        if mailbox is not None and mailbox.password is not None and password == mailbox.password:
            caller = connection_caller(
                self.ctx, finess=structure_finess(certificate_structure(peer_certificate(server)))
            )
            refusal = mailbox_refusal(self.ctx, caller, mailbox)
            if refusal is not None:  # the right password, but of another session's mailbox: not a failure to count
                refuse_other_session(self.ctx, caller, mailbox, refusal, mechanism, {"peer": peer})
                return AuthResult(success=False, handled=False, message=OTHER_SESSION)
            backoff.success(login, peer)
            return AuthResult(success=True, auth_data=mailbox.address)
        decision = backoff.failure(login, peer)
        record_auth_refusal(
            self.ctx,
            login,
            "identifiant ou mot de passe MSSanté invalide",
            mechanism=mechanism,
            essms=mailbox.finess if mailbox else None,
            extra={**decision.details(), "peer": peer},
        )
        if decision.delay and server.transport is not None:
            # this callback is synchronous (aiosmtpd): the 535 goes now, the next command is read after the delay
            transport = server.transport
            transport.pause_reading()
            asyncio.get_running_loop().call_later(decision.delay, _resume, transport)
        return AuthResult(success=False, handled=False, message=INVALID)


def _resume(transport: Any) -> None:
    if not transport.is_closing():
        transport.resume_reading()


async def initial_or_challenge(server: SMTP, args: list[str]) -> bytes | None:
    """The SASL initial response of ``AUTH <mech> <b64>`` (``=`` is empty, RFC 4954 §4), else one empty
    challenge; ``None`` when the client's answer is unusable (the reply has been sent)."""
    if len(args) > 1:
        if args[1] == "=":
            return b""
        try:
            return base64.b64decode(args[1], validate=True)
        except binascii.Error:
            await server.push("501 5.5.2 Can't decode base64")
            return None
    blob = await server.challenge_auth("")
    return None if blob is MISSING else blob  # type: ignore[return-value]


def peer_certificate(server: SMTP) -> dict[str, Any] | None:
    """The client certificate of the TLS session (``SMTP.transport``, asyncio's ``get_extra_info``)."""
    transport = server.transport
    return transport.get_extra_info("peercert") if transport is not None else None


class AuthMechanisms:
    """AUTH mechanism hooks of the submission handler (aiosmtpd calls ``handler.auth_<MECHANISM>``)."""

    ctx: SimulatorContext
    directory: MailboxDirectory

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd's hook name
        """``PLAIN`` (RFC 4616 §2: ``[authzid] NUL authcid NUL passwd``) in place of aiosmtpd's built-in one, which
        drops the authorization identity: one given must be an identity the credentials "permit the client to act
        as" — here the login itself, as IMAP (``authorize``) —, else ``535 5.7.8``, journaled, not counted as a
        password failure. The login and password then go to :class:`PasswordAuthenticator` as before."""
        blob = await initial_or_challenge(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        authzid, login, password = (part.decode("utf-8", "replace") for part in parts)
        if authzid and authzid.casefold() != login.casefold():
            record_auth_refusal(
                self.ctx,
                login,
                f"identité d'autorisation {authzid[:200]} différente du compte authentifié",
                mechanism="PLAIN",
                extra={"authzid": authzid[:200]},
            )
            return AuthResult(success=False, handled=False, message=INVALID)
        return PasswordAuthenticator(self.ctx, self.directory)(
            server, server.session, server.envelope, "PLAIN", LoginPassword(parts[1], parts[2])
        )

    async def auth_EXTERNAL(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd's hook name
        blob = await initial_or_challenge(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        authzid = blob.decode("utf-8", "replace").strip()
        peercert = peer_certificate(server)
        allowed = certificate_mailboxes(self.directory, certificate_structure(peercert))
        chosen: Mailbox | None = None
        if allowed:
            chosen = (
                allowed[0]
                if not authzid
                else next((m for m in allowed if m.address.casefold() == authzid.casefold()), None)
            )
        if chosen is None:
            reason = (
                "aucun certificat client reconnu pour cette BAL" if peercert else "aucun certificat client présenté"
            )
            return await self._refuse_auth("EXTERNAL", authzid, reason)
        return await self._other_session("EXTERNAL", chosen, certificate_structure(peercert), None)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd's hook name
        blob = await initial_or_challenge(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        match = _XOAUTH2.match(blob)
        if match is None:
            return await self._refuse_auth("XOAUTH2", "", "réponse XOAUTH2 mal formée")
        user = match["user"].decode("utf-8", "replace")
        mailbox = self.directory.get(user)
        if mailbox is None or mailbox.type is not MailboxType.PER:
            return await self._refuse_auth("XOAUTH2", user, "XOAUTH2 est réservé aux BAL personnelles (PER)")
        bearer = verify_bearer(self.ctx, match["token"].decode("ascii", "replace"))
        if bearer is None:
            return await self._refuse_auth("XOAUTH2", user, "jeton Pro Santé Connect invalide, expiré ou révoqué")
        if mailbox not in self.directory.for_professional(bearer.id_nat_ps):
            return await self._refuse_auth(
                "XOAUTH2", user, f"la BAL {user} n'appartient pas au professionnel {bearer.id_nat_ps}"
            )
        structure = certificate_structure(peer_certificate(server))
        return await self._other_session("XOAUTH2", mailbox, structure, bearer.client_id)

    async def _other_session(
        self, mechanism: str, mailbox: Mailbox, structure: str | None, client_id: str | None
    ) -> AuthResult:
        """Accept ``mailbox``, unless the connection (its certificate, its token's PSC client) is in another open
        test session than the mailbox: ``535 5.7.8``, journaled in the connection's session."""
        caller = connection_caller(self.ctx, finess=structure_finess(structure), client_id=client_id)
        refusal = mailbox_refusal(self.ctx, caller, mailbox)
        if refusal is None:
            return AuthResult(success=True, auth_data=mailbox.address)
        await asyncio.to_thread(refuse_other_session, self.ctx, caller, mailbox, refusal, mechanism, {})
        return AuthResult(success=False, handled=False, message=OTHER_SESSION)

    async def _refuse_auth(self, mechanism: str, actor: str, reason: str) -> AuthResult:
        await asyncio.to_thread(record_auth_refusal, self.ctx, actor, reason, mechanism=mechanism)
        return AuthResult(success=False, handled=False, message=INVALID)


def refusing_context(chain: str, key: str) -> ssl.SSLContext:
    """A server context that requires a client certificate and trusts no authority (every certificate refused)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(chain, key)
    ctx.verify_mode = ssl.CERT_REQUIRED  # and no CA loaded: any client certificate fails verification
    return ctx
