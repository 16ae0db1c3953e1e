"""The e-Parcours platform as a cahier de liaison manager (gestionnaire, ANS ``ans.fhir.fr.cdl`` 3.0.0).

See :mod:`mock_services.eparcours` for the contract. Journal (service ``eparcours``): every exchange of the DUI
with the cahier de liaison is ``cdl.<verb>`` — ``cdl.create`` / ``cdl.update`` / ``cdl.read`` / ``cdl.search`` /
``cdl.delete`` on ``DocumentReference`` (outcome accepted / rejected; ``person`` = the note's INS; ``essms`` = the
FINESS of the DUI's organisation certificate, else of the author's organisation) — the usage indicator
``cahier_liaison`` counts the accepted ones. A transaction Bundle is one ``fhir.transaction`` exchange plus one
exchange per entry, committed together. Actor requests are ``fhir.<interaction>.<Type>`` (not counted). The
platform's own notes (a partner writes in the cahier) are ``platform.note`` / ``platform.note_update``
(direction ``to_dui``, not counted).
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.core.journal import Direction, Exchange, Outcome
from harness.core.settings import read_settings
from harness.fhir import (
    EstablishmentAccess,
    FhirError,
    FhirHooks,
    FhirInteraction,
    FhirServer,
    Interaction,
    Limits,
    RequestInfo,
    ResourceStore,
    ResourceType,
    Version,
)
from harness.fhir.access import denied, identified_owners
from harness.fhir.interaction import default_exchange
from harness.fhir.outcome import IssueCode, fail
from harness.fhir.search import ParamType, SearchParam, Total
from harness.fhir.server import simulated_unavailability
from harness.fhir.store import UnitOfWork
from harness.fields.identity import ProductionInsPolicy
from harness.fields.testdata import Person
from harness.host.simulator import SimulatorContext
from harness.validators import Finding, production_ins_findings
from harness.validators import cdl as C
from harness.validators.frcore import (
    IDNPS_SYSTEM,
    INS_SYSTEMS,
    organization_finess,
    patient_ins,
)

SERVICE = "eparcours"
FAULT_UNAVAILABLE = "eparcours.indisponible"
#: Declared faults (``<service>.<fault>``, issue 13 item 2), injected through the host's ``/_harness/faults``
FAULTS = {
    FAULT_UNAVAILABLE: "la prochaine requête FHIR (params.count requêtes) répond params.status (503) + OperationOutcome transient"
}
#: JDV_J110 audiences that keep a note from the other establishments' professionals (only its author sees it)
HIDDEN_FROM_OTHERS = frozenset({"MASQUE_PS", "CONNEXION_SECRETE"})
OP_PLATFORM_NOTE = "platform.note"
OP_PLATFORM_UPDATE = "platform.note_update"
_ALL = frozenset(
    {
        Interaction.READ,
        Interaction.VREAD,
        Interaction.CREATE,
        Interaction.UPDATE,
        Interaction.SEARCH,
        Interaction.HISTORY,
    }
)
_VERBS = {
    Interaction.CREATE: "create",
    Interaction.UPDATE: "update",
    Interaction.READ: "read",
    Interaction.VREAD: "read",
    Interaction.HISTORY: "read",
    Interaction.SEARCH: "search",
    Interaction.DELETE: "delete",
}
_SP = "http://hl7.org/fhir/SearchParameter/"


def _p(
    name: str, kind: ParamType, paths: tuple[str, ...], definition: str, targets: tuple[str, ...] = (), doc: str = ""
) -> SearchParam:
    return SearchParam(name, kind, paths, targets, doc, _SP + definition)


_PEOPLE_PARAMS = (
    _p("identifier", ParamType.TOKEN, ("identifier",), "Patient-identifier"),
    _p("family", ParamType.STRING, ("name.family",), "individual-family"),
    _p("given", ParamType.STRING, ("name.given",), "individual-given"),
    _p("name", ParamType.STRING, ("name",), "Patient-name"),
)

RESOURCES = (
    ResourceType(
        "DocumentReference",
        _ALL | {Interaction.DELETE},
        (
            _p(
                "patient",
                ParamType.REFERENCE,
                ("subject",),
                "clinical-patient",
                ("Patient",),
                "personne prise en charge (patient.identifier)",
            ),
            _p(
                "subject",
                ParamType.REFERENCE,
                ("subject",),
                "DocumentReference-subject",
                ("Patient",),
                "sujet de la note",
            ),
            _p(
                "author",
                ParamType.REFERENCE,
                ("author",),
                "DocumentReference-author",
                C.AUTHOR_TYPES,
                "auteur de la note",
            ),
            _p("date", ParamType.DATE, ("date",), "DocumentReference-date", doc="date de création de la note"),
            _p("type", ParamType.TOKEN, ("type",), "clinical-type", doc="type de la note (JDV_J23)"),
            _p(
                "security-label",
                ParamType.TOKEN,
                ("securityLabel",),
                "DocumentReference-security-label",
                doc="restriction d'audience",
            ),
            _p(
                "identifier",
                ParamType.TOKEN,
                ("masterIdentifier", "identifier"),
                "clinical-identifier",
                doc="identifiant de la note",
            ),
            _p("status", ParamType.TOKEN, ("status",), "DocumentReference-status"),
        ),
        profile=C.PROFILE_DOCUMENT_REFERENCE,
        documentation="Notes du cahier de liaison (CdLDocumentReference)",
        conditional_delete=True,
    ),
    ResourceType(
        "Patient", _ALL, _PEOPLE_PARAMS, profile="https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"
    ),
    ResourceType(
        "RelatedPerson",
        _ALL,
        (
            _p("identifier", ParamType.TOKEN, ("identifier",), "RelatedPerson-identifier"),
            _p("name", ParamType.STRING, ("name",), "RelatedPerson-name"),
            _p("patient", ParamType.REFERENCE, ("patient",), "RelatedPerson-patient", ("Patient",)),
        ),
        profile="https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-related-person",
    ),
    ResourceType(
        "Practitioner",
        _ALL,
        _PEOPLE_PARAMS,
        profile="https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-practitioner",
    ),
    ResourceType(
        "PractitionerRole",
        _ALL,
        (
            _p("identifier", ParamType.TOKEN, ("identifier",), "PractitionerRole-identifier"),
            _p(
                "practitioner",
                ParamType.REFERENCE,
                ("practitioner",),
                "PractitionerRole-practitioner",
                ("Practitioner",),
            ),
            _p(
                "organization",
                ParamType.REFERENCE,
                ("organization",),
                "PractitionerRole-organization",
                ("Organization",),
            ),
        ),
        profile="https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-practitionerrole",
    ),
    ResourceType(
        "Organization",
        _ALL,
        (
            _p("identifier", ParamType.TOKEN, ("identifier",), "Organization-identifier"),
            _p("name", ParamType.STRING, ("name",), "Organization-name"),
        ),
        profile="https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-organization",
    ),
    ResourceType("Device", _ALL, (_p("identifier", ParamType.TOKEN, ("identifier",), "Device-identifier"),)),
)

#: The partner who writes the platform's own notes (a nurse of a home-care service, synthetic).
PLATFORM_AUTHOR = {
    "family": "MOREAU",
    "given": "Hélène",
    "idnps": "899990001234",
    "profession": ("60", "Infirmier"),
    "finess": "990000099",
    "organisation": "SSIAD partenaire de la plateforme",
}


@dataclass(frozen=True)
class EparcoursSettings:
    """``[settings.eparcours]`` of the harness configuration."""

    max_body_bytes: int = 2 * 1024 * 1024
    max_bundle_entries: int = 100
    require_if_match: bool = False  # FHIR allows a server to require version-aware updates (412 without If-Match)
    # ans.fhir.fr.cdl 3.0.0 maj_note.md / suppr_note.md: « il est recommandé qu'une note ne puisse être modifiée
    # [supprimée] que par son auteur » — the default follows the recommendation (403 for another establishment)
    author_only_changes: bool = True
    production_ins: ProductionInsPolicy = ProductionInsPolicy.WARN  # harness-wide unless the table overrides it
    # the ``_total`` of a search that sends none: ``none`` (no Bundle.total unless asked, issue 18), ``estimate``
    # or ``accurate`` (every search counted, as before 3 Dec 2026); harness.fhir.search.Total
    search_total: Total = Total.NONE

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> EparcoursSettings:
        """Typed read of the table (:func:`harness.core.settings.read_settings`), bounds floored."""
        settings = read_settings(cls, raw)
        return replace(
            settings,
            max_body_bytes=max(4096, settings.max_body_bytes),
            max_bundle_entries=max(1, settings.max_bundle_entries),
        )


def _ref_target(reference: Any) -> tuple[str, str] | None:
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(ref, str):
        return None
    parts = [p for p in ref.split("/_history/")[0].split("/") if p]
    return (parts[-2], parts[-1]) if len(parts) >= 2 else None


def _ins_value(patient: dict[str, Any]) -> str | None:
    """The INS (15 characters) of a Patient resource, or ``None``."""
    ins = patient_ins(patient)
    return ins.value if ins else None


class _Resolutions:
    """What the references of cahier de liaison notes (ANS ``ans.fhir.fr.cdl`` 3.0.0, ``DocumentReference``) resolve
    to, read in ``uow`` when given, else in the store: ``subject`` to the person's INS (the FR Core INS identifier of
    the Patient), ``author`` to the FINESS of the author's organisation (an ``Organization``, or a
    ``PractitionerRole``'s ``organization``).

    With ``memo`` — one search, while the store does not change: the visibility of its matches
    (:meth:`EparcoursService.visibility`) and its journal row — each subject reference and each list of author
    references is resolved once: a search's notes share their person and their few authors (issue 18: resolving
    them for every match was a third of the search's journal row, and the authors a tenth of the search). Without
    it nothing is kept: the form for a read or a write, where the store may change between two questions."""

    __slots__ = ("_current", "_ins", "_finess")

    def __init__(self, store: ResourceStore, uow: UnitOfWork | None = None, *, memo: bool = False) -> None:
        self._current = uow.current if uow is not None else store.current
        self._ins: dict[str, str | None] | None = {} if memo else None
        self._finess: dict[tuple[str, ...], str | None] | None = {} if memo else None

    def version(self, reference: Any) -> Version | None:
        """The current version of the referenced resource, ``None`` when there is none."""
        target = _ref_target(reference)
        return self._current(*target) if target is not None else None

    def resource(self, reference: Any) -> dict[str, Any] | None:
        """The current content of the referenced resource, ``None`` when there is none (or it is deleted)."""
        version = self.version(reference)
        return version.resource if version is not None else None

    def person_of(self, note: dict[str, Any] | None) -> str | None:
        """The INS (15 characters) of a note's subject, ``None`` when it names no Patient carrying one."""
        if not isinstance(note, dict):
            return None
        subject = note.get("subject")
        if self._ins is None:
            return self._subject_ins(subject)
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(reference, str):
            return self._subject_ins(subject)
        if reference not in self._ins:
            self._ins[reference] = self._subject_ins(subject)
        return self._ins[reference]

    def _subject_ins(self, subject: Any) -> str | None:
        version = self.version(subject)
        if version is None or version.resource is None:
            return None
        return version.derived("eparcours.ins", _ins_value)  # once per Patient version (an INS parse each)

    def author_finess(self, note: dict[str, Any] | None) -> str | None:
        """The FINESS of a note author's organisation: the first author (``Organization``, or
        ``PractitionerRole.organization``) that names one, ``None`` when none does."""
        if not isinstance(note, dict):
            return None
        authors = note.get("author")
        if self._finess is None or not isinstance(authors, list):
            return self._authors_finess(authors)
        key = tuple(a.get("reference") if isinstance(a, dict) else None for a in authors)
        if not all(isinstance(ref, str) for ref in key):
            return self._authors_finess(authors)
        if key not in self._finess:
            self._finess[key] = self._authors_finess(authors)
        return self._finess[key]

    def _authors_finess(self, authors: Any) -> str | None:
        for author in authors or []:
            resource = self.resource(author)
            if resource is None:
                continue
            if resource.get("resourceType") == "Organization":
                found = organization_finess(resource)
            elif resource.get("resourceType") == "PractitionerRole":
                found = organization_finess(self.resource(resource.get("organization")))
            else:
                found = None
            if found:
                return found
        return None


