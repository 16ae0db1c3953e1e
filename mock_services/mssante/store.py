"""The MSSanté simulator's mailbox store: one per simulator instance (per run), shared by SMTP and IMAP.

Each directory mailbox (address, case-insensitive) holds folders (``INBOX`` plus ``Sent`` and ``Trash``, and
what IMAP clients create); each folder keeps the IMAP4rev1 state a mail client relies on (RFC 3501 §2.3.1):
a ``UIDVALIDITY``, strictly ascending UIDs never reused, the permanent flags of each message and a
modification sequence so that an IMAP session learns what changed since it last looked (flags, expunges,
new mail). The store is plain, protocol-agnostic and thread-safe (one lock): the SMTP handler, the IMAP
backend (:mod:`mock_services.mssante.imap`) and the harness's own deliveries (other threads) all use it.
Listeners are told which ``(address, folder)`` changed, so that IMAP ``IDLE`` wakes up.

Shared state (issue 19 item 2): every change is an operation applied through the replica of stream
``mssante.mailboxes`` (:mod:`harness.core.state`) and every read catches up first. With one process the operation
applies at once, as a method call did; with several serving processes on one PostgreSQL journal they all apply
the same operations in the same order, so a message submitted on one is read over IMAP on another with the same
UID, and a change applied from another process wakes this one's IDLE listeners (the host polls every 0.5 s).

Memory is bounded: message bodies live outside the process heap, in a content-addressed, reference-counted
:class:`BodyStore` (files), so that a message delivered to a recipient's INBOX and kept in the sender's Sent is
stored once (issue 15 item 4: 3,200 messages of 1 MB took 6.96 GB when each copy was kept in memory); only the
per-copy trace headers (``prefix``) and the IMAP state stay in memory. Shared, a body is also put in the journal's
content-addressed evidence (once: the SMTP exchange usually stored it already) before an operation names its
SHA-256, and a process that does not hold it fetches it from there on first read and keeps it as a file. An
optional per-mailbox quota (``quota_bytes``) is what the SMTP side answers ``552 5.2.2`` for (RFC 3463 §3.3
"mailbox full").
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from harness.core.state import Deferred, StateHub

INBOX = "INBOX"
DEFAULT_FOLDERS = (INBOX, "Sent", "Trash")
SEEN = "\\Seen"
HEAD_BYTES = 65536  # where the Message-ID is looked for
DELETED = "\\Deleted"
STREAM = "mssante.mailboxes"  # the shared-state stream of the mailboxes (harness.core.state)
# the field and its continuation lines (RFC 5322 §2.2.3 folding: a long Message-ID often starts on the next line)
_MESSAGE_ID = re.compile(rb"^Message-ID:((?:.*?)(?:\r?\n[ \t].*?)*)\r?$", re.IGNORECASE | re.MULTILINE)


class StoreError(Exception):
    """A store operation that cannot be done (unknown mailbox or folder, name clash)."""


class MailboxFull(StoreError):
    """Delivery refused: the mailbox is over its quota (RFC 3463 ``5.2.2``)."""


class PayloadStore(Protocol):
    """Where bodies are shared between serving processes: the PostgreSQL journal's evidence, by SHA-256."""

    def payload(self, digest: str) -> bytes | None: ...

    def put_payload(self, data: bytes) -> str: ...


@dataclass(frozen=True, slots=True)
class Body:
    """A message body held by a :class:`BodyStore`: read from disk when needed (fetched by digest from the shared
    payload store first when another serving process stored it)."""

    digest: str
    size: int
    directory: Path = field(repr=False)  # the file is ``directory / digest`` (joined when read: a restore of
    # the shared state builds one Body per message, and a pathlib join cost half of it)
    source: BodyStore | None = field(default=None, repr=False, compare=False)

    @property
    def path(self) -> Path:
        return self.directory / self.digest

    def read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            if self.source is None or self.source.remote is None:
                raise
            return self.source.fetch(self)

    def head(self, size: int = 65536) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                return handle.read(size)
        except FileNotFoundError:
            if self.source is None or self.source.remote is None:
                raise
            return self.source.fetch(self)[:size]


