"""MSSanté IMAP access (IMAP4rev1, RFC 3501) to the simulator's mailbox store, served by pymap 0.36.

pymap parses and answers the protocol; this module is a pymap *backend* over :class:`MailStore` (the same
store the SMTP submission delivers into) plus the MSSanté rules around it:

- port 143 style: the greeting offers ``STARTTLS`` only; ``LOGIN`` / ``AUTHENTICATE`` exist after STARTTLS
  (RFC 3501 §6.2.1 ``LOGINDISABLED``; also from localhost, unlike pymap's default);
- authentication per mailbox type: a password (quick start, any directory mailbox but the patients'),
  ``AUTHENTICATE EXTERNAL`` (RFC 4422 appendix A) with the organisation certificate of the test PKI presented
  in the TLS handshake (ORG / APP mailboxes of the certificate's structure, ``OU`` = ``1`` + FINESS), and
  ``AUTHENTICATE XOAUTH2`` with a Pro Santé Connect access token for personal (PER) mailboxes, checked
  in-process by the PSC simulator's verifier (``ctx.services``) and matched to the mailbox's idNat_PS;
- bounded input: a command line over ``max_line_bytes`` or a non-synchronizing literal (RFC 7888) over
  ``max_literal_bytes`` gets a tagged ``BAD [TOOBIG]`` then ``BYE`` (the stream cannot be resynchronised);
  synchronizing literals are refused by pymap before the continuation (``[TOOBIG]``);
- bounded connections (issue 15 item 5): over the listener's or the peer's limit (``[settings.host]``), the
  greeting is ``* BYE [UNAVAILABLE] ...`` and the connection closed (RFC 9051 §7.1.5: BYE as the greeting of a
  server not willing to accept the connection; RFC 5530 ``UNAVAILABLE``, temporary); no command (nor IDLE
  ``DONE``) for ``imap_idle_timeout`` seconds: ``* BYE Autologout; idle for too long`` and closed (RFC 9051
  §5.4, at least 30 minutes, the default); both told to the host's coalesced ``connection.refused`` journal;
- every authentication (accepted or refused) and every input refusal is journaled (``imap.auth``,
  ``imap.protocol``) before the answer, and when a message becomes ``\\Seen`` (RFC 3501 §2.3.2: ``STORE
  +FLAGS (\\Seen)`` or a ``FETCH BODY[]`` without ``.PEEK``) an ``imap.read`` exchange records that the DUI read
  it (mailbox, UID, Message-ID, the exchange that delivered it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from argparse import Namespace
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from proxyprotocol.reader import ProxyProtocolReader
from proxyprotocol.sock import SocketInfo
from proxyprotocol.version import ProxyProtocolVersion
from pymap.backend.mailbox import MailboxDataInterface, MailboxSetInterface
from pymap.backend.session import BaseSession
from pymap.concurrent import Event, Subsystem
from pymap.config import BackendCapability, IMAPConfig
from pymap.context import current_command, socket_info, subsystem
from pymap.exceptions import InvalidAuth, NotAllowedError, ResponseError
from pymap.flags import FlagOp
from pymap.imap import IMAPConnection, IMAPServer
from pymap.imap.state import ConnectionState
from pymap.interfaces.login import IdentityInterface, LoginInterface
from pymap.interfaces.message import CachedMessage
from pymap.listtree import ListTree
from pymap.mailbox import MailboxSnapshot
from pymap.message import BaseLoadedMessage, BaseMessage
from pymap.mime import MessageContent
from pymap.parsing.command import Command
from pymap.parsing.message import AppendMessage
from pymap.parsing.response import CommandResponse, ResponseBad, ResponseBye, ResponseCode, ResponseNo, ResponseOk
from pymap.parsing.specials import FetchRequirement, ObjectId
from pymap.parsing.specials.flag import Flag
from pymap.selected import SelectedMailbox, SelectedSet
from pymap.token import AllTokens
from pysasl import SASLAuth
from pysasl.creds.external import ExternalCredentials, ExternalVerificationRequired
from pysasl.creds.plain import PlainCredentials
from pysasl.creds.server import ServerCredentials
from pysasl.hashing import BuiltinHash
from pysasl.identity import ClearIdentity
from pysasl.mechanism.external import ExternalMechanism
from pysasl.mechanism.login import LoginMechanism
from pysasl.mechanism.oauth import OAuth2Mechanism
from pysasl.mechanism.plain import PlainMechanism

from harness.core.journal import Outcome
from harness.fields.testdata import Mailbox, MailboxType
from harness.host.asgi_tls import handshake_refusal, ssl_reason
from harness.host.connections import IDLE_TIMEOUT, ConnectionCount, peer_of
from harness.host.simulator import SimulatorContext
from mock_services.mssante.auth_backoff import IMAP_TEMPORARY_REFUSAL, shared_backoff
from mock_services.mssante.directory import MailboxDirectory
from mock_services.mssante.faults import FAULT_SLOW, FAULT_TLS_REFUSED
from mock_services.mssante.isolation import AUTH_TEXT, connection_caller, mailbox_refusal, structure_finess
from mock_services.mssante.settings import ImapSettings, MssanteSettings
from mock_services.mssante.store import INBOX, MailStore, StoredMessage, StoreError

AUTH = "imap.auth"
READ = "imap.read"  # a message of a mailbox became \Seen
PROTOCOL = "imap.protocol"
#: Name under which the Pro Santé Connect simulator offers its access-token verifier (``ctx.services``).
PSC_TOKEN_VERIFIER = "psc.access_token"
_T = TypeVar("_T")
_LITERAL_PLUS = re.compile(rb"\{(\d{1,19})\+\}\r?\n$")


def certificate_structure(peercert: dict[str, Any] | None) -> str | None:
    """The structure identifier (``OU``) of a verified client certificate (``ssl.getpeercert()`` form)."""
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "organizationalUnitName":
                return str(value)
    return None


def certificate_mailboxes(directory: MailboxDirectory, structure: str | None) -> list[Mailbox]:
    """ORG / APP mailboxes an organisation certificate (``OU`` = ``1`` + FINESS) may open, APP first."""
    finess = structure_finess(structure)
    if not finess:
        return []
    found = [m for m in directory.all() if m.type in (MailboxType.APP, MailboxType.ORG) and m.finess == finess]
    return sorted(found, key=lambda m: (m.type is not MailboxType.APP, m.address))


# --------------------------------------------------------------------------------------------------------------
# pymap backend over the store


class StoreMessage(BaseMessage):
    """pymap's view of one stored message."""

    __slots__ = ["_stored", "_loader"]

    def __init__(
        self, stored: StoredMessage, loader: Callable[[StoredMessage], MessageContent], *, expunged: bool = False
    ) -> None:
        super().__init__(
            stored.uid,
            stored.internal_date,
            [Flag(f.encode("ascii", "replace")) for f in stored.flags],
            expunged=expunged,
            email_id=ObjectId(b"M" + stored.email_id.encode("ascii")),
            thread_id=ObjectId(b"T" + stored.email_id.encode("ascii")),
        )
        self._stored = stored
        self._loader = loader

    @property
    def stored(self) -> StoredMessage:
        """The store's record behind this IMAP message."""
        return self._stored

    async def load_content(self, requirement: FetchRequirement) -> BaseLoadedMessage:
        return BaseLoadedMessage(self, requirement, self._loader(self._stored))


