"""The e-Prescription FHIR service: prescriptions served to the DUI, the DUI's integration confirmations.

See :mod:`mock_services.eprescription` for the contract. Journal (service ``eprescription``):

=====================================  =====================================================================
operation                              exchange
=====================================  =====================================================================
``eprescription.retrieve``             the DUI retrieves a prescription by its EPU: FHIR search
                                       ``MedicationRequest?group-identifier=...`` or CDA ``Binary/<EPU>``;
                                       ``person`` = the prescription's INS, ``details.found`` / ``epu`` /
                                       ``status`` / ``format`` (never counted as an import)
``eprescription.import_confirmed``     the DUI confirms the integration (``POST Task``, ``status`` completed):
                                       **the import the usage indicator counts** (accepted ones)
``eprescription.import_refused``       the DUI tells it refused the prescription (``Task`` ``rejected``)
``eprescription.page``                 a printable page (``/ordonnances``...) refused: no or another
                                       certificate than an ESSMS one (403 ``login`` / ``forbidden``), or a
                                       prescription of another test session (403 ``FHIR-AUTRE-SESSION``);
                                       pages served are not journaled
``fhir.<interaction>.<Type>``          any other FHIR request (reads of Patient, Medication...)
=====================================  =====================================================================

``essms`` is the FINESS of the DUI's organisation certificate (else the ``Task.owner`` FINESS), ``person`` the
INS (15 characters) when known.
"""

from __future__ import annotations

import html
import json
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from harness.core.journal import Exchange, Outcome
from harness.core.settings import read_settings
from harness.core.state import Deferred, Operation
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
)
from harness.fhir.access import OTHER_SESSION
from harness.fhir.interaction import default_exchange
from harness.fhir.outcome import IssueCode, fail
from harness.fhir.search import ParamType, SearchParam, Total
from harness.fhir.server import request_info, simulated_unavailability
from harness.fhir.store import UnitOfWork, Version
from harness.fhir.wire import Format, render, response_format
from harness.fields.identity import ProductionInsPolicy
from harness.fields.testdata import Person
from harness.host.asgi_tls import client_certificate
from harness.host.simulator import SimulatorContext
from harness.validators import Finding, production_ins_findings
from harness.validators.eprescription import (
    EPU_SYSTEM,
    IMPLEMENTATION_GUIDE,
    PROFILE_MEDICATION,
    PROFILE_MEDICATION_REQUEST,
    check_confirmation,
    is_epu,
    read_confirmation,
)
from mock_services.eprescription.prescriptions import (
    Prescription,
    cda_document,
    fhir_resources,
    generate,
    new_epu,
    prescription_from_json,
    prescription_json,
    qr_png,
    synthetic_person,
)

SERVICE = "eprescription"
FAULT_UNAVAILABLE = "eprescription.indisponible"
#: Declared faults (``<service>.<fault>``, issue 13 item 2), injected through the host's ``/_harness/faults``
FAULTS = {
    FAULT_UNAVAILABLE: "la prochaine requête FHIR (params.count requêtes) répond params.status (503) + OperationOutcome transient"
}
OP_RETRIEVE = "eprescription.retrieve"
OP_CONFIRMED = "eprescription.import_confirmed"
OP_REFUSED = "eprescription.import_refused"
OP_PAGE = "eprescription.page"  # a printable page (manual recette) refused: journaled, never counted
OP_ADMIN_ISSUE = "admin.ordonnance"  # an operator issues a prescription for manual recette (never counted)
CDA_MEDIA_TYPE = "application/xml"
GROUP_IDENTIFIER = "group-identifier"
_READ = frozenset({Interaction.READ, Interaction.VREAD})


