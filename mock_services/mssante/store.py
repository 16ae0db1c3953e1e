"""The MSSanté simulator's mailbox store: one per simulator instance (per run), shared by SMTP and IMAP.

Each directory mailbox (address, case-insensitive) holds folders (``INBOX`` plus ``Sent`` and ``Trash``, and
what IMAP clients create); each folder keeps the IMAP4rev1 state a mail client relies on (RFC 3501 §2.3.1):
a ``UIDVALIDITY``, strictly ascending UIDs never reused, the permanent flags of each message and a
modification sequence so that an IMAP session learns what changed since it last looked (flags, expunges,
new mail). The store is plain, protocol-agnostic and thread-safe (one lock): the SMTP handler, the IMAP
backend (:mod:`mock_services.mssante.imap`) and the harness's own deliveries (other threads) all use it.
Listeners are told which ``(address, folder)`` changed, so that IMAP ``IDLE`` wakes up.

Memory is bounded: message bodies live outside the process heap, in a content-addressed, reference-counted
:class:`BodyStore` (files), so that a message delivered to a recipient's INBOX and kept in the sender's Sent is
stored once (issue 15 item 4: 3,200 messages of 1 MB took 6.96 GB when each copy was kept in memory); only the
per-copy trace headers (``prefix``) and the IMAP state stay in memory. An optional per-mailbox quota
(``quota_bytes``) is what the SMTP side answers ``552 5.2.2`` for (RFC 3463 §3.3 "mailbox full").
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import tempfile
import threading
import time
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

INBOX = "INBOX"
DEFAULT_FOLDERS = (INBOX, "Sent", "Trash")
SEEN = "\\Seen"
HEAD_BYTES = 65536  # where the Message-ID is looked for
DELETED = "\\Deleted"
# the field and its continuation lines (RFC 5322 §2.2.3 folding: a long Message-ID often starts on the next line)
_MESSAGE_ID = re.compile(rb"^Message-ID:((?:.*?)(?:\r?\n[ \t].*?)*)\r?$", re.IGNORECASE | re.MULTILINE)


class StoreError(Exception):
    """A store operation that cannot be done (unknown mailbox or folder, name clash)."""


class MailboxFull(StoreError):
    """Delivery refused: the mailbox is over its quota (RFC 3463 ``5.2.2``)."""


@dataclass(frozen=True, slots=True)
class Body:
    """A message body held by a :class:`BodyStore`: read from disk when needed."""

    digest: str
    size: int
    path: Path = field(repr=False)

    def read(self) -> bytes:
        return self.path.read_bytes()

    def head(self, size: int = 65536) -> bytes:
        with open(self.path, "rb") as handle:
            return handle.read(size)


class BodyStore:
    """Bodies as files named by their SHA-256, each kept once while some copy references it (thread-safe).

    ``directory`` defaults to a private temporary folder removed by :meth:`close`."""

    def __init__(self, directory: Path | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="socle-mail-") if directory is None else None
        self.directory = Path(self._tmp.name) if self._tmp is not None else Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._refs: dict[str, int] = {}

    def put(self, data: bytes) -> Body:
        """Keep ``data`` (once: a body already held gains a reference)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.directory / digest
        with self._lock:
            if digest not in self._refs:
                tmp = self.directory / f".{digest}.{threading.get_ident()}.tmp"
                with open(tmp, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            self._refs[digest] = self._refs.get(digest, 0) + 1
        return Body(digest, len(data), path)

    def retain(self, body: Body) -> Body:
        with self._lock:
            self._refs[body.digest] = self._refs.get(body.digest, 0) + 1
        return body

    def release(self, body: Body) -> None:
        """One reference less; the file goes with the last one."""
        with self._lock:
            left = self._refs.get(body.digest, 0) - 1
            if left > 0:
                self._refs[body.digest] = left
                return
            self._refs.pop(body.digest, None)
            body.path.unlink(missing_ok=True)

    def count(self) -> int:
        """Bodies held (files on disk)."""
        with self._lock:
            return len(self._refs)

    def close(self) -> None:
        with self._lock:
            self._refs.clear()
        if self._tmp is not None:
            self._tmp.cleanup()


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message in one folder. Immutable: a flag change replaces it (with a new ``modseq``). The bytes are
    ``prefix`` (this copy's trace headers, in memory) + the shared ``body`` (on disk)."""

    uid: int
    body: Body
    internal_date: datetime
    flags: frozenset[str]
    modseq: int
    recent: bool
    email_id: str  # stable across copies (RFC 8474 EMAILID)
    message_id: str | None = None
    exchange_id: str | None = None  # the journal exchange that delivered it
    prefix: bytes = field(default=b"", repr=False)

    @property
    def data(self) -> bytes:
        """The RFC 5322 bytes of this copy (read from the body store)."""
        return self.prefix + self.body.read()

    @property
    def size(self) -> int:
        return len(self.prefix) + self.body.size

    @property
    def seen(self) -> bool:
        return SEEN in self.flags


@dataclass
class _Folder:
    name: str
    folder_id: str
    uid_validity: int
    next_uid: int = 1
    modseq: int = 1
    messages: dict[int, StoredMessage] = field(default_factory=dict)  # insertion order = UID order
    # (modseq, uid, expunged) in ascending modseq order; the newest entry per uid wins
    changes: list[tuple[int, int, bool]] = field(default_factory=list)
    subscribed: bool = True


def message_id_of(data: bytes) -> str | None:
    """The ``Message-ID`` of raw RFC 5322 bytes (header section only), without parsing the whole message."""
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = _MESSAGE_ID.search(head)
    if not found:
        return None
    return b"".join(found.group(1).split()).decode("ascii", "replace") or None  # unfolded: a msg-id has no spaces


class MailStore:
    """Mailboxes of one simulator instance. Every method is thread-safe."""

    def __init__(self, *, bodies: BodyStore | None = None, quota_bytes: int | None = None) -> None:
        self._lock = threading.RLock()
        self.bodies = bodies or BodyStore()
        self.quota_bytes = quota_bytes  # per mailbox, all folders; None: no quota
        self._usage: dict[str, int] = {}
        self._boxes: dict[str, dict[str, _Folder]] = {}
        self._listeners: list[Callable[[str, str], None]] = []
        self._validity = itertools.count(int(time.time()))

    # -- mailboxes and folders ----------------------------------------------------------------------------------
    @staticmethod
    def key(address: str) -> str:
        return address.strip().strip("<>").casefold()

    @staticmethod
    def _folder_key(name: str) -> str:
        return INBOX if name.upper() == INBOX else name

    def ensure_mailbox(self, address: str) -> None:
        """Create the mailbox with its default folders if it does not exist yet."""
        with self._lock:
            box = self._boxes.setdefault(self.key(address), {})
            for name in DEFAULT_FOLDERS:
                if name not in box:
                    box[name] = self._new_folder(name)

    def _new_folder(self, name: str) -> _Folder:
        return _Folder(name=name, folder_id=uuid.uuid4().hex[:16], uid_validity=next(self._validity))

    def has_mailbox(self, address: str) -> bool:
        with self._lock:
            return self.key(address) in self._boxes

    def _box(self, address: str) -> dict[str, _Folder]:
        box = self._boxes.get(self.key(address))
        if box is None:
            raise StoreError(f"boîte inconnue: {address}")
        return box

    def _folder(self, address: str, folder: str) -> _Folder:
        found = self._box(address).get(self._folder_key(folder))
        if found is None:
            raise StoreError(f"dossier inconnu: {folder}")
        return found

    def folders(self, address: str) -> list[str]:
        with self._lock:
            return list(self._box(address))

    def subscribed(self, address: str) -> list[str]:
        with self._lock:
            return [name for name, f in self._box(address).items() if f.subscribed]

    def set_subscribed(self, address: str, folder: str, subscribed: bool) -> None:
        with self._lock:
            box = self._box(address)
            if self._folder_key(folder) in box:
                box[self._folder_key(folder)].subscribed = subscribed

    def folder_id(self, address: str, folder: str) -> str:
        with self._lock:
            return self._folder(address, folder).folder_id

    def create_folder(self, address: str, folder: str) -> str:
        with self._lock:
            box = self._box(address)
            name = self._folder_key(folder)
            if name in box:
                raise StoreError(f"le dossier {folder} existe déjà")
            box[name] = created = self._new_folder(name)
            return created.folder_id

    def delete_folder(self, address: str, folder: str) -> None:
        with self._lock:
            box = self._box(address)
            name = self._folder_key(folder)
            if name == INBOX or name not in box:
                raise StoreError(f"dossier {folder} impossible à supprimer")
            del box[name]

    def rename_folder(self, address: str, before: str, after: str) -> None:
        """Rename a folder (and its children ``before/...``); renaming INBOX moves its messages (RFC 3501 §6.3.5)."""
        with self._lock:
            box = self._box(address)
            old, new = self._folder_key(before), self._folder_key(after)
            if old not in box or new in box:
                raise StoreError(f"renommage {before} -> {after} impossible")
            if old == INBOX:
                moved = box[INBOX]
                moved.name = new
                box[new] = moved
                box[INBOX] = self._new_folder(INBOX)
                return
            for name in [n for n in box if n == old or n.startswith(old + "/")]:
                folder = box.pop(name)
                folder.name = new + name[len(old) :]
                box[folder.name] = folder

    # -- messages -----------------------------------------------------------------------------------------------
    def deliver(
        self,
        address: str,
        data: bytes,
        *,
        folder: str = INBOX,
        flags: Iterable[str] = (),
        when: datetime | None = None,
        exchange_id: str | None = None,
        recent: bool = True,
        email_id: str | None = None,
        prefix: bytes = b"",
        body: Body | None = None,
    ) -> StoredMessage:
        """Append a message (``prefix`` + ``data``) to a folder (the mailbox is created if needed); returns it with its
        UID. ``data`` is kept once in the body store whatever the number of copies; ``prefix`` (trace headers)
        stays with this copy. ``body`` reuses a body already held (a copy)."""
        kept = self.bodies.retain(body) if body is not None else self.bodies.put(bytes(data))
        with self._lock:
            self.ensure_mailbox(address)
            target = self._folder(address, folder)
            target.modseq += 1
            message = StoredMessage(
                uid=target.next_uid,
                body=kept,
                prefix=bytes(prefix),
                internal_date=when or datetime.now(UTC),
                flags=frozenset(flags),
                modseq=target.modseq,
                recent=recent,
                email_id=email_id or uuid.uuid4().hex[:24],
                message_id=message_id_of(
                    bytes(prefix) + (kept.head() if body is not None else bytes(data[:HEAD_BYTES]))
                ),
                exchange_id=exchange_id,
            )
            target.next_uid += 1
            target.messages[message.uid] = message
            self._usage[self.key(address)] = self._usage.get(self.key(address), 0) + message.size
            target.changes.append((target.modseq, message.uid, False))
            name = target.name
        self._notify(address, name)
        return message

    def messages(self, address: str, folder: str = INBOX) -> list[StoredMessage]:
        """The folder's messages in UID order (a snapshot)."""
        with self._lock:
            return list(self._folder(address, folder).messages.values())

    def get(self, address: str, folder: str, uid: int) -> StoredMessage | None:
        with self._lock:
            return self._folder(address, folder).messages.get(uid)

    def state(self, address: str, folder: str) -> tuple[int, int, int]:
        """``(uid_validity, next_uid, highest_modseq)`` of a folder."""
        with self._lock:
            f = self._folder(address, folder)
            return f.uid_validity, f.next_uid, f.modseq

    def set_flags(self, address: str, folder: str, uid: int, flags: Iterable[str]) -> StoredMessage | None:
        """Replace the permanent flags of one message; ``None`` if it was expunged meanwhile."""
        with self._lock:
            f = self._folder(address, folder)
            current = f.messages.get(uid)
            if current is None:
                return None
            new_flags = frozenset(flags)
            if new_flags == current.flags:
                return current
            f.modseq += 1
            updated = replace(current, flags=new_flags, modseq=f.modseq)
            f.messages[uid] = updated
            f.changes.append((f.modseq, uid, False))
            name = f.name
        self._notify(address, name)
        return updated

    def claim_recent(self, address: str, folder: str) -> list[int]:
        """Clear ``\\Recent`` on every message that has it and return their UIDs (RFC 3501 §2.3.2: one session
        only sees a message as recent)."""
        with self._lock:
            f = self._folder(address, folder)
            claimed = [m.uid for m in f.messages.values() if m.recent]
            for uid in claimed:
                f.messages[uid] = replace(f.messages[uid], recent=False)
            return claimed

    def expunge(self, address: str, folder: str, uids: Iterable[int]) -> list[int]:
        with self._lock:
            f = self._folder(address, folder)
            gone = [m for m in (f.messages.pop(uid, None) for uid in uids) if m is not None]
            removed = [m.uid for m in gone]
            for message in gone:
                self._usage[self.key(address)] = self._usage.get(self.key(address), 0) - message.size
                self.bodies.release(message.body)
            if removed:
                f.modseq += 1
                f.changes.extend((f.modseq, uid, True) for uid in removed)
            name = f.name
        if removed:
            self._notify(address, name)
        return removed

    def copy(
        self, address: str, folder: str, uid: int, destination: str, *, move: bool = False, recent: bool = True
    ) -> int | None:
        """Copy (or move) one message to another folder of the same mailbox; returns the new UID."""
        with self._lock:
            source = self.get(address, folder, uid)
            if source is None:
                return None
            self._folder(address, destination)  # must exist
            copied = self.deliver(
                address,
                b"",
                body=source.body,
                prefix=source.prefix,
                folder=destination,
                flags=source.flags,
                when=source.internal_date,
                exchange_id=source.exchange_id,
                recent=recent,
                email_id=source.email_id,
            )
            if move:
                self.expunge(address, folder, [uid])
            return copied.uid

    def changes_since(self, address: str, folder: str, modseq: int) -> tuple[list[StoredMessage], set[int], int]:
        """Messages updated or added after ``modseq``, UIDs expunged after it, and the current highest modseq."""
        with self._lock:
            f = self._folder(address, folder)
            start = bisect_left(f.changes, (modseq + 1, -1, False))
            touched: dict[int, bool] = {}
            for _, uid, expunged in f.changes[start:]:
                touched[uid] = expunged
            updated = [f.messages[uid] for uid, gone in touched.items() if not gone and uid in f.messages]
            expunged_uids = {uid for uid, gone in touched.items() if gone}
            return updated, expunged_uids, f.modseq

    def find(self, message_id: str) -> list[tuple[str, str, StoredMessage]]:
        """Every stored copy of a message by ``Message-ID``: ``(mailbox key, folder, message)``."""
        wanted = message_id.strip()
        with self._lock:
            return [
                (address, name, m)
                for address, box in self._boxes.items()
                for name, f in box.items()
                for m in f.messages.values()
                if m.message_id == wanted
            ]

    def size(self, address: str) -> int:
        """Bytes held by a mailbox (all folders; each copy counts, as a mailbox quota counts them)."""
        with self._lock:
            return self._usage.get(self.key(address), 0)

    def over_quota(self, address: str, incoming: int = 0) -> bool:
        """Whether the mailbox is (or would be, with ``incoming`` more bytes) beyond its quota."""
        if self.quota_bytes is None:
            return False
        return self.size(address) + incoming > self.quota_bytes

    def close(self) -> None:
        """Drop every body (the files go with the temporary folder)."""
        with self._lock:
            self._boxes.clear()
            self._usage.clear()
        self.bodies.close()

    # -- change notification ------------------------------------------------------------------------------------
    def add_listener(self, listener: Callable[[str, str], None]) -> None:
        """``listener(mailbox_key, folder)`` is called (outside the lock) after every change."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str, str], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _notify(self, address: str, folder: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(self.key(address), folder)
