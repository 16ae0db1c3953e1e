"""Per-run state of the DMP simulator: each person's DMP (absent, active, closed; authorisation) and the documents.

Kept in memory by the simulator instance (one per run, nothing at module level); the journal stays the record of
exchanges. Thread-safe: transactions run in worker threads.

Replicated state (issue 19 item 2, :mod:`harness.core.state`), stream ``dmp.registry``: every change is one
operation — ``person`` (a DMP's state or authorisation), ``register`` (an ITI-41 submission's documents and the
documents they replace, all or none), ``update`` (ITI-57 status and metadata changes, all or none), and
``unregister`` / ``revert``, which undo a ``register`` / ``update`` whose exchange could not be journaled — with
its entryUUIDs, times and new metadata drawn before; :meth:`DmpStore.apply` checks an operation against the state
before changing anything. Reads catch up with the other serving processes first. With one process the operation
applies at once and carries the document's bytes; on a PostgreSQL journal the bytes stay in the journal's
content-addressed evidence — a slice of the ITI-41 request, put there before the registration under the digest
its exchange is then journaled with (the MTOM part as received), else a body of their own
(:meth:`~harness.core.journal.Journal.put_payload`) — and the operation carries where they are.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from harness.core.state import Deferred, Operation, StateHub
from harness.fields.identity import INS
from harness.validators.ebrim import STATUS_APPROVED, STATUS_DEPRECATED

PatientKey = tuple[
    str, str
]  # (INS value, assigning authority OID): the same 15 digits under .4.8 and .4.10 are two DMPs


def patient_key(ins: INS) -> PatientKey:
    """The DMP's identity of a patient: the (value, OID) pair, never the 15 characters alone."""
    return (ins.value, ins.oid)


STREAM = "dmp.registry"
STATUS_ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"  # DMP TD3.3 archiving (harness reading)
STATUS_DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"  # DMP TD3.3 deletion (harness reading)


class DmpState(StrEnum):
    ABSENT = "absent"  # the person has no DMP
    ACTIVE = "active"
    CLOSED = "closed"  # DMPClosed


class Authorisation(StrEnum):
    """The person's authorisation for the structure to feed and read the DMP (TD0.2 attentionLine AUTORISATION)."""

    VALID = "VALIDE"
    NONE = "NON_EXISTE"
    FORBIDDEN = "INTERDITE"  # the person opposed this structure


@dataclass(frozen=True)
class PersonDmp:
    ins: str  # INS value
    oid: str  # INS assigning authority
    state: DmpState = DmpState.ACTIVE
    authorisation: Authorisation = Authorisation.VALID


class RegistryConflictError(ValueError):
    """An operation the registry's current state does not allow (another serving process got there first);
    ``code`` is the XDS error the registry answers it with (IHE ITI TF-3 §4.2.4.1)."""

    def __init__(self, message: str, code: str = "XDSRegistryError") -> None:
        super().__init__(message)
        self.code = code


class Evidence(Protocol):
    """The journal's content-addressed payload store, as the shared registry uses it."""

    def payload(self, digest: str) -> bytes | None: ...

    def put_payload(self, data: bytes) -> str: ...


@dataclass(frozen=True)
class BodyRef:
    """Where a shared document's bytes are: ``length`` bytes from ``offset`` of the evidence ``digest``."""

    digest: str
    offset: int
    length: int


@dataclass(frozen=True)
class StoredDocument:
    """A registry entry; frozen: every change (status, metadata update) stores a replaced copy (``apply``), so a
    snapshot's capture may keep the references (:meth:`DmpStore.capture`)."""

    entry_uuid: str
    unique_id: str
    patient: str  # INS value
    patient_oid: str  # INS assigning authority: the patient is (patient, patient_oid)
    patient_cx: str
    repository_unique_id: str
    mime_type: str
    data: bytes | None = field(repr=False)  # the document; None when it is in the journal's evidence (``body``)
    hash: str
    size: int
    type_code: str
    metadata: bytes = field(repr=False)  # the ExtrinsicObject as submitted (ebRIM XML), see Transactions._leaf
    essms: str | None
    status: str = STATUS_APPROVED
    confidentiality: tuple[tuple[str, str], ...] = ()
    version: int = 1
    logical_id: str = ""
    submitted_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    replaced: str | None = None  # entryUUID this document replaced (RPLC)
    is_signature: bool = False
    source_id: str = ""  # the entry's id in the submission (symbolic ids are replaced by entry_uuid when queried)
    body: BodyRef | None = None  # shared state: where ``data`` is in the journal's evidence

    @property
    def masked_to_professionals(self) -> bool:
        return any(code == "MASQUE_PS" for code, _ in self.confidentiality)