class StoreMailboxData(MailboxDataInterface[StoreMessage]):
    """One folder of one mailbox, as pymap sees it."""

    def __init__(
        self,
        store: MailStore,
        address: str,
        folder: str,
        settings: ImapSettings,
        record_read: Callable[[str, str, StoredMessage], None] | None = None,
    ) -> None:
        self.store = store
        self.address = address
        self.folder = folder
        self._record_read = record_read
        self._settings = settings
        self._mailbox_id = ObjectId(b"F" + store.folder_id(address, folder).encode("ascii"))
        self._selected_set = SelectedSet()
        self._updated = subsystem.get().new_event()
        self._lock = subsystem.get().new_rwlock()
        self._contents: dict[tuple[int, int], MessageContent] = {}

    @property
    def mailbox_id(self) -> ObjectId:
        return self._mailbox_id

    @property
    def readonly(self) -> bool:
        return False

    @property
    def uid_validity(self) -> int:
        return self.store.state(self.address, self.folder)[0]

    @property
    def selected_set(self) -> SelectedSet:
        return self._selected_set

    def changed(self) -> None:
        """Called on the loop when the store reports a change of this folder (wakes IDLE)."""
        self._updated.set()

    def _content(self, stored: StoredMessage) -> MessageContent:
        key = (stored.uid, stored.body.digest)
        content = self._contents.get(key)
        if content is None:
            if len(self._contents) >= self._settings.content_cache:
                self._contents.pop(next(iter(self._contents)))
            content = self._contents[key] = MessageContent.parse(stored.data)
        return content

    def _message(self, stored: StoredMessage, *, expunged: bool = False) -> StoreMessage:
        return StoreMessage(stored, self._content, expunged=expunged)

    async def update_selected(self, selected: SelectedMailbox, *, wait_on: Event | None = None) -> SelectedMailbox:
        if wait_on is not None:
            await wait_on.or_event(self._updated).wait()
        since = selected.mod_sequence
        if since is None:
            messages = self.store.messages(self.address, self.folder)
            highest = self.store.state(self.address, self.folder)[2]
            selected.mod_sequence = highest
            selected.add_updates([self._message(m) for m in messages], [])
        else:
            updated, expunged, highest = self.store.changes_since(self.address, self.folder, since)
            selected.mod_sequence = highest
            selected.add_updates([self._message(m) for m in updated], expunged)
        return selected

    async def append(self, append_msg: AppendMessage, *, recent: bool = False) -> StoreMessage:
        stored = self.store.deliver(
            self.address,
            append_msg.literal,
            folder=self.folder,
            recent=recent,
            when=append_msg.when or None,
            flags=(bytes(f).decode("ascii", "replace") for f in append_msg.flag_set),
        )
        return self._message(stored)

    async def copy(
        self, uid: int, destination: MailboxDataInterface[StoreMessage], *, recent: bool = False
    ) -> int | None:
        assert isinstance(destination, StoreMailboxData)
        return self.store.copy(self.address, self.folder, uid, destination.folder, recent=recent)

    async def move(
        self, uid: int, destination: MailboxDataInterface[StoreMessage], *, recent: bool = False
    ) -> int | None:
        assert isinstance(destination, StoreMailboxData)
        return self.store.copy(self.address, self.folder, uid, destination.folder, move=True, recent=recent)

    async def get(self, uid: int, cached_msg: CachedMessage) -> StoreMessage:
        stored = self.store.get(self.address, self.folder, uid)
        if stored is not None:
            return self._message(stored)
        if isinstance(cached_msg, StoreMessage):
            return self._message(cached_msg.stored, expunged=True)
        raise IndexError(uid)

    async def update(
        self, uid: int, cached_msg: CachedMessage, flag_set: frozenset[Flag], mode: FlagOp
    ) -> StoreMessage:
        current = await self.get(uid, cached_msg)
        if current.expunged:
            return current
        flags = mode.apply(current.permanent_flags, flag_set)
        before = self.store.get(self.address, self.folder, uid)
        stored = self.store.set_flags(
            self.address, self.folder, uid, (bytes(f).decode("ascii", "replace") for f in flags)
        )
        if (
            stored is not None
            and stored.seen
            and before is not None
            and not before.seen
            and self._record_read is not None
        ):
            await asyncio.to_thread(self._record_read, self.address, self.folder, stored)  # the DUI read it
        return self._message(stored) if stored is not None else current

    async def delete(self, uids: Iterable[int]) -> None:
        self.store.expunge(self.address, self.folder, list(uids))

    async def claim_recent(self, selected: SelectedMailbox) -> None:
        for uid in self.store.claim_recent(self.address, self.folder):
            selected.session_flags.add_recent(uid)

    async def cleanup(self) -> None:
        return None

    async def messages(self) -> AsyncIterable[StoreMessage]:
        for stored in self.store.messages(self.address, self.folder):
            yield self._message(stored)

    async def snapshot(self) -> MailboxSnapshot:
        messages = self.store.messages(self.address, self.folder)
        _, next_uid, _ = self.store.state(self.address, self.folder)
        unseen = [i for i, m in enumerate(messages, start=1) if not m.seen]
        recent = sum(1 for m in messages if m.recent)
        return MailboxSnapshot(
            self.mailbox_id,
            self.readonly,
            self.uid_validity,
            self.permanent_flags,
            self.session_flags,
            len(messages),
            recent,
            len(unseen),
            unseen[0] if unseen else None,
            next_uid,
        )