@dataclass(frozen=True)
class EprescriptionSettings:
    """``[settings.eprescription]`` of the harness configuration."""

    seed: int = 20250101
    max_body_bytes: int = 1024 * 1024
    max_bundle_entries: int = 100
    require_retrieval: bool = True  # a confirmation must follow a retrieval of the same prescription
    production_ins: ProductionInsPolicy = ProductionInsPolicy.WARN  # harness-wide unless the table overrides it
    # the ``_total`` of a search that sends none: ``none`` (no Bundle.total unless asked, issue 18), ``estimate``
    # or ``accurate`` (every search counted, as before 3 Dec 2026); harness.fhir.search.Total
    search_total: Total = Total.NONE

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> EprescriptionSettings:
        """Typed read of the table (:func:`harness.core.settings.read_settings`), bounds floored."""
        settings = read_settings(cls, raw)
        return replace(
            settings,
            max_body_bytes=max(4096, settings.max_body_bytes),
            max_bundle_entries=max(1, settings.max_bundle_entries),
        )


RESOURCES = (
    ResourceType(
        "MedicationRequest",
        _READ | {Interaction.SEARCH},
        (
            SearchParam(
                GROUP_IDENTIFIER,
                ParamType.TOKEN,
                ("groupIdentifier",),
                documentation="identifiant de l'ordonnance (EPU, urn:oid:1.2.250.1.215.500.1.1) : toutes ses lignes",
                definition="https://socle-harness.test/fhir/SearchParameter/MedicationRequest-group-identifier",
            ),
            SearchParam(
                "status",
                ParamType.TOKEN,
                ("status",),
                definition="http://hl7.org/fhir/SearchParameter/medications-status",
            ),
            SearchParam(
                "subject",
                ParamType.REFERENCE,
                ("subject",),
                ("Patient",),
                definition="http://hl7.org/fhir/SearchParameter/MedicationRequest-subject",
            ),
            SearchParam(
                "patient",
                ParamType.REFERENCE,
                ("subject",),
                ("Patient",),
                definition="http://hl7.org/fhir/SearchParameter/clinical-patient",
            ),
            SearchParam(
                "medication",
                ParamType.REFERENCE,
                ("medicationReference",),
                ("Medication",),
                definition="http://hl7.org/fhir/SearchParameter/medications-medication",
            ),
            SearchParam(
                "requester",
                ParamType.REFERENCE,
                ("requester",),
                ("Practitioner",),
                definition="http://hl7.org/fhir/SearchParameter/MedicationRequest-requester",
            ),
            SearchParam(
                "authoredon",
                ParamType.DATE,
                ("authoredOn",),
                definition="http://hl7.org/fhir/SearchParameter/MedicationRequest-authoredon",
            ),
        ),
        profile=PROFILE_MEDICATION_REQUEST,
        documentation="Lignes de prescription (ans.fhir.fr.eprescription)",
    ),
    ResourceType("Medication", _READ, profile=PROFILE_MEDICATION),
    ResourceType(
        "Patient",
        _READ,
        (SearchParam("identifier", ParamType.TOKEN, ("identifier",)),),
        profile="https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins",
    ),
    ResourceType("Practitioner", _READ),
    ResourceType(
        "Task",
        _READ | {Interaction.CREATE, Interaction.SEARCH},
        (
            SearchParam("status", ParamType.TOKEN, ("status",)),
            SearchParam("focus", ParamType.REFERENCE, ("focus",)),
            SearchParam(
                "focus-identifier",
                ParamType.TOKEN,
                ("focus.identifier",),
                documentation="EPU de l'ordonnance confirmée",
            ),
        ),
        documentation="Confirmation d'intégration d'une ordonnance par le DUI (contrat du harness)",
        conditional_create=False,
    ),
    ResourceType(
        "Binary",
        frozenset({Interaction.READ}),
        documentation="Binary/<EPU> : le document CDA eP-MED-DM de l'ordonnance",
    ),
)


