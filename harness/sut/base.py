"""The SUT driver interface: how the harness tells the DUI under test to act.

A driver asks the DUI to perform one business action ("send this document of this person to this address by
MSSanté") and returns what the DUI *reports* about it. The conformance verdict never rests on that report
alone: steps judge the exchange the simulators recorded in the journal. Drivers:

- ``reference``: the built-in reference DUI, an in-process client that performs every exchange correctly;
- ``faulty:<defect>[,<defect>...]``: the reference DUI with named, switchable defects (self-test of the catalogue);
- ``http:<url>``: the DUI's control API (:mod:`harness.sut.http_driver`, for editors' CI);
- ``manual``: a recette operator at the DUI, guided step by step (:mod:`harness.sut.manual`): it returns
  :attr:`ActionStatus.DELEGATED` and the step then waits for the exchange in the journal;
- ``observe:<from>/<to>``: what the journal recorded in a window (:mod:`harness.runtime.observe`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from harness.fields.dui import DuiRecord
from harness.fields.testdata import Establishment, Person
from harness.sut.contract import ActionResult as ActionResult
from harness.sut.contract import ActionStatus as ActionStatus
from harness.sut.contract import Defect as Defect
from harness.sut.contract import SutEnvironment as SutEnvironment


@dataclass(frozen=True)
class MssanteSend:
    """Send the person's document of ``document_kind`` from the establishment to ``recipients``."""

    person: Person
    establishment: Establishment
    document_kind: str  # a key of harness.validators.cda.DOCUMENT_TYPES ("DLU"...)
    recipients: tuple[str, ...]
    end_of_exchange: bool = False  # X-MSS-MES: FIN (no reply expected)
    extra_kinds: tuple[str, ...] = ()  # more documents of the same person in the same IHE_XDM.ZIP ("DOC-NS": CDA N1)


@dataclass(frozen=True)
class MssanteReceive:
    """Read the establishment's MSSanté mailbox (IMAP), integrate the documents received into the records of
    ``patients`` (the persons the DUI knows) and answer each message that asks for it with an MDN (RFC 8098).
    ``auth``: ``password`` or ``certificate`` (AUTHENTICATE EXTERNAL with the organisation certificate)."""

    establishment: Establishment
    patients: tuple[Person, ...]
    auth: str = "password"


@dataclass(frozen=True)
class MssanteRelay:
    """Hand the person's document to the integration platform as HL7 v2 over MLLP (``message_type``
    ``ORU^R01`` or ``MDM^T02``), for MSSanté delivery to ``recipients`` (and the person's Mon espace santé
    mailbox when ``to_patient``), asking for the ZAM receipts."""

    person: Person
    establishment: Establishment
    document_kind: str
    recipients: tuple[str, ...]
    to_patient: bool = False
    message_type: str = "ORU^R01"


@dataclass(frozen=True)
class DirectoryLookup:
    """Find MSSanté addresses in the directory (Annuaire Santé FHIR search) from an address prefix."""

    query: str
    mailbox_type: str | None = None


@dataclass(frozen=True)
class PscLogin:
    """A professional logs in to the DUI with Pro Santé Connect, to work for ``establishment``.

    Who authenticates is chosen at PSC (the harness pre-selects the professional at the simulator): the DUI only
    learns it from the id token and userinfo.
    """

    establishment: Establishment


@dataclass(frozen=True)
class InsiTraits:
    """Identity traits a DUI sends to INSi: birth name, first names in order, sex ``M``/``F``, lunar birth date
    ``YYYY-MM-DD``, optional COG birth place."""

    birth_name: str
    first_names: tuple[str, ...]
    sex: str
    birth_date: str
    birth_place: str | None = None


@dataclass(frozen=True)
class InsiSearch:
    """Search the person's INS by traits (a conformant DUI refines with the birth place on CR 02).

    ``client_certificate`` names another organisation certificate to present instead of the DUI's INSi one
    (negative scenarios only). ``identity_document``: the high-trust identity document the person presents to the
    DUI's user, who checks the traits against it (RNIV validation; FR Core ``fr-core-vs-mode-validation-identity-ins``
    code: ``CN`` carte nationale d'identité, ``PA`` passeport, ``AN`` extrait d'acte de naissance, ``LE`` livret de
    famille); ``None``: no document presented. The DUI reports the document it checked in ``data["piece_identite"]``
    and the status it records in ``data["statut"]``.
    """

    traits: InsiTraits
    establishment: Establishment
    client_certificate: str | None = None
    identity_document: str | None = None