class StoreMailboxSet(MailboxSetInterface[StoreMailboxData]):
    """The folders of one mailbox (delimiter ``/``)."""

    def __init__(self, backend: StoreBackend, address: str) -> None:
        self.backend = backend
        self.address = address

    @property
    def delimiter(self) -> str:
        return "/"

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        self.backend.store.set_subscribed(self.address, name, subscribed)

    async def list_subscribed(self) -> ListTree:
        return ListTree(self.delimiter).update(INBOX, *self.backend.store.subscribed(self.address))

    async def list_mailboxes(self) -> ListTree:
        return ListTree(self.delimiter).update(INBOX, *self.backend.store.folders(self.address))

    async def get_mailbox(self, name: str) -> StoreMailboxData:
        try:
            return self.backend.folder(self.address, name)
        except StoreError as exc:
            raise KeyError(name) from exc

    async def add_mailbox(self, name: str) -> ObjectId:
        try:
            folder_id = self.backend.store.create_folder(self.address, name)
        except StoreError as exc:
            raise ValueError(name) from exc
        return ObjectId(b"F" + folder_id.encode("ascii"))

    async def delete_mailbox(self, name: str) -> None:
        try:
            self.backend.store.delete_folder(self.address, name)
        except StoreError as exc:
            raise KeyError(name) from exc

    async def rename_mailbox(self, before: str, after: str) -> None:
        if after in self.backend.store.folders(self.address):
            raise ValueError(after)
        try:
            self.backend.store.rename_folder(self.address, before, after)
        except StoreError as exc:
            raise KeyError(before) from exc