class EprescriptionService(FhirHooks):
    """The simulator's state for one run: prescriptions, FHIR store, retrievals and confirmations.

    Both are replicated states (:mod:`harness.core.state`): the FHIR store on stream ``eprescription.fhir``, the
    prescriptions, retrievals and confirmations on ``eprescription.prescriptions`` (operations ``issue`` — the
    prescription drawn before, as JSON —, ``cancel``, ``retrieved``, ``confirmed``); reads catch up first."""

    service = SERVICE

    def __init__(self, ctx: SimulatorContext, settings: EprescriptionSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self._lock = threading.Lock()  # the generator of prescriptions (drawn here, before the operation)
        self._rng = random.Random(settings.seed)
        self.prescriptions: dict[str, Prescription] = {}
        self.retrieved: set[str] = set()
        self.confirmed: dict[str, str] = {}  # EPU -> Task id
        # INS -> the establishment of the person's first prescription: a Patient read or search finds it without
        # going through every prescription of the run (issue 18); kept by apply, restore and reset
        self._essms_by_ins: dict[str, str] = {}
        self._replica = ctx.state.replica(
            f"{SERVICE}.prescriptions", self.apply, self._reset, self.capture, self.restore
        )
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
            software="socle-harness e-Prescription",
            sessions=ctx.session_book,
            title="Simulateur e-Prescription (ordonnance numérique)",
            implementation_guides=(IMPLEMENTATION_GUIDE,),
        )

    def base_url(self) -> str:
        return f"{self.ctx.http_base}/fhir"

    # ------------------------------------------------------------------------------------ prescriptions
    def issue(
        self,
        person: Person,
        *,
        lines: int = 2,
        status: str = "active",
        medicines: tuple[str, ...] = (),
        authored: datetime | None = None,
    ) -> Prescription:
        """A new prescription for ``person`` (its FHIR resources stored at once), as the prescriber issues it."""
        with self._lock:
            moment = authored or self.ctx.run.now() or datetime.now(UTC)
            drawn = generate(person, rng=self._rng, authored=moment, lines=lines, status=status, medicines=medicines)
            while self.prescription(drawn.epu) is not None:
                drawn.epu = new_epu(self._rng)
            prescription: Prescription = self._replica.do({"op": "issue", "prescription": prescription_json(drawn)})
        self._store_resources(prescription)
        return prescription

    def _store_resources(self, prescription: Prescription) -> None:
        with self.store.exclusive() as uow:
            for resource in fhir_resources(prescription):
                existing = uow.current(resource["resourceType"], resource["id"])
                if (
                    existing is not None
                    and existing.resource is not None
                    and resource["resourceType"] in ("Patient", "Practitioner")
                ):
                    continue
                uow.update(resource["resourceType"], resource["id"], resource)
            uow.commit()

    def cancel(self, epu: str) -> Prescription:
        """The prescriber cancels the prescription: every line becomes ``cancelled``."""
        prescription: Prescription = self._replica.do({"op": "cancel", "epu": epu})
        self._store_resources(prescription)
        return prescription

    def other_person(self, essms: str) -> Person:
        with self._lock:
            return synthetic_person(self._rng, essms)

    def unknown_epu(self) -> str:
        with self._lock:
            while True:
                epu = new_epu(self._rng)
                if self.prescription(epu) is None:
                    return epu

    def prescription(self, epu: str) -> Prescription | None:
        with self._replica.locked():
            return self.prescriptions.get(epu)

    def apply(self, op: Operation) -> Any:
        """Apply one operation of ``eprescription.prescriptions`` (deterministic; refuses before any change)."""
        kind = op["op"]
        if kind == "issue":
            prescription = prescription_from_json(op["prescription"])
            if prescription.epu in self.prescriptions:
                raise ValueError(f"ordonnance {prescription.epu} déjà émise / prescription already issued")
            self.prescriptions[prescription.epu] = prescription
            self._essms_by_ins.setdefault(prescription.person.ins.value, prescription.person.essms)
            return prescription
        if kind == "cancel":
            prescription = self.prescriptions[op["epu"]]  # KeyError before any change: unknown EPU
            prescription.status = "cancelled"
            return prescription
        if kind == "retrieved":
            self.retrieved.update(e for e in op["epus"] if e in self.prescriptions)
            return None
        if kind == "confirmed":
            self.confirmed.setdefault(op["epu"], op["task"])  # the first integration stays the one named
            return None
        raise ValueError(f"opération e-Prescription inconnue / unknown operation {kind!r}")

    def _reset(self) -> None:
        self.prescriptions, self.retrieved, self.confirmed = {}, set(), {}
        self._essms_by_ins = {}

    def snapshot(self) -> dict[str, Any]:
        """The prescriptions, retrievals and confirmations as JSON (harness.core.state snapshot)."""
        return self.capture().build()

    def capture(self) -> Deferred:
        """:meth:`snapshot` in two steps: under the replica's lock (like :meth:`apply` and :meth:`restore`), a copy
        of the containers and, of each prescription, the reference, its ``status`` (a cancellation changes it in
        place) and a copy of its ``ids`` (filled in place when its FHIR resources are made); its other fields are
        never reassigned and hold frozen values; the JSON built by :meth:`Deferred.build`, which
        :class:`~harness.core.state.Replica` runs outside its locks (issue 18: the lock was held for the JSON of
        every prescription)."""
        prescriptions = [(p, p.status, dict(p.ids)) for p in self.prescriptions.values()]
        retrieved, confirmed = list(self.retrieved), dict(self.confirmed)

        def build() -> dict[str, Any]:
            return {
                "prescriptions": [
                    {**prescription_json(p), "status": status, "ids": ids} for p, status, ids in prescriptions
                ],
                "retrieved": sorted(retrieved),
                "confirmed": confirmed,
            }

        return Deferred(build)

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the prescriptions, retrievals and confirmations by a :meth:`snapshot`."""
        prescriptions = [prescription_from_json(p) for p in state["prescriptions"]]
        self.prescriptions = {p.epu: p for p in prescriptions}
        self._essms_by_ins = {}
        for p in self.prescriptions.values():
            self._essms_by_ins.setdefault(p.person.ins.value, p.person.essms)
        self.retrieved = set(state["retrieved"])
        self.confirmed = dict(state["confirmed"])

    def _retrieved(self, epus: set[str]) -> None:
        """Note the prescriptions a DUI retrieved (one operation, only for those not noted yet)."""
        with self._replica.locked():
            new = sorted(e for e in epus if e in self.prescriptions and e not in self.retrieved)
        if new:
            self._replica.do({"op": "retrieved", "epus": new})

    # ------------------------------------------------------------------------------------ access
    def unavailable(self, *, request: RequestInfo) -> FhirError | None:
        return simulated_unavailability(self.ctx, FAULT_UNAVAILABLE, request.caller_finess)

    def authenticate(self, certificate: x509.Certificate | None, *, request: RequestInfo) -> str | None:
        return self.access.authenticate(certificate)

    def _essms_of_ins(self, ins: str | None) -> str | None:
        with self._replica.locked():
            return self._essms_by_ins.get(ins) if isinstance(ins, str) else None  # an INS value is a string

    def _may_see(self, caller: str | None, essms: str | None) -> bool:
        return essms is not None and self.access.may_act_for(caller, essms)

    def _other_session(self, caller: str | None, prescription: Prescription | None) -> str | None:
        """Why the establishment ``caller`` may not read ``prescription``: its person is a patient of another open
        test session than the caller's (issue 19 item 4, :mod:`harness.core.sessions`); ``None`` when it may."""
        if prescription is None:
            return None
        return self.ctx.cross_session(("essms", caller), ("patient", prescription.person.ins.value))

    def _page_caller(self, request: Request) -> str:
        """The establishment a printable page is opened by: the FINESS of the organisation certificate presented,
        which :meth:`FhirServer.guarded` required before (403 OperationOutcome otherwise, as every endpoint)."""
        return self.access.authenticate(client_certificate(request.scope))

    def visible(self, version: Version, *, request: RequestInfo) -> bool:
        """A prescription (its lines, its patient) is visible to the establishment that accompanies its person (or
        one of the same organisme gestionnaire when the grappe declares it); a confirmation (Task) to the
        establishment that sent it; medicines and prescribers to every authenticated establishment."""
        resource = version.resource or {}
        caller = request.caller_finess
        if version.resource_type == "MedicationRequest":
            prescription = self.prescription(str((resource.get("groupIdentifier") or {}).get("value", "")))
            return prescription is not None and self._may_see(caller, prescription.person.essms)
        if version.resource_type == "Patient":
            ins = next((i.get("value") for i in resource.get("identifier") or [] if isinstance(i, dict)), None)
            return self._may_see(caller, self._essms_of_ins(ins))
        if version.resource_type == "Task":
            return self._may_see(caller, read_confirmation(resource).finess)
        return True

    # ------------------------------------------------------------------------------------ FHIR hooks
    def validate(
        self, resource_type: str, resource: dict[str, Any], *, uow: UnitOfWork, interaction: Interaction
    ) -> list[Finding]:
        if resource_type == "Task":
            confirmation = read_confirmation(resource)
            production = production_ins_findings(
                (confirmation.ins, confirmation.ins_oid), self.production_ins, "Task.for"
            )
            return check_confirmation(resource) + production
        return []

    def before_write(
        self, item: FhirInteraction, resource: dict[str, Any], *, uow: UnitOfWork, request: RequestInfo
    ) -> dict[str, Any]:
        if item.resource_type != "Task":
            return resource
        confirmation = read_confirmation(resource)
        self.access.require(request.caller_finess, confirmation.finess, expression="Task.owner", what="confirmation :")
        prescription = self.prescription(confirmation.epu or "")
        refusal = self._other_session(request.caller_finess, prescription)
        if refusal is not None:  # another test session's prescription: its state is not the caller's to change
            raise fail(403, IssueCode.FORBIDDEN, refusal, expression="Task.focus", error_code=OTHER_SESSION)
        if prescription is None or not self._may_see(request.caller_finess, prescription.person.essms):
            raise fail(
                422,
                IssueCode.BUSINESS_RULE,
                f"ordonnance {confirmation.epu} inconnue du service e-Prescription",
                expression="Task.focus",
                error_code="EP-ORDONNANCE-INCONNUE",
            )
        if confirmation.integrated:
            if prescription.cancelled:
                raise fail(
                    422,
                    IssueCode.BUSINESS_RULE,
                    f"ordonnance {prescription.epu} annulée par le prescripteur : elle ne peut pas être intégrée",
                    expression="Task.focus",
                    error_code="EP-ORDONNANCE-ANNULEE",
                )
            if confirmation.ins != prescription.person.ins.value:
                raise fail(
                    422,
                    IssueCode.BUSINESS_RULE,
                    f"l'ordonnance {prescription.epu} n'est pas celle de la personne "
                    f"{confirmation.ins} : intégration refusée",
                    expression="Task.for",
                    error_code="EP-PATIENT-DIFFERENT",
                )
            with self._replica.locked():
                retrieved = prescription.epu in self.retrieved
                already = self.confirmed.get(prescription.epu)
            if self.settings.require_retrieval and not retrieved:
                raise fail(
                    422,
                    IssueCode.BUSINESS_RULE,
                    f"ordonnance {prescription.epu} confirmée sans avoir été récupérée",
                    expression="Task.focus",
                    error_code="EP-NON-RECUPEREE",
                )
            if already is not None:
                raise fail(
                    422,
                    IssueCode.DUPLICATE,
                    f"ordonnance {prescription.epu} déjà intégrée (Task/{already})",
                    expression="Task.focus",
                    error_code="EP-DEJA-INTEGREE",
                )
        return resource

    def after_interaction(self, item: FhirInteraction, *, uow: UnitOfWork, request: RequestInfo) -> None:
        if item.resource_type == "MedicationRequest" and item.interaction is Interaction.SEARCH:
            self._retrieved({str((m.resource or {}).get("groupIdentifier", {}).get("value")) for m in item.matches})
        if (
            item.resource_type == "Task"
            and item.interaction is Interaction.CREATE
            and item.result is not None
            and not item.noop
        ):
            confirmation = read_confirmation(item.result.resource or {})
            if confirmation.integrated and confirmation.epu:
                self._replica.do({"op": "confirmed", "epu": confirmation.epu, "task": item.result.id})

    def _epu_of_search(self, item: FhirInteraction) -> str | None:
        for value in (item.query or {}).get(GROUP_IDENTIFIER, []):
            system, sep, code = value.partition("|")
            return code if sep else system
        return None

    def exchanges(self, item: FhirInteraction, *, request: RequestInfo, body: bytes, uow: UnitOfWork) -> list[Exchange]:
        if (
            item.resource_type == "MedicationRequest"
            and item.interaction is Interaction.SEARCH
            and item.query
            and GROUP_IDENTIFIER in item.query
        ):
            epu = self._epu_of_search(item)
            prescription = self.prescription(epu or "")
            details = {
                "epu": epu,
                "format": "fhir",
                "found": bool(item.matches) and prescription is not None,
                "lines": len(item.matches),
                "status": prescription.status if prescription else None,
            }
            return [
                default_exchange(
                    item,
                    request=request,
                    body=body,
                    operation=OP_RETRIEVE,
                    details=details,
                    person=prescription.person.ins.value if prescription else None,
                )
            ]
        if item.resource_type == "Task" and item.interaction is Interaction.CREATE:
            confirmation = None
            resource = item.request if isinstance(item.request, dict) else None
            if resource is not None and resource.get("resourceType") == "Task":
                confirmation = read_confirmation(resource)
            operation = OP_REFUSED if confirmation is not None and confirmation.status == "rejected" else OP_CONFIRMED
            details: dict[str, Any] = {}
            if confirmation is not None:
                details = {"epu": confirmation.epu, "task_status": confirmation.status, "reason": confirmation.reason}
            return [
                default_exchange(
                    item,
                    request=request,
                    body=body,
                    operation=operation,
                    details=details,
                    person=confirmation.ins if confirmation is not None else None,
                    essms=request.caller_finess,
                )
            ]
        return [default_exchange(item, request=request, body=body)]

    # ------------------------------------------------------------------------------------ HTTP app
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/fhir/Binary/{epu}", self._binary, methods=["GET"]),
                Route("/openapi.json", self.fhir.guarded(self._openapi, "fhir.openapi"), methods=["GET"]),
                Route("/ordonnances", self.fhir.guarded(self._list_page, OP_PAGE), methods=["GET"]),
                Route("/ordonnances/{epu}", self.fhir.guarded(self._page, OP_PAGE), methods=["GET"]),
                Route("/ordonnances/{epu}/qr.png", self.fhir.guarded(self._qr, OP_PAGE), methods=["GET"]),
                Route("/_admin/ordonnances", self._admin_issue, methods=["POST"]),
                *self.fhir.routes("/fhir"),
            ]
        )

    async def _binary(self, request: Request) -> Response:
        """``GET [base]/Binary/<EPU>``: the eP-MED-DM document (native CDA, or a FHIR Binary when FHIR is asked)."""
        epu = request.path_params["epu"]
        info = request_info(request)
        item = FhirInteraction(Interaction.READ, "GET", "Binary", epu)
        prescription = None
        try:
            info = replace(info, caller_finess=self.access.authenticate(client_certificate(request.scope)))
            prescription = self.prescription(epu)
            if prescription is not None and not self._may_see(info.caller_finess, prescription.person.essms):
                prescription = None  # another establishment's person: as unknown
            refusal = self._other_session(info.caller_finess, prescription)
            if refusal is not None:
                raise fail(403, IssueCode.FORBIDDEN, refusal, error_code=OTHER_SESSION)
        except FhirError as exc:
            item.error = exc
        wants_fhir = request.query_params.get("_format") is not None or any(
            t in request.headers.get("accept", "")
            for t in ("application/fhir+json", "application/fhir+xml", "application/json")
        )
        body: bytes | None = None
        if item.error is not None:
            pass
        elif prescription is None:
            item.error = fail(
                404, IssueCode.NOT_FOUND, f"ordonnance {epu} inconnue", error_code="EP-ORDONNANCE-INCONNUE"
            )
        elif prescription.cancelled:
            item.error = fail(
                410,
                IssueCode.DELETED,
                f"ordonnance {epu} annulée par le prescripteur",
                error_code="EP-ORDONNANCE-ANNULEE",
            )
        else:
            body = cda_document(prescription)
        item.status = item.error.status if item.error else 200
        details = {
            "epu": epu,
            "format": "cda",
            "found": prescription is not None,
            "lines": len(prescription.lines) if prescription else 0,
            "status": prescription.status if prescription else None,
        }
        exchange = default_exchange(
            item,
            request=info,
            body=b"",
            operation=OP_RETRIEVE,
            details=details,
            person=prescription.person.ins.value if prescription else None,
        )
        try:
            fmt = response_format(request) if wants_fhir else Format.JSON
        except FhirError:
            fmt = Format.JSON
        self.ctx.record_many([exchange])
        if item.error is None and prescription is not None:
            self._retrieved({epu})
        if item.error is not None:
            payload = item.error.outcome()
            return Response(
                render(payload, fmt),
                status_code=item.status,
                media_type="application/fhir+xml" if fmt is Format.XML else "application/fhir+json",
            )
        assert body is not None  # noqa: S101
        if wants_fhir:
            import base64

            binary = {
                "resourceType": "Binary",
                "id": epu,
                "contentType": CDA_MEDIA_TYPE,
                "data": base64.b64encode(body).decode("ascii"),
            }
            return Response(
                render(binary, fmt), media_type="application/fhir+xml" if fmt is Format.XML else "application/fhir+json"
            )
        return Response(body, media_type=CDA_MEDIA_TYPE)

    async def _openapi(self, request: Request) -> JSONResponse:
        from harness.fhir.openapi import openapi_document

        return JSONResponse(
            openapi_document(self.fhir, title="e-Prescription (simulateur FHIR)", server_url=self.base_url())
        )

    def _find(self, request: Request) -> Prescription | Response:
        """The prescription of the page's EPU for the establishment whose certificate was presented (checked by
        :meth:`FhirServer.guarded` before): 404 when unknown or of another establishment's person (as
        ``Binary``), 403 OperationOutcome ``FHIR-AUTRE-SESSION`` (journaled ``eprescription.page``) when its
        person is in another open test session than the caller's."""
        epu = request.path_params["epu"]
        caller = self._page_caller(request)
        prescription = self.prescription(epu)
        if prescription is not None and not self._may_see(caller, prescription.person.essms):
            prescription = None  # another establishment's person: as unknown
        if prescription is None:
            return Response("ordonnance inconnue", status_code=404, media_type="text/plain; charset=utf-8")
        refusal = self._other_session(caller, prescription)
        if refusal is None:
            return prescription
        return self.fhir.refusal(
            replace(request_info(request), caller_finess=caller),
            fail(403, IssueCode.FORBIDDEN, refusal, error_code=OTHER_SESSION),
            OP_PAGE,
            interaction=Interaction.READ,
            person=prescription.person.ins.value,
            details={"epu": epu},
        )

    async def _qr(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, Response):
            return found
        return Response(qr_png(found.epu), media_type="image/png")

    async def _page(self, request: Request) -> Response:
        """A printable page for manual recette: the QR code to scan at the DUI, the lines, the status."""
        e = html.escape
        p = self._find(request)
        if isinstance(p, Response):
            return p
        rows = "".join(
            f"<tr><td>{e(line.medicine.display)}</td><td>{e(line.posology.text)}</td></tr>" for line in p.lines
        )
        state = "ANNULÉE" if p.cancelled else "valide"
        page = (
            "<!doctype html><html lang='fr'><meta charset='utf-8'><title>Ordonnance numérique</title><body>"
            f"<h1>Ordonnance numérique {e(p.epu)}</h1><p>Statut : <strong>{state}</strong></p>"
            f"<p>Patient : {e(p.person.given)} {e(p.person.family)} — INS {e(p.person.ins.value)} — né(e) le {p.person.birth_date:%d/%m/%Y}</p>"
            f"<p>Prescripteur : Dr {e(p.prescriber.given)} {e(p.prescriber.family)} (RPPS {e(p.prescriber.rpps)})</p>"
            f"<img src='{e(p.epu)}/qr.png' alt='QR code {e(p.epu)}' width='240' height='240'>"
            f"<table border='1'><tr><th>Médicament</th><th>Posologie</th></tr>{rows}</table></body></html>"
        )
        return HTMLResponse(page)

    async def _list_page(self, request: Request) -> Response:
        """The prescriptions of the certificate's establishment's persons, less those of another test session."""
        with self._replica.locked():
            items = list(self.prescriptions.values())
        caller = self._page_caller(request)
        items = [p for p in items if self._may_see(caller, p.person.essms) and self._other_session(caller, p) is None]
        e = html.escape
        rows = "".join(
            f"<li><a href='ordonnances/{e(p.epu)}'>{e(p.epu)}</a> — {e(p.person.given)} {e(p.person.family)}"
            f"{' (annulée)' if p.cancelled else ''}</li>"
            for p in items
        )
        return HTMLResponse(
            f"<!doctype html><html lang='fr'><meta charset='utf-8'><title>Ordonnances</title><body>"
            f"<h1>Ordonnances numériques du simulateur</h1><ul>{rows}</ul></body></html>"
        )

    def _admin_record(
        self,
        outcome: Outcome,
        *,
        error: str | None = None,
        message: str | None = None,
        person: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.ctx.record(
            OP_ADMIN_ISSUE,
            outcome,
            actor="admin",
            person=person,
            error_code=error,
            error_message=message,
            details=details or {},
        )

    async def _admin_issue(self, request: Request) -> JSONResponse:
        """Manual recette: ``{"personne": "P001" | INS | nom, "lignes": 2, "statut": "active" | "cancelled"}``, with
        the host's admin token (401 without it); journaled as ``admin.ordonnance``."""
        refused = self.ctx.admin_refusal(request.headers)
        if refused is not None:
            error, challenge = refused
            message = "jeton d'administration absent ou invalide"
            self._admin_record(Outcome.REJECTED, error=error, message=message)
            return JSONResponse(
                {"erreur": message, "error": error}, status_code=401, headers={"WWW-Authenticate": challenge}
            )
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > 65536:  # known before the body is read
            self._admin_record(Outcome.REJECTED, error="413", message="corps absent de taille ou > 65536 octets")
            return JSONResponse({"erreur": "corps trop volumineux (65536 octets au plus)"}, status_code=413)
        try:
            raw = json.loads((await request.body())[:65536] or b"{}")
            person = self.ctx.testdata.person(str(raw.get("personne", "")))
            lines = max(1, min(int(raw.get("lignes", 2)), 8))
            status = raw.get("statut", "active")
            if status not in ("active", "cancelled"):
                raise ValueError(f"statut inconnu {status!r}")
        except (ValueError, LookupError, TypeError, AttributeError) as exc:
            self._admin_record(Outcome.REJECTED, error="400", message=str(exc)[:300])
            return JSONResponse({"erreur": str(exc)}, status_code=400)
        prescription = self.issue(person, lines=lines, status=status)
        self._admin_record(
            Outcome.ACCEPTED, person=person.ins.value, details={"epu": prescription.epu, "statut": status}
        )
        base = self.ctx.http_base
        return JSONResponse(
            {
                "epu": prescription.epu,
                "page": f"{base}/ordonnances/{prescription.epu}",
                "qr": f"{base}/ordonnances/{prescription.epu}/qr.png",
            },
            status_code=201,
        )


__all__ = [
    "EPU_SYSTEM",
    "EprescriptionService",
    "EprescriptionSettings",
    "OP_CONFIRMED",
    "OP_REFUSED",
    "OP_RETRIEVE",
    "SERVICE",
    "is_epu",
]