@dataclass(frozen=True)
class InsiVerify:
    """Verify the INS the DUI holds (``ins``: 15 characters, ``oid``): re-send the complete traits to INSi and
    compare the INS returned; a different active INS whose history holds ``ins`` replaces it."""

    traits: InsiTraits
    ins: str
    oid: str
    establishment: Establishment
    client_certificate: str | None = None


@dataclass(frozen=True)
class DmpFeed:
    """Feed the person's DMP with a document of ``document_kind`` (TD0.2 check, then ITI-41). With ``replaces``
    (the uniqueId of a document the DUI sent before) the document is a new version replacing it (TD2.1, RPLC)."""

    person: Person
    establishment: Establishment
    document_kind: str
    replaces: str | None = None


@dataclass(frozen=True)
class DmpQuery:
    """Find the person's documents in the DMP (ITI-18 FindDocuments), or fetch one (``unique_id``: ITI-43)."""

    person: Person
    establishment: Establishment
    unique_id: str | None = None


@dataclass(frozen=True)
class DmpUpdate:
    """Update a document the DUI sent (ITI-57): ``change`` is ``masquer`` / ``demasquer`` (professionals),
    ``invisible-patient``, ``archiver`` or ``supprimer``."""

    person: Person
    establishment: Establishment
    unique_id: str
    change: str


@dataclass(frozen=True)
class TdduiExport:
    """Export the establishment's records, as they stand at ``exported_at``, to the national "transfert de
    données DUI" endpoint (ANS TDDUI FHIR transaction): the facts behind the usage indicators."""

    establishment: Establishment
    records: tuple[DuiRecord, ...]
    exported_at: datetime


@dataclass(frozen=True)
class EprescriptionImport:
    """Import the electronic prescription whose identifier (EPU) the professional scanned from its QR code, for the
    person: retrieve it from the e-Prescription service, check it (right person, not cancelled), integrate it and
    confirm the integration. ``document``: retrieve the CDA eP-MED-DM document instead of the FHIR lines."""

    person: Person
    establishment: Establishment
    identifier: str
    document: bool = False


@dataclass(frozen=True)
class CdlNotePost:
    """Write a note in the person's cahier de liaison on the e-Parcours platform (``note_type``: JDV_J23 code
    OBS, GEN, INST, INTERV, DEM-AVIS; ``visibility``: JDV_J110 code), as one transaction Bundle or RESTful."""

    person: Person
    establishment: Establishment
    note_type: str
    text: str
    urgent: bool = False
    visibility: str | None = None
    transaction: bool = True


@dataclass(frozen=True)
class CdlNoteUpdate:
    """Change the text of a note the DUI wrote (``note_id``: the platform's id), with the version it last saw."""

    person: Person
    establishment: Establishment
    note_id: str
    text: str


@dataclass(frozen=True)
class CdlNotesRead:
    """Search the person's notes in the cahier de liaison (optionally of one ``note_type``, since ``since``) and
    read each one; the DUI shows its user the notes found, urgent ones flagged."""

    person: Person
    establishment: Establishment
    note_type: str | None = None
    since: str | None = None


class SutDriver(Protocol):
    """What every SUT driver implements: ``setup`` / ``close`` and one method per action of the registered service
    plugins (``send_mssante(MssanteSend)``, ``psc_refresh()``..., see :mod:`harness.sut.plugins`), each returning
    an :class:`ActionResult`. The action methods are assembled from the plugins, not listed here: the reference
    DUI composes the plugins' mixins, the HTTP, manual and observe drivers answer every method of the action table
    (:func:`harness.sut.control_api.contract`). An action a driver cannot do reports :attr:`ActionStatus.ERROR`.

    A driver may also declare ``settled_on_return = True`` (read with ``getattr``, default ``False``): when one of
    its actions returns, every exchange that action caused has been answered by the simulators, hence journaled
    (they commit before they answer, docs/ARCHITECTURE.md « Commit before acknowledgement »). Only the in-process
    reference DUI can promise it; a DUI behind the control API may answer before its exchanges end. One kind of row
    is outside the promise: a refused TLS handshake is journaled by the listener after the client has read the alert
    (``harness.host.asgi_tls.handshake_refusal``), so it may land after the action returned; no check asks for the
    absence of such a row."""

    name: str

    def setup(self, env: SutEnvironment) -> None: ...

    def close(self) -> None: ...

    def __getattr__(self, method: str) -> Callable[..., ActionResult]: ...