class StoreSession(BaseSession[StoreMessage]):
    def __init__(self, owner: str, config: ImapConfig, mailbox_set: StoreMailboxSet) -> None:
        super().__init__(owner)
        self._config = config
        self._mailbox_set = mailbox_set

    @property
    def config(self) -> ImapConfig:
        return self._config

    @property
    def mailbox_set(self) -> StoreMailboxSet:
        return self._mailbox_set


class StoreIdentity(IdentityInterface):
    def __init__(self, backend: StoreBackend, mailbox: Mailbox) -> None:
        self.backend = backend
        self.mailbox = mailbox

    @property
    def name(self) -> str:
        return self.mailbox.address

    @property
    def roles(self) -> frozenset[str]:
        return frozenset()

    @contextlib.asynccontextmanager
    async def new_session(self) -> AsyncIterator[StoreSession]:
        self.backend.store.ensure_mailbox(self.mailbox.address)
        yield StoreSession(
            self.mailbox.address, self.backend.config, StoreMailboxSet(self.backend, self.mailbox.address)
        )

    async def new_token(self, *, expiration: datetime | None = None) -> str | None:
        return None

    async def get(self) -> Any:
        raise NotAllowedError("métadonnées utilisateur non disponibles")

    async def set(self, metadata: Any) -> int | None:
        raise NotAllowedError("modification du compte non permise")

    async def delete(self) -> None:
        raise NotAllowedError("suppression du compte non permise")


class ImapConfig(IMAPConfig):
    """pymap settings: STARTTLS mandatory, our SASL mechanisms after it, bounded APPEND."""

    def __init__(self, settings: ImapSettings, tls_context: ssl.SSLContext) -> None:
        args = Namespace(passlib_cfg=None, proxy_protocol=None, debug=False)
        super().__init__(
            args,
            host=None,
            port=0,
            ssl_context=tls_context,
            tls_enabled=True,
            reject_dnsbl=False,
            hash_context=BuiltinHash(),
            cpu_subsystem=Subsystem.for_asyncio(),
            invalid_user_sleep=0.0,
            max_append_len=settings.max_literal_bytes,
            proxy_protocol=ProxyProtocolVersion.get(None),
            admin_key=b"socle-harness-not-used",
        )
        self.settings = settings

    @property
    def backend_capability(self) -> BackendCapability:
        return BackendCapability(idle=True, object_id=True, multi_append=True)

    @property
    def tls_auth(self) -> SASLAuth:
        return SASLAuth([PlainMechanism(), LoginMechanism(), ExternalMechanism(), OAuth2Mechanism()])

    @property
    def greeting(self) -> bytes:
        return b"MSSante IMAP4rev1 (socle-harness simulator) " + self.settings.hostname.encode("ascii", "replace")