class BodyStore:
    """Bodies as files named by their SHA-256, each kept once while some copy references it (thread-safe).

    ``directory`` defaults to a private temporary folder removed by :meth:`close`. With ``remote`` (shared state,
    issue 19), :meth:`put` also stores the body in the shared payload store before any operation names it, and a
    body another process stored is fetched from there by digest on first read and kept as a file.

    References are counted by the store's operations (:meth:`retain` / :meth:`release`); :meth:`put` *pins* the
    body until :meth:`unpin`, so that it cannot disappear between the write and the operation that retains it."""

    def __init__(self, directory: Path | None = None, *, remote: PayloadStore | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="socle-mail-") if directory is None else None
        self.directory = Path(self._tmp.name) if self._tmp is not None else Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.remote = remote
        self._lock = threading.Lock()
        self._refs: dict[str, int] = {}
        self._pins: dict[str, int] = {}

    def _write(self, digest: str, data: bytes) -> None:
        tmp = self.directory / f".{digest}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, self.directory / digest)

    def body(self, digest: str, size: int) -> Body:
        """The body of ``digest`` (its file may be absent: then read from the shared payload store)."""
        return Body(digest, size, self.directory, self)

    def put(self, data: bytes) -> Body:
        """Keep ``data`` (once: a body already held is not written again), pinned until :meth:`unpin`."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            held = digest in self._refs or digest in self._pins
        # durable for the others before an operation names it; a body held here is there already (put by this
        # process, or named by another's operation) and the evidence is never deleted
        if self.remote is not None and not held:
            self.remote.put_payload(data)
        with self._lock:
            if digest not in self._refs and digest not in self._pins:
                self._write(digest, data)
            self._pins[digest] = self._pins.get(digest, 0) + 1
        return self.body(digest, len(data))

    def unpin(self, body: Body) -> None:
        """End the pin of :meth:`put`: the file goes now if no copy retained it."""
        with self._lock:
            left = self._pins.get(body.digest, 0) - 1
            if left > 0:
                self._pins[body.digest] = left
                return
            self._pins.pop(body.digest, None)
            if body.digest not in self._refs:
                body.path.unlink(missing_ok=True)

    def pin(self, body: Body) -> Body:
        """Pin a body already held (a copy being made) until :meth:`unpin`."""
        with self._lock:
            self._pins[body.digest] = self._pins.get(body.digest, 0) + 1
        return body

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
            if body.digest not in self._pins:
                body.path.unlink(missing_ok=True)

    def fetch(self, body: Body) -> bytes:
        """A body this process does not hold as a file: from the shared payload store, checked, kept as a file."""
        data = self.remote.payload(body.digest) if self.remote is not None else None
        if data is None or hashlib.sha256(data).hexdigest() != body.digest:
            raise StoreError(f"corps de message introuvable / message body not found: {body.digest}")
        with self._lock:
            if body.digest in self._refs or body.digest in self._pins:
                self._write(body.digest, data)
        return data

    def forget(self) -> None:
        """Drop every reference (the state is being rebuilt; pins stay, files are kept)."""
        with self._lock:
            self._refs.clear()

    def count(self) -> int:
        """Bodies held (files on disk)."""
        with self._lock:
            return len(self._refs)

    def close(self) -> None:
        with self._lock:
            self._refs.clear()
            self._pins.clear()
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
    """Mailboxes of one simulator instance. Every method is thread-safe.

    Every change is an operation (a JSON object, ``op`` = its kind) applied by :meth:`_apply` through the replica
    of stream :data:`STREAM` (:mod:`harness.core.state`): ``ensure`` (mailboxes and default folders), ``create``,
    ``delete``, ``rename``, ``subscribe`` (folders), ``deliver``, ``flags``, ``recent``, ``expunge``, ``copy``
    (messages). Folder ids, e-mail ids, dates and the lower bound of a new folder's UIDVALIDITY are drawn before
    and travel in the operation; UIDs, modification sequences, UIDVALIDITY and quota usage follow from the
    operations in their order, so every serving process computes the same. Reads catch up with the log first."""

    def __init__(
        self, *, bodies: BodyStore | None = None, quota_bytes: int | None = None, state: StateHub | None = None
    ) -> None:
        self._lock = threading.RLock()
        self.bodies = bodies or BodyStore()
        self.quota_bytes = quota_bytes  # per mailbox, all folders; None: no quota
        self._usage: dict[str, int] = {}
        self._boxes: dict[str, dict[str, _Folder]] = {}
        self._listeners: list[Callable[[str, str], None]] = []
        self._next_validity = 0  # the next UIDVALIDITY is at least this (strictly ascending, never reused)
        hub = state if state is not None else StateHub()
        self._replica = hub.replica(STREAM, self._apply, self._reset, self.capture, self.restore)
        self._sync = self._replica.sync

    # -- mailboxes and folders ----------------------------------------------------------------------------------
    @staticmethod
    def key(address: str) -> str:
        return address.strip().strip("<>").casefold()

    @staticmethod
    def _folder_key(name: str) -> str:
        return INBOX if name.upper() == INBOX else name

    def ensure_mailbox(self, address: str) -> None:
        """Create the mailbox with its default folders if it does not exist yet."""
        self.ensure_mailboxes((address,))

    def ensure_mailboxes(self, addresses: Iterable[str]) -> None:
        """:meth:`ensure_mailbox` for several mailboxes, in one operation (none when all exist)."""
        self._sync()
        with self._lock:
            missing = [
                [key, name, _new_id()]
                for key in dict.fromkeys(self.key(a) for a in addresses)
                for name in DEFAULT_FOLDERS
                if name not in self._boxes.get(key, {})
            ]
        if missing:
            self._replica.do({"op": "ensure", "folders": missing, "floor": int(time.time())})

    def has_mailbox(self, address: str) -> bool:
        self._sync()
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
        self._sync()
        with self._lock:
            return list(self._box(address))

    def subscribed(self, address: str) -> list[str]:
        self._sync()
        with self._lock:
            return [name for name, f in self._box(address).items() if f.subscribed]

    def set_subscribed(self, address: str, folder: str, subscribed: bool) -> None:
        self._replica.do({"op": "subscribe", "box": self.key(address), "name": folder, "on": bool(subscribed)})

    def folder_id(self, address: str, folder: str) -> str:
        self._sync()
        with self._lock:
            return self._folder(address, folder).folder_id

    def create_folder(self, address: str, folder: str) -> str:
        op = {"op": "create", "box": self.key(address), "name": folder, "id": _new_id(), "floor": int(time.time())}
        return self._replica.do(op)

    def delete_folder(self, address: str, folder: str) -> None:
        self._replica.do({"op": "delete", "box": self.key(address), "name": folder})

    def rename_folder(self, address: str, before: str, after: str) -> None:
        """Rename a folder (and its children ``before/...``); renaming INBOX moves its messages (RFC 3501 §6.3.5)."""
        op = {"op": "rename", "box": self.key(address), "from": before, "to": after, "id": _new_id()}
        self._replica.do({**op, "floor": int(time.time())})

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
        session: str | None = None,
    ) -> StoredMessage:
        """Append a message (``prefix`` + ``data``) to a folder (the mailbox is created if needed); returns it with its
        UID. ``data`` is kept once in the body store whatever the number of copies; ``prefix`` (trace headers)
        stays with this copy. ``body`` reuses a body already held (a copy). ``session``: the test session of the
        exchange that delivers it (``Exchange.session_id``), kept with the shared operation."""
        prefix = bytes(prefix)
        if body is None:
            kept = self.bodies.put(bytes(data))
            head = prefix + bytes(data[:HEAD_BYTES])
        else:
            kept = self.bodies.pin(body)
            head = prefix + body.head()
        try:
            self.ensure_mailbox(address)
            return self._replica.do(
                {
                    "op": "deliver",
                    "box": self.key(address),
                    "folder": folder,
                    "digest": kept.digest,
                    "size": kept.size,
                    "prefix": prefix.decode("latin-1"),
                    "flags": sorted(flags),
                    "when": (when or datetime.now(UTC)).isoformat(),
                    "recent": recent,
                    "email_id": email_id or _new_id(24),
                    "message_id": message_id_of(head),
                    "exchange_id": exchange_id,
                },
                session=session,
            )
        finally:
            self.bodies.unpin(kept)

    def messages(self, address: str, folder: str = INBOX) -> list[StoredMessage]:
        """The folder's messages in UID order (a snapshot)."""
        self._sync()
        with self._lock:
            return list(self._folder(address, folder).messages.values())

    def get(self, address: str, folder: str, uid: int) -> StoredMessage | None:
        self._sync()
        with self._lock:
            return self._folder(address, folder).messages.get(uid)

    def state(self, address: str, folder: str) -> tuple[int, int, int]:
        """``(uid_validity, next_uid, highest_modseq)`` of a folder."""
        self._sync()
        with self._lock:
            f = self._folder(address, folder)
            return f.uid_validity, f.next_uid, f.modseq

    def set_flags(self, address: str, folder: str, uid: int, flags: Iterable[str]) -> StoredMessage | None:
        """Replace the permanent flags of one message; ``None`` if it was expunged meanwhile."""
        op = {"op": "flags", "box": self.key(address), "folder": folder, "uid": uid, "flags": sorted(flags)}
        return self._replica.do(op)

    def claim_recent(self, address: str, folder: str) -> list[int]:
        """Clear ``\\Recent`` on every message that has it and return their UIDs (RFC 3501 §2.3.2: one session
        only sees a message as recent)."""
        with self._replica.locked():
            with self._lock:
                if not any(m.recent for m in self._folder(address, folder).messages.values()):
                    return []
            return self._replica.do({"op": "recent", "box": self.key(address), "folder": folder})

    def expunge(self, address: str, folder: str, uids: Iterable[int]) -> list[int]:
        return self._replica.do({"op": "expunge", "box": self.key(address), "folder": folder, "uids": list(uids)})

    def copy(
        self, address: str, folder: str, uid: int, destination: str, *, move: bool = False, recent: bool = True
    ) -> int | None:
        """Copy (or move) one message to another folder of the same mailbox; returns the new UID."""
        op = {"op": "copy", "box": self.key(address), "folder": folder, "uid": uid, "to": destination}
        return self._replica.do({**op, "move": move, "recent": recent})

    def changes_since(self, address: str, folder: str, modseq: int) -> tuple[list[StoredMessage], set[int], int]:
        """Messages updated or added after ``modseq``, UIDs expunged after it, and the current highest modseq."""
        self._sync()
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
        self._sync()
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
        self._sync()
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

    # -- the operations -----------------------------------------------------------------------------------------
    def _apply(self, op: Mapping[str, Any]) -> Any:
        """Apply one operation (deterministic; raises :class:`StoreError` before changing anything when it cannot
        be done); listeners hear of the folder it changed."""
        changed: list[str] = []
        with self._lock:
            result = getattr(self, "_op_" + op["op"])(op, changed)
        for folder in changed:
            self._notify(op["box"], folder)
        return result

    def _reset(self) -> None:
        with self._lock:
            self._boxes.clear()
            self._usage.clear()
            self._next_validity = 0
            self.bodies.forget()

    def snapshot(self) -> dict[str, Any]:
        """The whole store as JSON (harness.core.state snapshot); bodies by digest and size (their bytes stay in
        the body store and, shared, in the journal's evidence). Per mailbox, per folder (in order):
        ``[key, name, id, uidvalidity, next_uid, modseq, subscribed, changes, messages]``, a message
        ``[uid, digest, size, internal date, flags, modseq, recent, email id, Message-ID, exchange, prefix]``."""
        return self.capture().build()

    def capture(self) -> Deferred:
        """:meth:`snapshot` in two steps: under the store's lock, a copy of its containers — the messages are frozen
        (a flag change replaces one) and the change log's entries tuples, so their references suffice —; the JSON
        built from it by :meth:`Deferred.build`, which :class:`~harness.core.state.Replica` runs outside its locks
        (at 100,000 messages the build is most of the cost)."""
        with self._lock:
            next_validity, usage = self._next_validity, dict(self._usage)
            boxes = [
                (
                    box,
                    [
                        (
                            (key, f.name, f.folder_id, f.uid_validity, f.next_uid, f.modseq, f.subscribed),
                            list(f.changes),
                            list(f.messages.values()),
                        )
                        for key, f in folders.items()
                    ],
                )
                for box, folders in self._boxes.items()
            ]

        def build() -> dict[str, Any]:
            return {
                "next_validity": next_validity,
                "usage": usage,
                "boxes": {
                    box: [
                        [
                            *folder,
                            [list(change) for change in changes],
                            [
                                [
                                    m.uid,
                                    m.body.digest,
                                    m.body.size,
                                    m.internal_date.isoformat(),
                                    sorted(m.flags),
                                    m.modseq,
                                    m.recent,
                                    m.email_id,
                                    m.message_id,
                                    m.exchange_id,
                                    m.prefix.decode("latin-1"),
                                ]
                                for m in messages
                            ],
                        ]
                        for folder, changes, messages in folders
                    ]
                    for box, folders in boxes
                },
            }

        return Deferred(build)

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the whole store by a :meth:`snapshot` (body references counted again); listeners hear of every
        folder."""
        with self._lock:
            self._reset()
            self._next_validity = int(state["next_validity"])
            self._usage = {box: int(size) for box, size in state["usage"].items()}
            for box, folders in state["boxes"].items():
                restored = self._boxes.setdefault(box, {})
                for key, name, folder_id, validity, next_uid, modseq, subscribed, changes, messages in folders:
                    folder = _Folder(name, folder_id, validity, next_uid, modseq, subscribed=subscribed)
                    folder.changes = [(int(m), int(u), bool(x)) for m, u, x in changes]
                    for (
                        uid,
                        digest,
                        size,
                        when,
                        flags,
                        mseq,
                        recent,
                        email_id,
                        message_id,
                        exchange,
                        prefix,
                    ) in messages:
                        folder.messages[uid] = StoredMessage(
                            uid=uid,
                            body=self.bodies.retain(self.bodies.body(digest, size)),
                            internal_date=datetime.fromisoformat(when),
                            flags=frozenset(flags),
                            modseq=mseq,
                            recent=recent,
                            email_id=email_id,
                            message_id=message_id,
                            exchange_id=exchange,
                            prefix=prefix.encode("latin-1"),
                        )
                    restored[key] = folder
            changed = [(box, key) for box, folders in self._boxes.items() for key in folders]
        for box, key in changed:
            self._notify(box, key)

    def _new_folder(self, name: str, folder_id: str, floor: int) -> _Folder:
        validity = max(self._next_validity, floor)
        self._next_validity = validity + 1
        return _Folder(name=name, folder_id=folder_id, uid_validity=validity)

    def _op_ensure(self, op: Mapping[str, Any], changed: list[str]) -> None:
        for key, name, folder_id in op["folders"]:
            box = self._boxes.setdefault(key, {})
            if name not in box:
                box[name] = self._new_folder(name, folder_id, op["floor"])

    def _op_subscribe(self, op: Mapping[str, Any], changed: list[str]) -> None:
        box = self._box(op["box"])
        name = self._folder_key(op["name"])
        if name in box:
            box[name].subscribed = op["on"]

    def _op_create(self, op: Mapping[str, Any], changed: list[str]) -> str:
        box = self._box(op["box"])
        name = self._folder_key(op["name"])
        if name in box:
            raise StoreError(f"le dossier {op['name']} existe déjà")
        box[name] = self._new_folder(name, op["id"], op["floor"])
        return op["id"]

    def _op_delete(self, op: Mapping[str, Any], changed: list[str]) -> None:
        box = self._box(op["box"])
        name = self._folder_key(op["name"])
        if name == INBOX or name not in box:
            raise StoreError(f"dossier {op['name']} impossible à supprimer")
        del box[name]

    def _op_rename(self, op: Mapping[str, Any], changed: list[str]) -> None:
        box = self._box(op["box"])
        old, new = self._folder_key(op["from"]), self._folder_key(op["to"])
        if old not in box or new in box:
            raise StoreError(f"renommage {op['from']} -> {op['to']} impossible")
        if old == INBOX:
            moved = box[INBOX]
            moved.name = new
            box[new] = moved
            box[INBOX] = self._new_folder(INBOX, op["id"], op["floor"])
            return
        for name in [n for n in box if n == old or n.startswith(old + "/")]:
            folder = box.pop(name)
            folder.name = new + name[len(old) :]
            box[folder.name] = folder

    def _place(self, key: str, target: _Folder, message: StoredMessage, changed: list[str]) -> StoredMessage:
        """Add ``message``, numbered ``target.next_uid`` / ``target.modseq + 1`` by the caller."""
        target.modseq = message.modseq
        target.next_uid = message.uid + 1
        target.messages[message.uid] = message
        self._usage[key] = self._usage.get(key, 0) + message.size
        target.changes.append((message.modseq, message.uid, False))
        self.bodies.retain(message.body)
        changed.append(target.name)
        return message

    def _op_deliver(self, op: Mapping[str, Any], changed: list[str]) -> StoredMessage:
        target = self._folder(op["box"], op["folder"])
        message = StoredMessage(
            uid=target.next_uid,
            body=self.bodies.body(op["digest"], op["size"]),
            prefix=op["prefix"].encode("latin-1"),
            internal_date=datetime.fromisoformat(op["when"]),
            flags=frozenset(op["flags"]),
            modseq=target.modseq + 1,
            recent=op["recent"],
            email_id=op["email_id"],
            message_id=op["message_id"],
            exchange_id=op["exchange_id"],
        )
        return self._place(op["box"], target, message, changed)

    def _op_flags(self, op: Mapping[str, Any], changed: list[str]) -> StoredMessage | None:
        f = self._folder(op["box"], op["folder"])
        uid = op["uid"]
        current = f.messages.get(uid)
        new_flags = frozenset(op["flags"])
        if current is None or new_flags == current.flags:
            return current
        f.modseq += 1
        updated = replace(current, flags=new_flags, modseq=f.modseq)
        f.messages[uid] = updated
        f.changes.append((f.modseq, uid, False))
        changed.append(f.name)
        return updated

    def _op_recent(self, op: Mapping[str, Any], changed: list[str]) -> list[int]:
        f = self._folder(op["box"], op["folder"])
        claimed = [m.uid for m in f.messages.values() if m.recent]
        for uid in claimed:
            f.messages[uid] = replace(f.messages[uid], recent=False)
        return claimed

    def _op_expunge(self, op: Mapping[str, Any], changed: list[str]) -> list[int]:
        f = self._folder(op["box"], op["folder"])
        gone = [m for m in (f.messages.pop(uid, None) for uid in op["uids"]) if m is not None]
        removed = [m.uid for m in gone]
        for message in gone:
            self._usage[op["box"]] = self._usage.get(op["box"], 0) - message.size
            self.bodies.release(message.body)
        if removed:
            f.modseq += 1
            f.changes.extend((f.modseq, uid, True) for uid in removed)
            changed.append(f.name)
        return removed

    def _op_copy(self, op: Mapping[str, Any], changed: list[str]) -> int | None:
        source = self._folder(op["box"], op["folder"]).messages.get(op["uid"])
        if source is None:
            return None
        target = self._folder(op["box"], op["to"])  # must exist
        copied = replace(source, uid=target.next_uid, modseq=target.modseq + 1, recent=op["recent"])
        self._place(op["box"], target, copied, changed)
        if op["move"]:
            self._op_expunge({"box": op["box"], "folder": op["folder"], "uids": [op["uid"]]}, changed)
        return copied.uid

    # -- change notification ------------------------------------------------------------------------------------
    def add_listener(self, listener: Callable[[str, str], None]) -> None:
        """``listener(mailbox_key, folder)`` is called after every change, outside the store's lock but while the
        change's operation is being applied (it must not block: IMAP schedules a wake-up on its loop)."""
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


def _new_id(length: int = 16) -> str:
    return uuid.uuid4().hex[:length]