class EparcoursService(FhirHooks):
    """The cahier de liaison manager of one run."""

    service = SERVICE

    def __init__(self, ctx: SimulatorContext, settings: EparcoursSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self._lock = threading.Lock()
        self.store = ResourceStore(clock=ctx.run.now, state=ctx.state, stream=f"{SERVICE}.fhir")
        self.access = EstablishmentAccess(ctx.testdata.establishments, og_shared=ctx.testdata.og_shared)
        self.production_ins = settings.production_ins  # harness-wide production-INS policy
        self.fhir = FhirServer(
            resources=RESOURCES,
            store=self.store,
            hooks=self,
            record=ctx.record_many,
            base_url=self.base_url,
            limits=Limits(max_body_bytes=settings.max_body_bytes, max_bundle_entries=settings.max_bundle_entries),
            search_total=settings.search_total,
            group_commit=True,  # a note's create reads only its subject and author, which no concurrent create changes
            software="socle-harness e-Parcours",
            sessions=ctx.session_book,
            title="Simulateur e-Parcours : gestionnaire de cahier de liaison",
            implementation_guides=(C.IMPLEMENTATION_GUIDE,),
        )

    def base_url(self) -> str:
        return f"{self.ctx.http_base}/fhir"

    # ------------------------------------------------------------------------------------ resolution
    def person_of(self, note: dict[str, Any] | None, uow: UnitOfWork | None = None) -> str | None:
        """The INS (15 characters) of a note's subject, read in ``uow`` when given (nothing kept: one question)."""
        return _Resolutions(self.store, uow).person_of(note)

    def author_finess(self, note: dict[str, Any] | None, uow: UnitOfWork | None = None) -> str | None:
        """The FINESS of a note author's organisation, read in ``uow`` when given (nothing kept: one question)."""
        return _Resolutions(self.store, uow).author_finess(note)

    # ------------------------------------------------------------------------------------ access
    def unavailable(self, *, request: RequestInfo) -> FhirError | None:
        return simulated_unavailability(self.ctx, FAULT_UNAVAILABLE, request.caller_finess)

    def authenticate(self, certificate: x509.Certificate | None, *, request: RequestInfo) -> str | None:
        return self.access.authenticate(certificate)

    def _accompanies(self, caller: str | None, ins: str | None) -> bool:
        """Whether the establishment ``caller`` accompanies the person ``ins`` (the grappe's fixtures say which ESSMS
        accompanies whom; the organisme gestionnaire's ESSMS too when the grappe declares it)."""
        return ins is not None and any(
            p.ins.value == ins and self.access.may_act_for(caller, p.essms) for p in self.ctx.testdata.persons
        )

    def _note_visible(self, note: dict[str, Any], caller: str | None, resolutions: _Resolutions) -> bool:
        author = resolutions.author_finess(note)
        if author is not None and self.access.may_act_for(caller, author):
            return True  # its own notes, whatever their audience
        if C.visibility(note) in HIDDEN_FROM_OTHERS:
            return False
        return self._accompanies(caller, resolutions.person_of(note))

    def visible(self, version: Version, *, request: RequestInfo, resolutions: _Resolutions | None = None) -> bool:
        """What an establishment may read or find in the cahier de liaison: its own notes; the other notes of the
        persons it accompanies, except those whose audience (securityLabel, JDV_J110) excludes the professionals
        (``MASQUE_PS``) or that were written under a secret connection (``CONNEXION_SECRETE``); the patients it
        accompanies and their related persons; the directory actors (professionals, roles, organisations,
        devices. ``resolutions``: those of the search (:meth:`visibility`), else read in the store, nothing kept."""
        resource = version.resource or self._last_known(version.id, version.resource_type)
        if resource is None:
            return False
        if resolutions is None:
            resolutions = _Resolutions(self.store)
        caller = request.caller_finess
        if version.resource_type == "DocumentReference":
            return self._note_visible(resource, caller, resolutions)
        if version.resource_type == "Patient":
            ins = patient_ins(resource)
            return self._accompanies(caller, ins.value if ins else None)
        if version.resource_type == "RelatedPerson":
            ins = patient_ins(resolutions.resource(resource.get("patient")))
            return self._accompanies(caller, ins.value if ins else None)
        return True

    def visibility(self, *, request: RequestInfo) -> Callable[[Version], bool]:
        """:meth:`visible` for the matches of one search, each note's subject and authors resolved once for them all
        (:class:`_Resolutions` kept for the search)."""
        return functools.partial(self.visible, request=request, resolutions=_Resolutions(self.store, memo=True))

    def owners(self, version: Version) -> list[tuple[str, str]]:
        """The identifiers a resource names, and a note's person even when its subject is a literal reference."""
        found = identified_owners(version.resource)
        if version.resource_type == "DocumentReference" and (ins := self.person_of(version.resource)) is not None:
            found.append(("patient", ins))
        return found

    def _require_author(self, note: dict[str, Any] | None, uow: UnitOfWork, request: RequestInfo, *, what: str) -> None:
        """A note written (or about to be changed) by another establishment: 404 when hidden from the caller, else
        403 when only its author may change it (``author_only_changes``)."""
        if not isinstance(note, dict):
            return
        caller = request.caller_finess
        resolutions = _Resolutions(self.store, uow)
        if not self._note_visible(note, caller, resolutions):
            raise fail(
                404, IssueCode.NOT_FOUND, f"DocumentReference/{note.get('id')} inconnu", error_code="FHIR-NOT-FOUND"
            )
        author = resolutions.author_finess(note)
        if self.settings.author_only_changes and author is not None and not self.access.may_act_for(caller, author):
            raise denied(caller, author, expression="DocumentReference.author", what=what)

    def before_delete(self, item: FhirInteraction, version: Version, *, uow: UnitOfWork, request: RequestInfo) -> None:
        if version.resource_type == "DocumentReference":
            self._require_author(version.resource, uow, request, what="suppression d'une note d'un autre auteur :")

    # ------------------------------------------------------------------------------------ FHIR hooks
    def validate(
        self, resource_type: str, resource: dict[str, Any], *, uow: UnitOfWork, interaction: Interaction
    ) -> list[Finding]:
        findings = C.entry_findings(resource, where=resource_type)
        if resource_type == "Patient":
            findings += production_ins_findings(patient_ins(resource), self.production_ins, "Patient.identifier")
        return findings

    def _bundle_author_finess(self, bundle: dict[str, Any], note: dict[str, Any]) -> str | None:
        """The FINESS of a Bundle note's author organisation, references resolved in the Bundle (``fullUrl``) first,
        then in the store."""
        in_store = _Resolutions(self.store)
        by_url = {
            e.get("fullUrl"): e.get("resource")
            for e in bundle.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("fullUrl"), str) and isinstance(e.get("resource"), dict)
        }

        def resolve(reference: Any) -> dict[str, Any] | None:
            ref = reference.get("reference") if isinstance(reference, dict) else None
            if isinstance(ref, str) and ref in by_url:
                return by_url[ref]
            return in_store.resource(reference)

        for author in note.get("author") or []:
            resource = resolve(author)
            if not isinstance(resource, dict):
                continue
            if resource.get("resourceType") == "PractitionerRole":
                resource = resolve(resource.get("organization"))
            found = organization_finess(resource) if isinstance(resource, dict) else None
            if found:
                return found
        return None

    def validate_bundle(self, bundle: dict[str, Any], *, request: RequestInfo) -> list[Finding]:
        entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
        for index, entry in enumerate(entries):
            resource = entry.get("resource")
            if isinstance(resource, dict) and resource.get("resourceType") == "DocumentReference":
                self.access.require(
                    request.caller_finess,
                    self._bundle_author_finess(bundle, resource),
                    expression=f"Bundle.entry[{index}].resource.author",
                    what="note :",
                )
        if bundle.get("type") == "transaction" and any(
            (e.get("resource") or {}).get("resourceType") == "DocumentReference" for e in entries
        ):
            return C.check_bundle(bundle)
        return []

    def before_write(
        self, item: FhirInteraction, resource: dict[str, Any], *, uow: UnitOfWork, request: RequestInfo
    ) -> dict[str, Any]:
        if item.resource_type == "DocumentReference":
            if item.interaction is Interaction.UPDATE:
                existing = uow.current("DocumentReference", item.resource_id or "")
                if existing is not None:
                    self._require_author(
                        existing.resource, uow, request, what="mise à jour d'une note d'un autre auteur :"
                    )
            self.access.require(
                request.caller_finess,
                self.author_finess(resource, uow),
                expression="DocumentReference.author",
                what="note :",
            )
        if (
            self.settings.require_if_match
            and item.interaction is Interaction.UPDATE
            and item.resource_type == "DocumentReference"
            and uow.exists("DocumentReference", item.resource_id or "")
            and "if-match" not in request.headers
            and item.index is None
        ):
            raise fail(
                412,
                IssueCode.CONFLICT,
                "mise à jour d'une note sans If-Match refusée (mise à jour versionnée exigée)",
                error_code="FHIR-IF-MATCH-REQUIRED",
            )
        return resource

    def _note_details(self, note: dict[str, Any] | None) -> dict[str, Any]:
        if not isinstance(note, dict):
            return {}
        try:
            return {
                "note": {
                    "id": note.get("id"),
                    "type": C.note_type(note),
                    "urgent": C.is_emergency(note),
                    "visibility": C.visibility(note),
                    "version": (note.get("meta") or {}).get("versionId"),
                    "status": note.get("status"),
                }
            }
        except (AttributeError, TypeError, ValueError):  # a malformed note (refused 400): described as it is
            return {"note": {"id": str(note.get("id"))[:64], "malformed": True}}

    def _exchange_of(self, item: FhirInteraction, request: RequestInfo, body: bytes, uow: UnitOfWork) -> Exchange:
        if item.resource_type == "DocumentReference" and item.interaction in _VERBS:
            verb = _VERBS[item.interaction]
            note = item.resource or self._last_known(item.resource_id)
            if not isinstance(note, dict) or note.get("resourceType") != "DocumentReference":
                note = (
                    None  # another resource sent to the DocumentReference endpoint (refused 400): no note to describe
                )
            if item.interaction is Interaction.SEARCH:
                resolutions = _Resolutions(self.store, uow, memo=True)  # the search's notes share their person
                of = [resolutions.person_of(m.resource) for m in item.matches]
                persons = set(of)
                person = self._searched_ins(item) or (persons.pop() if len(persons) == 1 else None)
                details: dict[str, Any] = {
                    "notes": [
                        {
                            "id": m.id,
                            "type": C.note_type(m.resource or {}),
                            "urgent": C.is_emergency(m.resource or {}),
                            "person": match_person,
                        }
                        for m, match_person in zip(item.matches, of, strict=True)
                    ]
                }
                return default_exchange(
                    item, request=request, body=body, operation=f"cdl.{verb}", person=person, details=details
                )
            return default_exchange(
                item,
                request=request,
                body=body,
                operation=f"cdl.{verb}",
                person=self.person_of(note, uow),
                essms=request.caller_finess,
                details=self._note_details(note),
            )
        if item.interaction is Interaction.INVALID and item.resource_type == "DocumentReference":
            return default_exchange(item, request=request, body=body, operation="cdl.invalid")
        person = None
        if item.resource_type == "Patient" and isinstance(item.resource, dict):
            ins = patient_ins(item.resource)
            person = ins.value if ins else None
        return default_exchange(item, request=request, body=body, person=person)

    def _last_known(self, note_id: str | None, resource_type: str = "DocumentReference") -> dict[str, Any] | None:
        """The last content of a note (a read of a deleted note is still about its person)."""
        for version in reversed(self.store.history(resource_type, note_id or "")):
            if version.resource is not None:
                return version.resource
        return None

    def _searched_ins(self, item: FhirInteraction) -> str | None:
        for key, values in (item.query or {}).items():
            if key.endswith(".identifier") and key.split(":")[0].split(".")[0] in ("patient", "subject"):
                for value in values:
                    system, _, code = value.partition("|")
                    if system in INS_SYSTEMS and len(code) == 15:
                        return code
        return None

    def exchanges(self, item: FhirInteraction, *, request: RequestInfo, body: bytes, uow: UnitOfWork) -> list[Exchange]:
        try:
            return self._exchanges(item, request=request, body=body, uow=uow)
        except (AttributeError, TypeError, ValueError, KeyError):
            if item.accepted:
                raise  # an accepted write is described properly or not at all (the server answers 500)
            # a malformed request the rules refused: journaled with the generic details rather than lost
            return [default_exchange(item, request=request, body=body)]

    def _exchanges(
        self, item: FhirInteraction, *, request: RequestInfo, body: bytes, uow: UnitOfWork
    ) -> list[Exchange]:
        if item.interaction not in (Interaction.TRANSACTION, Interaction.BATCH) or not item.entries:
            if item.interaction is Interaction.TRANSACTION and isinstance(item.request, dict):
                # a refused Bundle (bad structure, profile): its notes are refused creations / updates of the cahier
                return [self._bundle_exchange(item, request, body, uow), *self._refused_notes(item, request)]
            return [self._exchange_of(item, request, body, uow)]
        out = [self._bundle_exchange(item, request, body, uow)]
        for sub in item.entries:
            payload = (
                json.dumps(sub.request, ensure_ascii=False, sort_keys=True).encode("utf-8") if sub.request else b""
            )
            entry_request = RequestInfo(
                sub.method or "POST",
                request.path,
                "",
                request.headers,
                content_type="application/fhir+json",
                caller_finess=request.caller_finess,
            )
            out.append(self._exchange_of(sub, entry_request, payload, uow))
        return out

    def _bundle_exchange(self, item: FhirInteraction, request: RequestInfo, body: bytes, uow: UnitOfWork) -> Exchange:
        notes = [s.resource for s in item.entries if s.resource_type == "DocumentReference"]
        person = self.person_of(notes[0], uow) if notes else None
        return default_exchange(
            item,
            request=request,
            body=body,
            person=person,
            essms=request.caller_finess,
            details={"entries": len(item.entries)},
        )

    def _refused_notes(self, item: FhirInteraction, request: RequestInfo) -> list[Exchange]:
        out = []
        for index, entry in enumerate((item.request or {}).get("entry") or []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != "DocumentReference":
                continue
            method = str((entry.get("request") or {}).get("method", "POST")).upper()
            sub = FhirInteraction(
                Interaction.UPDATE if method == "PUT" else Interaction.CREATE,
                method,
                "DocumentReference",
                resource.get("id") if method == "PUT" else None,
                status=item.status,
                request=resource,
                index=index,
            )
            sub.error = item.error
            payload = json.dumps(resource, ensure_ascii=False, sort_keys=True).encode("utf-8")
            out.append(
                default_exchange(
                    sub,
                    request=request,
                    body=payload,
                    operation=f"cdl.{_VERBS[sub.interaction]}",
                    details=self._note_details(resource),
                )
            )
        return out

    # ------------------------------------------------------------------------------------ the platform's own notes
    def _ensure(self, uow: UnitOfWork, resource_type: str, system: str, value: str, resource: dict[str, Any]) -> str:
        """The id of the first created ``resource_type`` whose identifier is ``system`` | ``value``, else of the one
        ``resource`` creates. The candidates come from the store's identifier index (:meth:`UnitOfWork.among_identified`;
        issue 18: a partner's note cost a pass over every Patient of the cahier de liaison)."""
        for version in uow.among_identified(resource_type, ("identifier", system, value)):
            if any(
                i.get("system") == system and i.get("value") == value
                for i in (version.resource or {}).get("identifier") or []
            ):
                return version.id
        return uow.create(resource_type, resource).id

    def _platform_actors(self, uow: UnitOfWork, person: Person) -> tuple[str, str]:
        patient_id = self._ensure(
            uow,
            "Patient",
            f"urn:oid:{person.ins.oid}",
            person.ins.value,
            {
                "resourceType": "Patient",
                "identifier": [{"use": "official", **person.ins.to_fhir_identifier()}],
                "name": [{"use": "official", "family": person.family, "given": person.given.split()}],
                "gender": "male" if person.sex == "M" else "female",
                "birthDate": person.birth_date.isoformat(),
            },
        )
        a = PLATFORM_AUTHOR
        practitioner_id = self._ensure(
            uow,
            "Practitioner",
            IDNPS_SYSTEM,
            a["idnps"],
            {
                "resourceType": "Practitioner",
                "identifier": [{"system": IDNPS_SYSTEM, "value": a["idnps"]}],
                "name": [{"family": a["family"], "given": [a["given"]], "prefix": ["MME"]}],
            },
        )
        organization_id = self._ensure(
            uow,
            "Organization",
            "http://finess.esante.gouv.fr",
            a["finess"],
            {
                "resourceType": "Organization",
                "identifier": [{"system": "http://finess.esante.gouv.fr", "value": a["finess"]}],
                "name": a["organisation"],
            },
        )
        role_system = "https://socle-harness.test/eparcours/practitioner-role"
        role_id = self._ensure(
            uow,
            "PractitionerRole",
            role_system,
            f"{a['idnps']}@{a['finess']}",
            {
                "resourceType": "PractitionerRole",
                "identifier": [{"system": role_system, "value": f"{a['idnps']}@{a['finess']}"}],
                "active": True,
                "practitioner": {"reference": f"Practitioner/{practitioner_id}"},
                "organization": {"reference": f"Organization/{organization_id}"},
                "code": [
                    {
                        "coding": [
                            {
                                "system": "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante",
                                "code": a["profession"][0],
                                "display": a["profession"][1],
                            }
                        ]
                    }
                ],
            },
        )
        return patient_id, role_id

    def publish_note(
        self,
        person: Person,
        *,
        note_type: str = "OBS",
        text: str,
        urgent: bool = False,
        visibility: str | None = None,
        when: datetime | None = None,
    ) -> Version:
        """A partner writes a note in the person's cahier de liaison (the DUI must then read it)."""
        moment = when or self.ctx.run.now() or datetime.now(UTC)
        with self.store.exclusive() as uow:
            patient_id, role_id = self._platform_actors(uow, person)
            note: dict[str, Any] = {
                "resourceType": "DocumentReference",
                "meta": {"profile": [C.PROFILE_DOCUMENT_REFERENCE]},
                "extension": [{"url": C.EXT_IS_EMERGENCY, "valueBoolean": urgent}],
                "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
                "status": "current",
                "type": {"coding": [{"system": C.TRE_R234, "code": note_type, "display": C.NOTE_TYPES[note_type]}]},
                "subject": {"reference": f"Patient/{patient_id}"},
                "date": moment.isoformat(timespec="seconds"),
                "author": [{"reference": f"PractitionerRole/{role_id}"}],
                "description": text[:120],
                "content": [
                    {
                        "attachment": {
                            "contentType": "text/plain",
                            "language": "fr",
                            "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                        }
                    }
                ],
            }
            if visibility:
                note["securityLabel"] = [
                    {"coding": [{"system": C.TRE_A07, "code": visibility, "display": C.VISIBILITY_CODES[visibility]}]}
                ]
            version = uow.create("DocumentReference", note)
            self.ctx.record(
                OP_PLATFORM_NOTE,
                Outcome.ACCEPTED,
                direction=Direction.TO_DUI,
                person=person.ins.value,
                essms=PLATFORM_AUTHOR["finess"],
                details={"note": {"id": version.id, "type": note_type, "urgent": urgent, "visibility": visibility}},
            )
            uow.commit()
        return version

    def platform_update(self, note_id: str, text: str) -> Version:
        """The note is changed on the platform (another version): a DUI holding the old ETag is now stale."""
        with self.store.exclusive() as uow:
            current = uow.read("DocumentReference", note_id).body()
            current["content"] = [
                {
                    "attachment": {
                        "contentType": "text/plain",
                        "language": "fr",
                        "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                    }
                }
            ]
            current["description"] = text[:120]
            version, _ = uow.update("DocumentReference", note_id, current)
            self.ctx.record(
                OP_PLATFORM_UPDATE,
                Outcome.ACCEPTED,
                direction=Direction.TO_DUI,
                person=self.person_of(current, uow),
                details={"note": {"id": note_id, "version": version.version_id}},
            )
            uow.commit()
        return version

    def note(self, note_id: str) -> Version | None:
        return self.store.current("DocumentReference", note_id)

    def notes_for(self, ins: str, note_type: str | None = None) -> list[Version]:
        """The current notes whose subject carries ``ins`` (of ``note_type`` when given)."""
        resolutions = _Resolutions(self.store)
        return [
            v
            for v in self.store.all("DocumentReference")
            if resolutions.person_of(v.resource) == ins
            and (note_type is None or C.note_type(v.resource or {}) == note_type)
        ]

    # ------------------------------------------------------------------------------------ HTTP app
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/openapi.json", self.fhir.guarded(self._openapi, "fhir.openapi"), methods=["GET"]),
                *self.fhir.routes("/fhir"),
            ]
        )

    async def _openapi(self, request: Request) -> JSONResponse:
        from harness.fhir.openapi import openapi_document

        return JSONResponse(
            openapi_document(
                self.fhir, title="e-Parcours cahier de liaison (simulateur FHIR)", server_url=self.base_url()
            )
        )


def note_text(note: dict[str, Any]) -> str:
    """The text of a note's first plain-text attachment."""
    for content in note.get("content") or []:
        attachment = (content or {}).get("attachment") or {}
        if attachment.get("data"):
            try:
                return base64.b64decode(attachment["data"]).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return ""
    return ""
