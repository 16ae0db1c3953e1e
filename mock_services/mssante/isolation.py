"""MSSanté mailboxes and test sessions (issue 19 item 4): no session logs in to, nor delivers into, another's mailbox.

Who a connection is, besides the mailbox it logs in to: the organisation certificate it presented in the TLS
handshake (``OU`` = ``1`` + FINESS: that ESSMS) and, for ``XOAUTH2``, the Pro Santé Connect client the access token
was issued to. A password login without certificate names nothing but the mailbox: it is that mailbox's session's,
the harness cannot tell it apart.

Whose a mailbox is: the open session holding it as a member, else the session holding its establishment (an ORG or
APP mailbox is opened with that establishment's certificate, a PER mailbox of a professional working there is read
by the same DUI): the session the journal attributes the mailbox's exchanges to (:meth:`SessionBook.attribute`).

Refusals, only when both sides are in open sessions and these differ (without sessions nothing is looked up beyond
the book's dictionary, and the answers are the ones before):

- ``AUTH`` (SMTP): ``535 5.7.8`` (RFC 4954 §6, "Authentication credentials invalid"), the answer to credentials
  the server does not accept for this client, with the reason in the text;
- ``LOGIN`` / ``AUTHENTICATE`` (IMAP): ``NO [AUTHENTICATIONFAILED]`` (RFC 5530 §3, RFC 9051 §6.2.2/§6.2.3);
- ``RCPT TO`` a mailbox of another session: ``550 5.7.1`` — RFC 5321 §4.2.2/§3.3: 550 "mailbox unavailable (e.g.,
  mailbox not found, no access, or command rejected for policy reasons)", the recipient refused for policy reasons
  at RCPT, not after DATA, so nothing of the message is taken; RFC 3463 §3.8 X.7.1 "Delivery not authorized,
  message refused: the sender is not authorized to send to the destination (per-host or per-recipient
  filtering)". Not ``5.1.1`` (the mailbox exists: the directory publishes it) nor ``5.2.x`` (its state must not be
  told: the refusal comes before the quota and the faults).
- ``MAIL FROM`` a mailbox of another session (an APP mailbox may send for the ORG mailbox of its establishment,
  which another session may hold: its Sent copy would go there): ``550 5.7.1`` as any sender the account may not
  use (RFC 3463 X.7.1).
Each refusal is journaled in the caller's session.
"""

from __future__ import annotations

from harness.fields.testdata import Mailbox
from harness.host.simulator import SimulatorContext

#: The text after ``535 5.7.8`` / ``NO [AUTHENTICATIONFAILED]`` / ``550 5.7.1`` (ASCII: SMTP and IMAP replies).
AUTH_TEXT = "Authentication credentials invalid: BAL d'une autre session de test"
RCPT_TEXT = "destinataire d'une autre session de test, remise non autorisee"
SENDER_TEXT = "BAL d'une autre session de test, envoi non autorise"


def structure_finess(structure: str | None) -> str | None:
    """The FINESS of an organisation certificate's ``OU`` (``1`` + FINESS), else the value as it is."""
    if not structure:
        return None
    return structure[1:] if len(structure) == 10 and structure.startswith("1") else structure


def connection_caller(
    ctx: SimulatorContext, *, finess: str | None = None, client_id: str | None = None
) -> tuple[str, str] | None:
    """The identity of a connection that is a member of an open session, as ``(kind, value)``: the PSC client of its
    access token first, then the establishment of its certificate; ``None`` when neither is (or none is known)."""
    if ctx.session_book.attribute(actor=None, essms=finess, person=None, client_id=client_id) is None:
        return None  # one lookup, none at all without open sessions
    for kind, value in (("client", client_id), ("essms", finess)):
        if value and ctx.session_of(kind, value) is not None:
            return kind, value
    return None


def mailbox_refusal(ctx: SimulatorContext, caller: tuple[str, str] | None, mailbox: Mailbox) -> str | None:
    """The refusal (French / English) when ``caller`` and ``mailbox`` are in two different open sessions."""
    if caller is None:
        return None
    if ctx.session_of("mailbox", mailbox.address) is not None:
        return ctx.cross_session(caller, ("mailbox", mailbox.address))
    return ctx.cross_session(caller, ("essms", mailbox.finess))


def sender_caller(ctx: SimulatorContext, login: Mailbox | None) -> tuple[str, str] | None:
    """The identity an authenticated SMTP transaction is attributed by: its mailbox if a member, else its
    establishment; ``None`` when neither is in an open session."""
    if login is None or ctx.session_book.attribute(actor=login.address, essms=login.finess, person=None) is None:
        return None  # one lookup, none at all without open sessions
    if ctx.session_of("mailbox", login.address) is not None:
        return "mailbox", login.address
    if login.finess and ctx.session_of("essms", login.finess) is not None:
        return "essms", login.finess
    return None