class StoreBackend(LoginInterface):
    """Authentication against the directory, and the folder adapters shared by every session of the run."""

    def __init__(
        self, ctx: SimulatorContext, store: MailStore, directory: MailboxDirectory, config: ImapConfig
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.directory = directory
        self.config = config
        self._tokens = AllTokens(config)
        self._folders: dict[tuple[str, str], StoreMailboxData] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def tokens(self) -> AllTokens:
        return self._tokens

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.store.add_listener(self._store_changed)

    def detach(self) -> None:
        self.store.remove_listener(self._store_changed)

    def _store_changed(self, address: str, folder: str) -> None:
        adapter = self._folders.get((address, folder))
        if adapter is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(adapter.changed)

    def folder(self, address: str, name: str) -> StoreMailboxData:
        real = INBOX if name.upper() == INBOX else name
        key = (self.store.key(address), real)
        adapter = self._folders.get(key)
        folder_id = self.store.folder_id(address, real)  # raises StoreError when the folder does not exist
        if adapter is None or adapter.mailbox_id.value != b"F" + folder_id.encode("ascii"):
            adapter = self._folders[key] = StoreMailboxData(
                self.store, address, real, self.config.settings, record_read=self._record_read
            )
        return adapter

    async def authenticate(self, credentials: ServerCredentials) -> StoreIdentity:
        mechanism = ""
        with contextlib.suppress(LookupError):
            mechanism = getattr(current_command.get(), "mech_name", b"LOGIN").decode("ascii", "replace").upper()
        peercert, peer = None, "?"
        with contextlib.suppress(LookupError):
            info = socket_info.get()
            peercert, peer = info.peercert, str(info.peername_ip or "?")
        backoff = shared_backoff(self.ctx, MssanteSettings.from_mapping(self.ctx.settings).auth_backoff)
        account = credentials.authcid or credentials.authzid or ""
        if isinstance(credentials, PlainCredentials):
            decision = backoff.check(account, peer)
            if decision.refused:  # too many failures: refused without checking the password (RFC 5530 UNAVAILABLE)
                await asyncio.to_thread(
                    self.record_auth,
                    Outcome.REJECTED,
                    account,
                    mechanism,
                    "trop d'échecs d'authentification : refus temporaire",
                    None,
                    error_code="NO [UNAVAILABLE]",
                    extra={**decision.details(), "peer": peer},
                )
                raise _Unavailable(IMAP_TEMPORARY_REFUSAL.removeprefix("NO [UNAVAILABLE] "))
        client_id: str | None = None  # the PSC client of an XOAUTH2 token
        try:
            if isinstance(credentials, PlainCredentials):
                mailbox = self._password(credentials)
                method = "password"
            elif isinstance(credentials, ExternalCredentials):
                token = None
                try:
                    credentials.verify(None)
                except ExternalVerificationRequired as exc:
                    token = exc.token
                if token is None:
                    mailbox, method = self._certificate(credentials.authzid, peercert), "tls-client-certificate"
                else:
                    (mailbox, client_id), method = self._bearer(credentials.authzid, token), "xoauth2"
            else:
                raise _Refused("mécanisme d'authentification non pris en charge")
        except _Refused as exc:
            extra: dict[str, Any] = {}
            delay = 0.0
            if isinstance(credentials, PlainCredentials):  # a wrong password: counted, answered after the delay
                decision = backoff.failure(account, peer)
                extra, delay = {**decision.details(), "peer": peer}, decision.delay
            await asyncio.to_thread(
                self.record_auth,
                Outcome.REJECTED,
                credentials.authcid or credentials.authzid,
                mechanism,
                str(exc),
                None,
                extra=extra,
            )
            if delay:
                await asyncio.sleep(delay)
            raise InvalidAuth(_ascii(str(exc))) from None
        caller = connection_caller(
            self.ctx, finess=structure_finess(certificate_structure(peercert)), client_id=client_id
        )
        refusal = mailbox_refusal(self.ctx, caller, mailbox)
        if refusal is not None:  # another session's mailbox (mock_services.mssante.isolation): not a failure to count
            await asyncio.to_thread(
                self.record_auth,
                Outcome.REJECTED,
                mailbox.address,
                mechanism,
                refusal,
                None,
                extra={"autre_session": True, "peer": peer},
                session=self.ctx.session_of(*caller) if caller else None,
            )
            raise InvalidAuth(AUTH_TEXT)
        if isinstance(credentials, PlainCredentials):
            backoff.success(account, peer)
        await asyncio.to_thread(self.record_auth, Outcome.ACCEPTED, mailbox.address, mechanism, method, mailbox)
        return StoreIdentity(self, mailbox)

    async def authorize(self, authenticated: IdentityInterface, authzid: str) -> IdentityInterface:
        if authzid and authzid.casefold() != authenticated.name.casefold():
            raise InvalidAuth("identite d'autorisation differente du compte authentifie")
        return authenticated

    def _password(self, credentials: PlainCredentials) -> Mailbox:
        mailbox = self.directory.get(credentials.authcid)
        if mailbox is None or mailbox.password is None or mailbox.type is MailboxType.PAT:
            raise _Refused("identifiant ou mot de passe MSSanté invalide")
        if not credentials.verify(ClearIdentity(credentials.authcid, mailbox.password)):
            raise _Refused("identifiant ou mot de passe MSSanté invalide")
        return mailbox

    def _certificate(self, authzid: str, peercert: dict[str, Any] | None) -> Mailbox:
        if not peercert:
            raise _Refused("aucun certificat client présenté pendant la négociation TLS (AUTHENTICATE EXTERNAL)")
        allowed = certificate_mailboxes(self.directory, certificate_structure(peercert))
        if not allowed:
            raise _Refused("le certificat d'organisation ne correspond à aucune BAL organisationnelle ou applicative")
        if not authzid:
            return allowed[0]
        chosen = next((m for m in allowed if m.address.casefold() == authzid.casefold()), None)
        if chosen is None:
            raise _Refused(f"le certificat d'organisation ne donne pas accès à {authzid}")
        return chosen

    def _bearer(self, user: str, token: str) -> tuple[Mailbox, str | None]:
        """The PER mailbox an XOAUTH2 token opens, and the PSC client the token was issued to."""
        mailbox = self.directory.get(user)
        if mailbox is None or mailbox.type is not MailboxType.PER:
            raise _Refused("XOAUTH2 est réservé aux BAL personnelles (PER) de l'annuaire")
        bearer = verify_bearer(self.ctx, token)
        if bearer is None:
            raise _Refused("jeton Pro Santé Connect invalide, expiré ou révoqué")
        if mailbox not in self.directory.for_professional(bearer.id_nat_ps):
            raise _Refused(f"la BAL {mailbox.address} n'appartient pas au professionnel {bearer.id_nat_ps}")
        return mailbox, bearer.client_id

    def _record_read(self, address: str, folder: str, stored: StoredMessage) -> None:
        mailbox = self.directory.get(address)
        self.ctx.record(
            READ,
            Outcome.ACCEPTED,
            actor=address,
            essms=mailbox.finess if mailbox else None,
            details={
                "protocol": "imap",
                "mailbox": address,
                "folder": folder,
                "uid": stored.uid,
                "message_id": stored.message_id,
                "delivered_by": stored.exchange_id,
            },
        )

    def record_auth(
        self,
        outcome: Outcome,
        actor: str,
        mechanism: str,
        detail: str,
        mailbox: Mailbox | None,
        *,
        error_code: str = "NO [AUTHENTICATIONFAILED]",
        extra: dict[str, Any] | None = None,
        session: str | None = None,
    ) -> None:
        """Journal one IMAP authentication (``imap.auth``); public: the connection state records LOGIN refusals.
        ``session``: the caller's test session, when the mailbox is another session's."""
        self.ctx.record(
            AUTH,
            outcome,
            actor=(actor or "")[:200] or None,
            essms=mailbox.finess if mailbox else None,
            error_code=error_code if outcome is Outcome.REJECTED else None,
            error_message=detail if outcome is Outcome.REJECTED else None,
            details={
                "protocol": "imap",
                "mechanism": mechanism,
                "method": detail if mailbox else None,
                **(extra or {}),
            },
            session=session,
        )


class _Refused(Exception):
    pass


class _Unavailable(ResponseError):
    """``NO [UNAVAILABLE]`` (RFC 5530 §3): the account or the peer is temporarily refused after too many failures."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self._raw = _ascii(msg).encode("ascii")

    def get_response(self, tag: bytes) -> ResponseNo:
        return ResponseNo(tag, self._raw, ResponseCode.of(b"UNAVAILABLE"))


def _ascii(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


@dataclass(frozen=True)
class Bearer:
    """Whose an active Pro Santé Connect access token is: the professional, and the client it was issued to."""

    id_nat_ps: str
    client_id: str | None


def verify_bearer(ctx: SimulatorContext, token: str) -> Bearer | None:
    """The professional (idNat_PS) and PSC client of an active access token, asking the PSC simulator in-process
    (RFC 7662 introspection answer: ``SubjectNameID`` or ``username``, ``client_id``)."""
    verifier = ctx.services.get(PSC_TOKEN_VERIFIER) if hasattr(ctx, "services") else None
    if verifier is None or not token:
        return None
    answer = verifier(token)
    if (
        not answer or not answer.get("active") or answer.get("typ") != "Bearer"
    ):  # PSC introspection: typ, not token_type
        return None
    value = answer.get("SubjectNameID") or answer.get("username")
    client = answer.get("client_id")
    return Bearer(str(value), str(client) if client else None) if value else None


# --------------------------------------------------------------------------------------------------------------
# connections


class _TooBig(Exception):
    def __init__(self, tag: bytes, what: str) -> None:
        super().__init__(what)
        self.tag = tag


class _TooDeep(_TooBig):
    """A command whose parenthesised lists nest deeper than :data:`MAX_NESTING` (the connection stays in sync)."""


#: Nesting of parenthesised lists a command may use (SEARCH keys, FETCH attributes); pymap's recursive parser
#: answered ``BYE [SERVERBUG]`` at 300, unjournaled (issue 15 item 7)
MAX_NESTING = 32


def nesting_depth(line: bytes) -> int:
    """The deepest parenthesis nesting of an IMAP command line, quoted strings skipped (RFC 9051 §4.3)."""
    depth = deepest = 0
    quoted = escaped = False
    for byte in line:
        if quoted:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                quoted = False
        elif byte == 0x22:
            quoted = True
        elif byte == 0x28:
            depth += 1
            deepest = max(deepest, depth)
        elif byte == 0x29:
            depth -= 1
    return deepest


class _State(ConnectionState):
    async def do_greeting(self) -> CommandResponse:
        # pymap lets a localhost client authenticate before STARTTLS; the MSSanté server never does.
        return ResponseOk(b"*", self.config.greeting, self.capability)

    async def do_login(self, cmd: Any) -> Any:
        if b"LOGINDISABLED" in self.capability and isinstance(self.login, StoreBackend):
            user = bytes(cmd.userid).decode("utf-8", "replace")
            await asyncio.to_thread(
                self.login.record_auth,
                Outcome.REJECTED,
                user,
                "LOGIN",
                "LOGIN avant STARTTLS refusé (RFC 3501 LOGINDISABLED): mot de passe en clair",
                None,
            )
        return await super().do_login(cmd)


class _Connection(IMAPConnection):
    """pymap's connection with bounded command lines and LITERAL+ literals."""

    __slots__ = ["server", "autologged_out"]

    async def readline(self) -> memoryview:
        settings: ImapSettings = self.config.settings  # type: ignore[attr-defined]
        buf = bytearray(await self._line(b"*"))
        while True:
            if not buf.endswith(b"\n"):
                raise EOFError()
            literal = _LITERAL_PLUS.search(buf) if buf.endswith(b"+}\n") or buf.endswith(b"+}\r\n") else None
            if literal is None:
                if nesting_depth(buf) > MAX_NESTING:
                    raise _TooDeep(
                        bytes(buf.split(b" ", 1)[0][:64]),
                        f"listes imbriquées sur plus de {MAX_NESTING} niveaux (commande refusée)",
                    )
                return memoryview(buf)
            length = int(literal.group(1))
            tag = bytes(buf.split(b" ", 1)[0][:64])
            if (
                length > settings.max_literal_bytes
                or len(buf) + length > settings.max_literal_bytes + settings.max_line_bytes
            ):
                raise _TooBig(
                    tag, f"littéral non synchronisant de {length} octets (limite {settings.max_literal_bytes})"
                )
            buf += await self.reader.readexactly(length)
            buf += await self._line(tag)

    async def _line(self, tag: bytes) -> bytes:
        try:
            return await self.reader.readline()
        except ValueError:  # asyncio: separator not found within the stream limit
            raise _TooBig(tag, "ligne de commande trop longue") from None
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    async def read_command(self, state: ConnectionState) -> Command:
        """The next command, within the autologout delay (``imap_idle_timeout``); a command nesting too deep is
        answered BAD and the next one read (with a fresh delay)."""
        server: ImapServer = self.server  # type: ignore[attr-defined]
        while True:
            try:
                return await self._within_idle_timeout(super().read_command(state))
            except _TooDeep as exc:  # the whole line was read: answer BAD and go on with the next command
                await asyncio.to_thread(server.record_protocol_error, str(exc), "BAD")
                await self.write_response(ResponseBad(exc.tag or b"*", _ascii(str(exc)).encode("ascii")))
            except _TooBig as exc:
                await asyncio.to_thread(server.record_protocol_error, str(exc))
                await self.write_response(
                    ResponseBad(exc.tag or b"*", _ascii(str(exc)).encode("ascii"), ResponseCode.of(b"TOOBIG"))
                )
                await self.write_response(ResponseBye(b"Commande trop grande, deconnexion."))
                raise EOFError() from None

    async def read_idle_done(self, cmd: Any) -> bool:
        """``DONE`` of an IDLE (RFC 2177), within the same autologout delay (RFC 2177 §3: a server may log out a
        client idle that long; the client re-issues IDLE every 29 minutes)."""
        return await self._within_idle_timeout(super().read_idle_done(cmd))

    async def _within_idle_timeout(self, reading: Awaitable[_T]) -> _T:
        server: ImapServer = self.server  # type: ignore[attr-defined]
        try:
            return await asyncio.wait_for(reading, server.settings.idle_timeout)
        except TimeoutError:
            self.autologged_out = True
            server.report(self.writer, IDLE_TIMEOUT)
            await self.write_response(ResponseBye(b"Autologout; idle for too long"))
            raise EOFError() from None

    async def send_error_disconnect(self) -> None:
        if not self.autologged_out:  # the autologout already said BYE
            await super().send_error_disconnect()

    async def start_tls(self) -> None:
        server: ImapServer = self.server  # type: ignore[attr-defined]
        context = server.tls_context_for_next()
        try:
            await self.writer.start_tls(context)
        except ssl.SSLError as exc:  # a refused handshake is journaled with the peer (issue 20 item 8)
            peer = self.writer.get_extra_info("peername")
            refusal = handshake_refusal(server.ctx.name, "imap.starttls", peer, ssl_reason(exc), "imap")
            await asyncio.to_thread(server.ctx.commit, refusal)
            raise


class _Server(IMAPServer):
    __slots__ = ["owner"]

    def __init__(self, owner: ImapServer) -> None:
        super().__init__(owner.backend, owner.config)
        self.owner = owner

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sock_info: SocketInfo) -> None:
        # read once: after a TLS connection is cut, its writer no longer answers get_extra_info (the count of the
        # peer would never be released, and the peer refused once at its limit)
        peer = peer_of(writer.get_extra_info("peername"))
        if not self.owner.admit(writer, peer):  # over the listener's or the peer's limit: BYE greeting, closed
            writer.write(b"* BYE [UNAVAILABLE] Trop de connexions, reessayez plus tard\r\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        try:
            await self._serve(reader, writer, sock_info)
        finally:
            self.owner.release(peer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sock_info: SocketInfo) -> None:
        conn = _Connection(self.commands, self._config, reader, writer, sock_info)
        conn.server = self.owner
        conn.autologged_out = False
        state = _State(self._login, self._config)
        async with contextlib.AsyncExitStack() as stack:
            from pymap.context import connection_exit

            connection_exit.set(stack)
            stack.enter_context(contextlib.closing(conn))
            delay = self.owner.slow_delay()
            if delay:
                await asyncio.sleep(delay)
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                await conn.run(state)


class ImapServer:
    """The IMAP listener of the MSSanté simulator."""

    def __init__(
        self,
        ctx: SimulatorContext,
        store: MailStore,
        directory: MailboxDirectory,
        tls_context: ssl.SSLContext,
        refusing_context: ssl.SSLContext,
    ) -> None:
        self.ctx = ctx
        self.settings = ImapSettings.from_mapping(dict(ctx.settings))
        self.config = ImapConfig(self.settings, tls_context)
        self.backend = StoreBackend(ctx, store, directory, self.config)
        self.tls_context = tls_context
        self.refusing_context = refusing_context
        self._server: asyncio.base_events.Server | None = None
        self._connections = ConnectionCount(ctx.connection_limits)  # used from the listener's event loop only

    def admit(self, writer: asyncio.StreamWriter, peer: str) -> bool:
        """Count a new connection of ``peer`` in, or journal why it is refused (:mod:`harness.host.connections`)."""
        reason = self._connections.admit(peer)
        if reason is not None:
            self.report(writer, reason)
        return reason is None

    def release(self, peer: str) -> None:
        self._connections.release(peer)

    def report(self, writer: asyncio.StreamWriter, reason: str) -> None:
        """Tell the host's coalesced refusal journal (off the event loop: the commit blocks)."""
        if self.ctx.refused is not None:
            peer = peer_of(writer.get_extra_info("peername"))
            asyncio.get_running_loop().run_in_executor(None, self.ctx.refused, "imap", peer, reason)

    def tls_context_for_next(self) -> ssl.SSLContext:
        """The handshake context: the normal one, or on fault ``mssante.tls_certificate_refused`` one that rejects
        every client certificate (TLS alert)."""
        fault = self.ctx.take_fault(FAULT_TLS_REFUSED)
        if fault is None:
            return self.tls_context
        self.ctx.record(
            PROTOCOL,
            Outcome.REJECTED,
            error_code="TLS bad_certificate",
            error_message="certificat client refusé (panne simulée)",
            details={"protocol": "imap", "fault": True},
        )
        return self.refusing_context

    def slow_delay(self) -> float:
        fault = self.ctx.take_fault(FAULT_SLOW)
        return float(fault.params.get("seconds", 2.0)) if fault is not None else 0.0

    def record_protocol_error(self, message: str, error_code: str = "BAD [TOOBIG]") -> None:
        self.ctx.record(
            PROTOCOL, Outcome.REJECTED, error_code=error_code, error_message=message, details={"protocol": "imap"}
        )

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        self.backend.attach(loop)
        callback = ProxyProtocolReader(self.config.proxy_protocol).get_callback(_Server(self))
        self._server = await asyncio.start_server(
            callback,
            host=self.ctx.bind_host,
            port=self.ctx.port("imap"),
            limit=self.settings.max_line_bytes,
            reuse_port=self.ctx.reuse_port or None,
        )
        port = self._server.sockets[0].getsockname()[1]
        return self.ctx.address(port)

    async def stop(self) -> None:
        self.backend.detach()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
