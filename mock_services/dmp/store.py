"""Per-run state of the DMP simulator: each person's DMP (absent, active, closed; authorisation) and the documents.

Kept in memory by the simulator instance (one per run, nothing at module level); the journal stays the record of
exchanges. Thread-safe: transactions run in worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from harness.fields.identity import INS
from harness.validators.ebrim import STATUS_APPROVED

PatientKey = tuple[
    str, str
]  # (INS value, assigning authority OID): the same 15 digits under .4.8 and .4.10 are two DMPs


def patient_key(ins: INS) -> PatientKey:
    """The DMP's identity of a patient: the (value, OID) pair, never the 15 characters alone."""
    return (ins.value, ins.oid)


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


@dataclass
class StoredDocument:
    entry_uuid: str
    unique_id: str
    patient: str  # INS value
    patient_oid: str  # INS assigning authority: the patient is (patient, patient_oid)
    patient_cx: str
    repository_unique_id: str
    mime_type: str
    data: bytes = field(repr=False)
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

    @property
    def masked_to_professionals(self) -> bool:
        return any(code == "MASQUE_PS" for code, _ in self.confidentiality)


class DmpStore:
    """The DMPs and documents of one run."""

    def __init__(self, persons: Iterable[PersonDmp] = ()) -> None:
        self._lock = threading.Lock()
        self._persons: dict[PatientKey, PersonDmp] = {(p.ins, p.oid): p for p in persons}
        self._documents: dict[str, StoredDocument] = {}
        self._by_unique: dict[str, str] = {}

    # persons -----------------------------------------------------------------------------------
    def person(self, ins: INS) -> PersonDmp:
        """The DMP of ``ins`` (absent when the simulator knows no such person under that OID)."""
        with self._lock:
            return self._persons.get(
                patient_key(ins), PersonDmp(ins.value, ins.oid, DmpState.ABSENT, Authorisation.NONE)
            )

    def set_person(
        self, ins: INS, *, state: DmpState | None = None, authorisation: Authorisation | None = None
    ) -> PersonDmp:
        key = patient_key(ins)
        with self._lock:
            current = self._persons.get(key, PersonDmp(ins.value, ins.oid, DmpState.ABSENT, Authorisation.NONE))
            updated = replace(
                current, state=state or current.state, authorisation=authorisation or current.authorisation
            )
            self._persons[key] = updated
            return updated

    # documents ---------------------------------------------------------------------------------
    def add(self, document: StoredDocument) -> None:
        with self._lock:
            self._documents[document.entry_uuid] = document
            self._by_unique[document.unique_id] = document.entry_uuid

    def get(self, entry_uuid: str) -> StoredDocument | None:
        with self._lock:
            return self._documents.get(entry_uuid)

    def by_unique_id(self, unique_id: str) -> StoredDocument | None:
        with self._lock:
            entry = self._by_unique.get(unique_id)
            return self._documents.get(entry) if entry else None

    def update(self, entry_uuid: str, **changes: object) -> StoredDocument | None:
        with self._lock:
            document = self._documents.get(entry_uuid)
            if document is None:
                return None
            for name, value in changes.items():
                setattr(document, name, value)
            return document

    def documents(self, patient: INS | None = None) -> list[StoredDocument]:
        """The documents of ``patient`` ((value, OID) pair), or all of them."""
        with self._lock:
            return [
                d
                for d in self._documents.values()
                if patient is None or (d.patient, d.patient_oid) == patient_key(patient)
            ]