class DmpStore:
    """The DMPs and documents of one run, one replica of the stream ``dmp.registry`` (see the module docstring).

    ``state`` is the simulator's :class:`~harness.core.state.StateHub` (a local one when omitted); ``evidence``
    the journal, where a shared registry keeps the documents' bytes."""

    def __init__(
        self, persons: Iterable[PersonDmp] = (), *, state: StateHub | None = None, evidence: Evidence | None = None
    ) -> None:
        self._lock = threading.RLock()  # taken after the replica's (inside apply), never before it
        self._initial: dict[PatientKey, PersonDmp] = {(p.ins, p.oid): p for p in persons}
        self._persons: dict[PatientKey, PersonDmp] = dict(self._initial)
        self._documents: dict[str, StoredDocument] = {}
        self._by_unique: dict[str, str] = {}
        # each patient's entryUUIDs, in registration order (a set kept as dict keys): FindDocuments reads only the
        # patient's documents, whatever the registry holds for the others (issue 18)
        self._by_patient: dict[PatientKey, dict[str, None]] = {}
        self._evidence = evidence
        self._replica = (state or StateHub()).replica(STREAM, self.apply, self._reset, self.capture, self.restore)
        self.shared = self._replica.shared
        if self.shared and evidence is None:
            raise ValueError("un registre DMP partagé exige le journal / a shared DMP registry needs the journal")

    def _catch_up(self) -> None:
        """Shared: apply the other processes' operations before a read (outside the store's lock)."""
        if self.shared:
            self._replica.sync()

    # persons -----------------------------------------------------------------------------------
    def person(self, ins: INS) -> PersonDmp:
        """The DMP of ``ins`` (absent when the simulator knows no such person under that OID)."""
        self._catch_up()
        with self._lock:
            return self._persons.get(
                patient_key(ins), PersonDmp(ins.value, ins.oid, DmpState.ABSENT, Authorisation.NONE)
            )

    def set_person(
        self, ins: INS, *, state: DmpState | None = None, authorisation: Authorisation | None = None
    ) -> PersonDmp:
        op = {
            "op": "person",
            "ins": ins.value,
            "oid": ins.oid,
            "state": state.value if state else None,
            "authorisation": authorisation.value if authorisation else None,
        }
        return self._replica.do(op)

    # documents ---------------------------------------------------------------------------------
    def register(
        self,
        documents: list[StoredDocument],
        *,
        deprecate: Iterable[str] = (),
        evidence: bytes | None = None,
        session: str | None = None,
    ) -> None:
        """Register an ITI-41 submission's documents and deprecate the entries they replace, all or none
        (:class:`RegistryConflictError` when an entryUUID or uniqueId is taken, or a replaced entry is no longer
        approved). ``evidence`` is the request as it will be journaled (registration comes first, so that the
        journal never shows accepted a submission the registry refused): a shared registry stores it in the
        journal's evidence now, under the digest the journal gives it (the journal then finds it held and does
        not write it again), and points into it for each document found there as it is; the others go in the
        evidence on their own. ``session`` is the request's test session (``Exchange.session_id``), kept with the
        operation."""
        held: tuple[str, bytes] | None = None
        if self.shared and evidence is not None:  # journaled with the exchange anyway: stored once
            assert self._evidence is not None  # noqa: S101 - checked when shared
            held = (self._evidence.put_payload(evidence), evidence)
        op = {
            "op": "register",
            # locally the operation is never serialised: the documents themselves, bytes included
            "documents": [self._document_op(d, held) for d in documents] if self.shared else list(documents),
            "deprecate": list(deprecate),
        }
        self._replica.do(op, session=session)

    def unregister(self, documents: Iterable[str], *, restore: Iterable[str] = ()) -> None:
        """Undo a :meth:`register` whose exchange could not be journaled (a compensating operation): the entries
        ``documents`` are forgotten and the entries ``restore`` they had deprecated are approved again."""
        self._replica.do({"op": "unregister", "documents": list(documents), "restore": list(restore)})

    def change_status(self, entry_uuid: str, status: str) -> None:
        self.update_all([{"entry_uuid": entry_uuid, "status": status}])

    def update_all(self, changes: list[dict[str, Any]], *, session: str | None = None) -> list[dict[str, Any]]:
        """ITI-57 changes, all or none: ``{"entry_uuid", "status", "original" (the status it was planned on,
        optional)}``, or ``{"entry_uuid", "version" (the one the change was planned on), "confidentiality" [[code,
        scheme]...], "metadata" (ebRIM XML text)}``, which makes the next version. Returns what the changed entries
        were before (for :meth:`revert`); ``session`` is kept with the operation."""
        return self._replica.do({"op": "update", "changes": changes}, session=session)  # type: ignore[no-any-return]

    def revert(self, previous: list[dict[str, Any]]) -> None:
        """Undo an :meth:`update_all` whose exchange could not be journaled (a compensating operation): each entry
        gets back the status, confidentiality, metadata and version ``update_all`` returned."""
        self._replica.do({"op": "revert", "entries": previous})

    def get(self, entry_uuid: str) -> StoredDocument | None:
        self._catch_up()
        with self._lock:
            return self._documents.get(entry_uuid)

    def by_unique_id(self, unique_id: str) -> StoredDocument | None:
        self._catch_up()
        with self._lock:
            entry = self._by_unique.get(unique_id)
            return self._documents.get(entry) if entry else None

    def documents(self, patient: INS | None = None) -> list[StoredDocument]:
        """The documents of ``patient`` ((value, OID) pair), or all of them, in registration order; a patient's
        come from its index (the cost follows its documents, not the registry's size)."""
        self._catch_up()
        with self._lock:
            if patient is None:
                return list(self._documents.values())
            return [self._documents[e] for e in self._by_patient.get(patient_key(patient), ())]

    def content(self, document: StoredDocument) -> bytes:
        """The document's bytes: held here, or read from the journal's evidence (checked against its XDS hash)."""
        if document.data is not None:
            return document.data
        ref = document.body
        held = self._evidence.payload(ref.digest) if ref is not None and self._evidence is not None else None
        data = held[ref.offset : ref.offset + ref.length] if held is not None and ref is not None else None
        if data is None or hashlib.sha1(data).hexdigest() != document.hash:  # noqa: S324 - XDS hash is SHA-1
            raise RegistryConflictError(f"contenu du document {document.unique_id} introuvable dans le journal")
        return data

    # operations ----------------------------------------------------------------------------------
    def _document_op(self, document: StoredDocument, evidence: tuple[str, bytes] | None) -> dict[str, Any]:
        """A document as JSON for the shared log, its bytes replaced by where they are in the evidence."""
        fields = _document_fields(document)
        data = document.data if document.data is not None else b""
        offset = evidence[1].find(data) if evidence is not None else -1
        if evidence is not None and offset >= 0:  # the MTOM part as journaled with the request: stored once
            return {**fields, "body": [evidence[0], offset, len(data)]}
        assert self._evidence is not None  # noqa: S101 - checked when shared
        return {**fields, "body": [self._evidence.put_payload(data), 0, len(data)]}

    def snapshot(self) -> dict[str, Any]:
        """The whole registry as JSON (harness.core.state snapshot): persons and documents in insertion order; a
        shared document's bytes stay in the evidence (its ``body`` reference), a local one's are inlined (base64)."""
        return self.capture().build()

    def capture(self) -> Deferred:
        """:meth:`snapshot` in two steps: under the store's lock, a copy of its two dictionaries' values — a
        :class:`PersonDmp` and a :class:`StoredDocument` are frozen (``apply`` replaces them), so their references
        suffice —; the JSON built by :meth:`Deferred.build`, which :class:`~harness.core.state.Replica` runs outside
        its locks (issue 18: the lock was held for the whole registry's JSON)."""
        with self._lock:
            persons, documents = list(self._persons.values()), list(self._documents.values())

        def build() -> dict[str, Any]:
            return {
                "persons": [[p.ins, p.oid, p.state.value, p.authorisation.value] for p in persons],
                "documents": [
                    {
                        **_document_fields(d),
                        "body": [d.body.digest, d.body.offset, d.body.length] if d.body is not None else None,
                        "data": base64.b64encode(d.data).decode("ascii") if d.data is not None else None,
                    }
                    for d in documents
                ],
            }

        return Deferred(build)

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the whole registry by a :meth:`snapshot`."""
        with self._lock:
            self._persons = {
                (ins, oid): PersonDmp(ins, oid, DmpState(st), Authorisation(auth))
                for ins, oid, st, auth in state["persons"]
            }
            documents = [
                _document({**d, "data": base64.b64decode(d["data"]) if d["data"] is not None else None})
                for d in state["documents"]
            ]
            self._documents, self._by_unique, self._by_patient = {}, {}, {}
            for document in documents:
                self._add(document)

    def apply(self, op: Operation) -> Any:
        """Apply one operation of the stream (deterministic; raises before any change when it cannot be done)."""
        with self._lock:
            return self._apply(op)

    def _apply(self, op: Operation) -> Any:
        kind = op["op"]
        if kind == "person":
            key = (op["ins"], op["oid"])
            current = self._persons.get(key, PersonDmp(op["ins"], op["oid"], DmpState.ABSENT, Authorisation.NONE))
            state, authorisation = op["state"], op["authorisation"]
            updated = replace(
                current,
                state=DmpState(state) if state else current.state,
                authorisation=Authorisation(authorisation) if authorisation else current.authorisation,
            )
            self._persons[key] = updated
            return updated
        if kind == "register":
            return self._apply_register(op)
        if kind == "update":
            return self._apply_update(op["changes"])
        if kind == "revert":
            return self._apply_revert(op["entries"])
        if kind == "unregister":
            for entry_uuid in op["documents"]:
                gone = self._documents.pop(entry_uuid, None)
                if gone is not None and self._by_unique.get(gone.unique_id) == entry_uuid:
                    del self._by_unique[gone.unique_id]
                if gone is not None:
                    self._by_patient[(gone.patient, gone.patient_oid)].pop(entry_uuid, None)
            for entry_uuid in op["restore"]:
                target = self._documents.get(entry_uuid)
                if target is not None and target.status == STATUS_DEPRECATED:
                    self._documents[entry_uuid] = replace(target, status=STATUS_APPROVED)
            return None
        raise ValueError(f"opération inconnue du registre DMP / unknown DMP registry operation {kind!r}")

    def _apply_register(self, op: Operation) -> None:
        documents = [d if isinstance(d, StoredDocument) else _document(d) for d in op["documents"]]
        seen: set[str] = set()
        for document in documents:
            if (
                document.entry_uuid in self._documents
                or document.unique_id in self._by_unique
                or ({document.entry_uuid, document.unique_id} & seen)
            ):
                raise RegistryConflictError(
                    f"document {document.unique_id} déjà enregistré", code="XDSDocumentUniqueIdError"
                )
            seen |= {document.entry_uuid, document.unique_id}
        for entry_uuid in op["deprecate"]:
            target = self._documents.get(entry_uuid)
            if target is None or target.status != STATUS_APPROVED:
                raise RegistryConflictError(
                    f"le document remplacé {entry_uuid} n'est plus approuvé", code="UnresolvedReferenceException"
                )
        for document in documents:
            self._add(document)
        for entry_uuid in op["deprecate"]:
            self._documents[entry_uuid] = replace(self._documents[entry_uuid], status=STATUS_DEPRECATED)

    def _add(self, document: StoredDocument) -> None:
        """Register ``document`` and index it by uniqueId and patient (a registration, or a restored snapshot)."""
        self._documents[document.entry_uuid] = document
        self._by_unique[document.unique_id] = document.entry_uuid
        self._by_patient.setdefault((document.patient, document.patient_oid), {})[document.entry_uuid] = None

    def _apply_update(self, changes: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        previous: dict[str, dict[str, Any]] = {}
        for change in changes:
            target = self._documents.get(change["entry_uuid"])
            if target is None:
                raise RegistryConflictError(
                    f"document {change['entry_uuid']} inconnu", code="UnresolvedReferenceException"
                )
            if "version" in change and target.version != change["version"]:
                raise RegistryConflictError(
                    f"document {target.unique_id} : version {target.version}, la mise à jour visait {change['version']}",
                    code="XDSMetadataVersionError",
                )
            if change.get("original") is not None and target.status != change["original"]:
                raise RegistryConflictError(
                    f"document {target.unique_id} : statut {target.status}, la mise à jour partait de "
                    f"{change['original']}",
                    code="XDSMetadataUpdateError",
                )
            previous.setdefault(
                target.entry_uuid,
                {
                    "entry_uuid": target.entry_uuid,
                    "status": target.status,
                    "confidentiality": [list(c) for c in target.confidentiality],
                    "metadata": target.metadata.decode(),
                    "version": target.version,
                },
            )
        for change in changes:
            target = self._documents[change["entry_uuid"]]
            if "status" in change:
                target = replace(target, status=change["status"])
            else:
                target = replace(
                    target,
                    confidentiality=tuple((c, s) for c, s in change["confidentiality"]),
                    metadata=change["metadata"].encode(),
                    version=target.version + 1,
                )
            self._documents[target.entry_uuid] = target
        return list(previous.values())

    def _apply_revert(self, entries: list[Mapping[str, Any]]) -> None:
        for entry in entries:
            target = self._documents.get(entry["entry_uuid"])
            if target is not None:
                self._documents[target.entry_uuid] = replace(
                    target,
                    status=entry["status"],
                    confidentiality=tuple((c, s) for c, s in entry["confidentiality"]),
                    metadata=entry["metadata"].encode(),
                    version=entry["version"],
                )

    def _reset(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._persons = dict(self._initial)
        self._documents = {}
        self._by_unique = {}
        self._by_patient = {}


def _document_fields(document: StoredDocument) -> dict[str, Any]:
    """A document's metadata as JSON (without its bytes nor where they are)."""
    return {
        "entry_uuid": document.entry_uuid,
        "unique_id": document.unique_id,
        "patient": document.patient,
        "patient_oid": document.patient_oid,
        "patient_cx": document.patient_cx,
        "repository_unique_id": document.repository_unique_id,
        "mime_type": document.mime_type,
        "hash": document.hash,
        "size": document.size,
        "type_code": document.type_code,
        "metadata": document.metadata.decode(),
        "essms": document.essms,
        "status": document.status,
        "confidentiality": [list(c) for c in document.confidentiality],
        "version": document.version,
        "logical_id": document.logical_id,
        "submitted_at": document.submitted_at.isoformat(),
        "replaced": document.replaced,
        "is_signature": document.is_signature,
        "source_id": document.source_id,
    }


def _document(fields: Mapping[str, Any]) -> StoredDocument:
    body = fields.get("body")
    return StoredDocument(
        entry_uuid=fields["entry_uuid"],
        unique_id=fields["unique_id"],
        patient=fields["patient"],
        patient_oid=fields["patient_oid"],
        patient_cx=fields["patient_cx"],
        repository_unique_id=fields["repository_unique_id"],
        mime_type=fields["mime_type"],
        data=fields.get("data"),
        hash=fields["hash"],
        size=fields["size"],
        type_code=fields["type_code"],
        metadata=fields["metadata"].encode(),
        essms=fields["essms"],
        status=fields["status"],
        confidentiality=tuple((c, s) for c, s in fields["confidentiality"]),
        version=fields["version"],
        logical_id=fields["logical_id"],
        submitted_at=datetime.fromisoformat(fields["submitted_at"]),
        replaced=fields["replaced"],
        is_signature=fields["is_signature"],
        source_id=fields["source_id"],
        body=BodyRef(*body) if body else None,
    )
