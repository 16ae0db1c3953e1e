"""The DMP transactions: ITI-41 (TD2 / TD2.1), ITI-18 (TD3.1), ITI-43 (TD3.2), ITI-57 (TD3.3), TD0.2.

Specifications: IHE ITI TF-2b §3.41 (Provide and Register Document Set-b), §3.18 (Registry Stored Query:
FindDocuments ``urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d``, GetDocuments
``urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4``), §3.43 (Retrieve Document Set), ITI TF-2b §3.57 (Update
Document Set, XDS Metadata Update supplement: new DocumentEntry version with ``PreviousVersion``, or
``UpdateAvailabilityStatus`` association), ITI TF-3 §4.2.4 (RegistryError codes); ebRS 3.0 (RegistryResponse,
AdhocQueryResponse); HL7 v3 Patient Topic ``PRPA_IN201307UV02`` / ``PRPA_IN201308UV02`` for the DMP "TD0.2" test
of existence and authorisation (query by ``patientIdentifier``, answer ``queryAck/queryResponseCode`` OK/NF and
``attentionLine`` AUTORISATION). The DMP-specific error codes ``DMPClosed`` and ``DMPAccessDenied`` and the
archived / deleted statuses are the harness's reading of the DMP integration guide (second-hand: the guide itself
was not available); everything else follows IHE.

Each handler is synchronous (it runs in a worker thread): it validates, **records the exchange**, updates the
registry (one operation of the replicated ``dmp.registry``, :mod:`mock_services.dmp.store`), then returns the
reply; an accepted ITI-41 is registered before it is journaled (a registration refused because another process got
there first is journaled rejected, never accepted then failed).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lxml import etree

from harness.core.journal import Exchange, Outcome
from harness.fields.identity import INS, PRODUCTION_INS_CODE, InsError, parse_ins, parse_xds_patient_id, production_ins
from harness.fields.soap12 import SoapFault, SoapRequest
from harness.validators import Finding, Severity
from harness.validators import ebrim as E
from harness.validators.iti41 import MTOM_REQUIRED, check_contents, is_provide_and_register, read_provide_and_register
from harness.validators.vihf import VihfReport
from harness.validators.xds_metadata import (
    SIGNATURE_TYPE,
    XdsSubmission,
)
from mock_services.dmp.faults import FAULT_AUTHORISATION_REFUSED, FAULT_CLOSED
from mock_services.dmp.soap import mtom_bytes, soap_bytes
from mock_services.dmp.store import (
    STATUS_ARCHIVED,
    STATUS_DELETED,
    Authorisation,
    DmpState,
    RegistryConflictError,
    StoredDocument,
)

if TYPE_CHECKING:  # pragma: no cover
    from mock_services.dmp import DMPSimulator

ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
TD02 = "urn:hl7-org:v3:PRPA_IN201307UV02"
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
HL7 = "urn:hl7-org:v3"
DS = "http://www.w3.org/2000/09/xmldsig#"
OPERATIONS = {
    ITI41: "iti41.provide_and_register",
    ITI18: "iti18.registry_stored_query",
    ITI43: "iti43.retrieve_document_set",
    ITI57: "iti57.update_document_set",
    TD02: "td02.test_existence",
}
VISIBLE_STATUSES = {E.STATUS_APPROVED, E.STATUS_DEPRECATED, STATUS_ARCHIVED}


@dataclass
class Reply:
    """What the HTTP layer sends back."""

    body: bytes
    content_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Caller:
    """Who calls: the TLS client certificate and the VIHF assertion."""

    certificate_cn: str | None
    certificate_structure: str | None  # OU of the organisation certificate ("1" + FINESS-like)
    vihf: VihfReport = field(default_factory=VihfReport)

    @property
    def actor(self) -> str | None:
        return self.vihf.subject or self.certificate_cn

    @property
    def structure(self) -> str | None:
        """FINESS of the authenticated structure: the TLS certificate's OU (``1`` + FINESS), which the DMP checked
        equal to the VIHF signer's and to ``Identifiant_Structure``; without a client certificate, the VIHF's."""
        raw = self.certificate_structure or self.vihf.first("Identifiant_Structure")
        if raw and len(raw) == 10 and raw.startswith("1"):
            return raw[1:]
        return raw

    def identities(self, requested: INS | None) -> dict[str, str | None]:
        """Both identities of a patient-bound request, for the journal."""
        vihf = self.vihf.resource_ins
        return {
            "vihf_patient": vihf.to_xds() if vihf else None,
            "requested_patient": requested.to_xds() if requested else None,
            "structure": self.structure,
        }


def registry_error_code(finding: Finding) -> str:
    """The XDS ``errorCode`` of a finding: XDS codes as they are, CDA / XML / schematron ones as InvalidDocumentContent."""
    code = finding.code
    if code == PRODUCTION_INS_CODE:
        return "XDSUnknownPatientId"
    if code == MTOM_REQUIRED:
        return "XDSRepositoryError"
    if code.startswith("DMP-"):  # harness findings about metadata (author institution...)
        return "XDSRegistryMetadataError"
    if code.startswith(("XDS", "DMP", "Unresolved", "InvalidDocumentContent")):
        return code
    return "InvalidDocumentContent"


def registry_response(
    findings: list[Finding], tag: str = f"{{{E.RS}}}RegistryResponse", request_id: str | None = None
) -> etree._Element:
    errors = [f for f in findings if f.severity in (Severity.ERROR, Severity.WARNING)]
    failed = any(f.severity is Severity.ERROR for f in errors)
    response = etree.Element(tag, nsmap={"rs": E.RS, "rim": E.RIM})
    response.set("status", E.RESPONSE_FAILURE if failed else E.RESPONSE_SUCCESS)
    if request_id:
        response.set("requestId", request_id)
    if errors:
        error_list = etree.SubElement(response, f"{{{E.RS}}}RegistryErrorList")
        error_list.set("highestSeverity", E.SEVERITY_ERROR if failed else E.SEVERITY_WARNING)
        for finding in errors:
            code = registry_error_code(finding)
            context = finding.message if code == finding.code else f"[{finding.code}] {finding.message}"
            error = etree.SubElement(error_list, f"{{{E.RS}}}RegistryError")
            error.set("errorCode", code)
            error.set("codeContext", context)
            error.set("severity", E.SEVERITY_ERROR if finding.severity is Severity.ERROR else E.SEVERITY_WARNING)
            if finding.location:
                error.set("location", finding.location)
    return response


def _findings_json(findings: list[Finding]) -> list[dict[str, str]]:
    return [f.to_dict() for f in findings]


def _first_error(findings: list[Finding]) -> Finding | None:
    return next((f for f in findings if f.severity is Severity.ERROR), None)


class Transactions:
    """The transaction handlers of one :class:`~mock_services.dmp.DMPSimulator`."""

    def __init__(self, sim: DMPSimulator) -> None:
        self.sim = sim
        self.ctx = sim.ctx
        self.store = sim.store
        self.repository_id = sim.repository_unique_id

    # ------------------------------------------------------------------------------------------ helpers
    def record(
        self,
        operation: str,
        outcome: Outcome,
        caller: Caller,
        *,
        person: str | None = None,
        essms: str | None = None,
        findings: list[Finding] | None = None,
        payload: bytes | None = None,
        payload_type: str | None = None,
        error: Finding | None = None,
        details: dict[str, Any] | None = None,
    ) -> Exchange:
        """Journal one exchange of this DMP (built by :meth:`exchange`)."""
        return self.ctx.commit(
            self.exchange(
                operation,
                outcome,
                caller,
                person=person,
                essms=essms,
                findings=findings,
                payload=payload,
                payload_type=payload_type,
                error=error,
                details=details,
            )
        )

    def exchange(
        self,
        operation: str,
        outcome: Outcome,
        caller: Caller,
        *,
        person: str | None = None,
        essms: str | None = None,
        findings: list[Finding] | None = None,
        payload: bytes | None = None,
        payload_type: str | None = None,
        error: Finding | None = None,
        details: dict[str, Any] | None = None,
    ) -> Exchange:
        """One exchange, built but not journaled: the caller's identities, the XDS error code of the first error."""
        findings = findings or []
        error = error or (_first_error(findings) if outcome is Outcome.REJECTED else None)
        return self.ctx.exchange(
            operation,
            outcome,
            actor=caller.actor,
            essms=essms or caller.structure,
            person=person,
            error_code=registry_error_code(error) if error else None,
            error_message=(
                f"[{error.code}] {error.message}"
                if error and registry_error_code(error) != error.code
                else error.message
            )
            if error
            else None,
            payload=payload,
            payload_type=payload_type,
            details={"findings": _findings_json(findings), **(details or {})},
        )

    def _reply(self, action: str, soap: SoapRequest, body: etree._Element) -> Reply:
        return Reply(
            soap_bytes(action + "Response", soap.message_id, body),
            'application/soap+xml; charset=UTF-8; action="' + action + 'Response"',
        )

    def _person_findings(self, ins: INS | None, caller: Caller, *, feeding: bool) -> list[Finding]:
        """DMP state and authorisation checks (and the faults on demand that imitate them)."""
        if ins is None:
            return []
        person = self.store.person(ins)
        state, authorisation = person.state, person.authorisation
        # faults on demand target the next feed (of the exchange's test session, when aimed at one)
        who = {"actor": caller.actor, "essms": caller.structure, "person": ins.value}
        if feeding and self.ctx.take_fault(FAULT_CLOSED, **who) is not None:
            state = DmpState.CLOSED
        if feeding and self.ctx.take_fault(FAULT_AUTHORISATION_REFUSED, **who) is not None:
            authorisation = Authorisation.FORBIDDEN
        if state is DmpState.ABSENT:
            return [Finding("XDSUnknownPatientId", f"aucun DMP pour l'INS {ins.value}", location="patientId")]
        if state is DmpState.CLOSED:
            return [
                Finding(
                    "DMPClosed",
                    f"le DMP de l'INS {ins.value} est fermé: alimentation et consultation refusées",
                    location="patientId",
                )
            ]
        if authorisation is not Authorisation.VALID:
            return [
                Finding(
                    "DMPAccessDenied",
                    f"autorisation d'accès au DMP {authorisation.value} pour la structure {caller.structure}",
                    location="patientId",
                )
            ]
        return []

    def _production_ins(self, ins: INS | None, where: str) -> list[Finding]:
        """The harness-wide production-INS policy (``production_ins``: warn / refuse), as an XDS finding."""
        verdict = production_ins(ins, self.sim.production_ins) if ins is not None else None
        if verdict is None:
            return []
        return [Finding(verdict.code, verdict.message, Severity.ERROR if verdict.refuse else Severity.WARNING, where)]

    def _bound_to_vihf(self, requested: INS | None, caller: Caller, what: str) -> list[Finding]:
        """Reads and updates are bound to the patient of the VIHF (``resource-id``): another patient is refused
        with the DMP's access-denied error. The patient is the (value, OID) pair."""
        vihf = caller.vihf.resource_ins
        if requested is None or vihf is None or vihf == requested:
            return []
        return [
            Finding(
                "DMPAccessDenied",
                f"{what} du patient {requested.to_xds()} refusée : le VIHF porte sur le patient {vihf.to_xds()} "
                f"(resource-id), structure {caller.structure}",
                location="VIHF resource-id",
            )
        ]

    # ------------------------------------------------------------------------------------------ ITI-41
    def provide_and_register(self, soap: SoapRequest, caller: Caller, raw: bytes, payload_type: str) -> Reply:
        """The checks of the request itself are the library's (:mod:`harness.validators.iti41`, the same as
        ``socle-harness validate``); the DMP's state (open, authorisation, replaced and known documents) is ours."""
        operation = OPERATIONS[ITI41]
        payload = soap.payload
        if payload is None or not is_provide_and_register(payload):
            raise SoapFault(
                "Sender", "xdsb:ProvideAndRegisterDocumentSetRequest attendu dans env:Body", error_code="XDS-BODY"
            )
        policy = self.sim.iti41_policy
        submission, findings = read_provide_and_register(payload, caller.vihf, policy)
        patient = submission.patient
        findings.extend(
            self._other_session(patient, caller, "alimentation du DMP")
            or self._person_findings(patient, caller, feeding=True)
        )
        structure = caller.certificate_structure or caller.vihf.first("Identifiant_Structure")
        checked = check_contents(
            payload,
            submission,
            soap.attachments,
            mtom=soap.mtom,
            structure=structure,
            policy=policy,
            cache=self.sim.signatures,
        )
        findings.extend(checked.findings)
        contents = checked.contents
        replaced = self._check_replacements(submission, findings)
        errors = [f for f in findings if f.severity is Severity.ERROR]
        essms = caller.structure or submission.essms  # the authenticated structure, not the declared one
        person = patient.value if patient else None
        details = {
            "documents": [
                {
                    "uniqueId": e.unique_id,
                    "typeCode": e.type_code.code if e.type_code else None,
                    "id": e.id,
                    "mimeType": e.mime_type,
                }
                for e in submission.entries
            ],
            "validation": checked.checked,
            "replaced": replaced,
            "mtom": soap.mtom,
            "message_id": soap.message_id,
            "declared_structure": submission.essms,
            **caller.identities(patient),
        }
        if errors:
            self.record(
                operation,
                Outcome.REJECTED,
                caller,
                person=person,
                essms=essms,
                findings=findings,
                payload=raw,
                payload_type=payload_type,
                details=details,
            )
            return self._reply(ITI41, soap, registry_response(findings))
        accepted = self.ctx.stamp(  # its session is the registry operation's
            self.exchange(
                operation,
                Outcome.ACCEPTED,
                caller,
                person=person,
                essms=essms,
                findings=findings,
                payload=raw,
                payload_type=payload_type,
                details=details,
            )
        )
        # registered before it is journaled, so that the journal never shows accepted a submission the registry
        # refused: two submissions of one uniqueId racing (two serving processes, or two threads) pass the checks
        # above, one registers, the other is refused here and journaled rejected with the registry's error
        try:
            registered = self._register(submission, contents, essms, replaced, raw, accepted.session_id)
        except RegistryConflictError as exc:
            conflicts: list[Finding] = []
            self._check_replacements(submission, conflicts)  # the state now holds what got there first
            findings.extend(
                [f for f in conflicts if f.severity is Severity.ERROR]
                or [Finding(exc.code, f"enregistrement concurrent refusé : {exc}")]
            )
            self.record(
                operation,
                Outcome.REJECTED,
                caller,
                person=person,
                essms=essms,
                findings=findings,
                payload=raw,
                payload_type=payload_type,
                details=details,
            )
            return self._reply(ITI41, soap, registry_response(findings))
        try:
            self.ctx.commit(accepted)
        except BaseException:  # not journaled: the registry forgets it (a compensating operation)
            self.store.unregister(registered, restore=replaced.values())
            raise
        return self._reply(ITI41, soap, registry_response(findings))

    def _check_replacements(self, submission: XdsSubmission, findings: list[Finding]) -> dict[str, str]:
        replaced: dict[str, str] = {}
        entry_ids = {e.id for e in submission.entries}
        for assoc in submission.associations:
            if assoc.type != E.RPLC:
                continue
            if assoc.source not in entry_ids:
                findings.append(
                    Finding(
                        "XDSRegistryMetadataError",
                        f"RPLC: sourceObject {assoc.source!r} n'est pas un document du lot",
                        location=f"Association {assoc.id}",
                    )
                )
                continue
            target = self.store.get(assoc.target)
            if target is None or target.status != E.STATUS_APPROVED:
                findings.append(
                    Finding(
                        "UnresolvedReferenceException",
                        f"RPLC: le document remplacé {assoc.target!r} est inconnu ou n'est plus approuvé",
                        location=f"Association {assoc.id}",
                    )
                )
                continue
            patient = submission.patient
            if patient is not None and (target.patient, target.patient_oid) != (patient.value, patient.oid):
                findings.append(
                    Finding(
                        "XDSPatientIdDoesNotMatch",
                        "RPLC: le document remplacé appartient à un autre patient",
                        location=f"Association {assoc.id}",
                    )
                )
                continue
            replaced[assoc.source] = assoc.target
        for entry in submission.entries:
            if entry.unique_id and self.store.by_unique_id(entry.unique_id) is not None:
                findings.append(
                    Finding(
                        "XDSDocumentUniqueIdError",
                        f"uniqueId {entry.unique_id} déjà enregistré dans le DMP",
                        location=f"DocumentEntry {entry.id}",
                    )
                )
        return replaced

    def _register(
        self,
        submission: XdsSubmission,
        contents: dict[str, bytes],
        essms: str | None,
        replaced: dict[str, str],
        raw: bytes,
        session: str | None,
    ) -> list[str]:
        """One registry operation for the whole submission (its documents, the ones they deprecate); ``raw`` is
        the request about to be journaled, where a shared registry finds the documents' bytes. Returns the
        registered entryUUIDs."""
        patient = submission.patient
        assert patient is not None  # noqa: S101 - guaranteed: no error was found
        documents: list[StoredDocument] = []
        for entry in submission.entries:
            data = contents[entry.id]
            entry_uuid = (
                entry.id
                if entry.id.startswith("urn:uuid:") and self.store.get(entry.id) is None
                else f"urn:uuid:{uuid.uuid4()}"
            )
            digest = hashlib.sha1(data).hexdigest()  # noqa: S324 - XDS hash is SHA-1
            documents.append(
                StoredDocument(
                    entry_uuid=entry_uuid,
                    unique_id=entry.unique_id or entry_uuid,
                    patient=patient.value,
                    patient_oid=patient.oid,
                    patient_cx=entry.patient_cx or patient.to_xds(),
                    repository_unique_id=self.repository_id,
                    mime_type=entry.mime_type,
                    data=data,
                    hash=digest,
                    size=len(data),
                    type_code=entry.type_code.code if entry.type_code else "",
                    metadata=etree.tostring(entry.element),
                    essms=essms,
                    confidentiality=tuple((c.code, c.scheme) for c in entry.confidentiality),
                    logical_id=entry_uuid,
                    replaced=replaced.get(entry.id),
                    is_signature=entry.type_code is not None and entry.type_code.code == SIGNATURE_TYPE,
                    source_id=entry.id,
                )
            )
        deprecated = [replaced[e.id] for e in submission.entries if e.id in replaced]
        self.store.register(documents, deprecate=deprecated, evidence=raw, session=session)
        return [d.entry_uuid for d in documents]

    def _leaf(self, document: StoredDocument) -> etree._Element:
        """The registered DocumentEntry (LeafClass): the submitted ExtrinsicObject with the registry's identifiers,
        status, version and the repository slots (built when queried, not on every ITI-41)."""
        element = etree.fromstring(document.metadata)
        element.set("id", document.entry_uuid)
        element.set("lid", document.logical_id)
        element.set("status", document.status)
        for name, value in (
            ("size", str(document.size)),
            ("hash", document.hash),
            ("repositoryUniqueId", document.repository_unique_id),
        ):
            if not E.slot(element, name):
                slot_el = etree.Element(E.rim("Slot"), name=name)
                etree.SubElement(etree.SubElement(slot_el, E.rim("ValueList")), E.rim("Value")).text = value
                element.insert(0, slot_el)
        for child in element.iter(E.rim("Classification"), E.rim("ExternalIdentifier")):
            for attr in ("classifiedObject", "registryObject"):
                if child.get(attr) == document.source_id:
                    child.set(attr, document.entry_uuid)
        version_info = element.find("rim:VersionInfo", E.NS)
        if version_info is None:
            version_info = etree.SubElement(element, E.rim("VersionInfo"))
        version_info.set("versionName", str(document.version))
        return element

    def _other_session(self, requested: INS | None, caller: Caller, what: str) -> list[Finding]:
        """A structure of one open test session reading the DMP of a patient of another is refused with the DMP's
        access-denied error (issue 19 item 4, :mod:`harness.core.sessions`)."""
        if requested is None:
            return []
        refusal = self.ctx.cross_session(("essms", caller.structure), ("patient", requested.value))
        if refusal is None:
            return []
        return [Finding("DMPAccessDenied", f"{what} refusée : {refusal}", location="patientId")]

    def _other_session_document(self, target: StoredDocument, caller: Caller) -> list[Finding]:
        """An ITI-57 update of a document whose patient is held by another open session than the caller's
        structure: the DMP's access-denied error, before any check that would tell its status or version."""
        return self._other_session(
            parse_xds_patient_id(target.patient_cx), caller, f"mise à jour du document {target.unique_id}"
        )

    # ------------------------------------------------------------------------------------------ ITI-18
    def stored_query(self, soap: SoapRequest, caller: Caller, raw: bytes, payload_type: str) -> Reply:
        operation = OPERATIONS[ITI18]
        payload = soap.payload
        if payload is None or payload.tag != f"{{{E.QUERY}}}AdhocQueryRequest":
            raise SoapFault("Sender", "query:AdhocQueryRequest attendu dans env:Body", error_code="XDS-BODY")
        findings: list[Finding] = list(caller.vihf.findings)
        option = payload.find("query:ResponseOption", E.NS)
        return_type = option.get("returnType", "ObjectRef") if option is not None else "ObjectRef"
        query = payload.find("rim:AdhocQuery", E.NS)
        query_id = query.get("id") if query is not None else None
        params = {
            s.get("name", ""): [v.text or "" for v in s.findall("rim:ValueList/rim:Value", E.NS)]
            for s in (query.findall("rim:Slot", E.NS) if query is not None else [])
        }
        patient: INS | None = None
        results: list[StoredDocument] = []
        if query_id == FIND_DOCUMENTS:
            cx = (
                _unquote(params.get("$XDSDocumentEntryPatientId", [""])[0])
                if params.get("$XDSDocumentEntryPatientId")
                else None
            )
            statuses = {_unquote(s) for v in params.get("$XDSDocumentEntryStatus", []) for s in _list_values(v)}
            if not cx or not statuses:
                findings.append(
                    Finding(
                        "XDSStoredQueryParamNumber",
                        "FindDocuments: $XDSDocumentEntryPatientId et $XDSDocumentEntryStatus sont obligatoires",
                    )
                )
            else:
                try:
                    patient = parse_xds_patient_id(cx)
                except InsError as exc:
                    findings.append(Finding("XDSUnknownPatientId", f"$XDSDocumentEntryPatientId {cx!r}: {exc.message}"))
                if patient is not None:
                    bound = self._bound_to_vihf(patient, caller, "recherche des documents") or self._other_session(
                        patient, caller, "recherche des documents"
                    )
                    findings.extend(bound or self._person_findings(patient, caller, feeding=False))
                    type_codes = {
                        _unquote(s).split("^")[0]
                        for v in params.get("$XDSDocumentEntryTypeCode", [])
                        for s in _list_values(v)
                    }
                    results = [
                        d
                        for d in self.store.documents(patient)
                        if d.status in statuses
                        and self._visible(d, caller)
                        and (not type_codes or d.type_code in type_codes)
                    ]
        elif query_id == GET_DOCUMENTS:
            wanted = {
                _unquote(s)
                for key in ("$XDSDocumentEntryUniqueId", "$XDSDocumentEntryEntryUUID")
                for v in params.get(key, [])
                for s in _list_values(v)
            }
            if not wanted:
                findings.append(
                    Finding(
                        "XDSStoredQueryParamNumber",
                        "GetDocuments: $XDSDocumentEntryUniqueId ou $XDSDocumentEntryEntryUUID obligatoire",
                    )
                )
            found = [d for d in (self.store.by_unique_id(w) or self.store.get(w) for w in wanted) if d is not None]
            for document in found:
                requested = parse_xds_patient_id(document.patient_cx)
                what = f"lecture des métadonnées du document {document.unique_id}"
                bound = self._bound_to_vihf(requested, caller, what) or self._other_session(requested, caller, what)
                if patient is None or bound:
                    patient = requested
                findings.extend(bound)
            if patient is not None and not any(f.code == "DMPAccessDenied" for f in findings):
                findings.extend(self._person_findings(patient, caller, feeding=False))
            results = [d for d in found if d.status in VISIBLE_STATUSES and self._visible(d, caller)]
        else:
            findings.append(
                Finding(
                    "XDSUnknownStoredQuery",
                    f"requête stockée {query_id!r} non prise en charge (FindDocuments, GetDocuments)",
                )
            )
        errors = [f for f in findings if f.severity is Severity.ERROR]
        response = registry_response(findings, tag=f"{{{E.QUERY}}}AdhocQueryResponse")
        objects = etree.SubElement(response, E.rim("RegistryObjectList"))
        if not errors:
            for document in results:
                if return_type == "LeafClass":
                    objects.append(self._leaf(document))
                else:
                    etree.SubElement(objects, E.rim("ObjectRef"), id=document.entry_uuid)
        details = {
            "query": query_id,
            "returnType": return_type,
            "results": [d.unique_id for d in results] if not errors else [],
            **caller.identities(patient),
        }
        self.record(
            operation,
            Outcome.REJECTED if errors else Outcome.ACCEPTED,
            caller,
            person=patient.value if patient else None,
            findings=findings,
            payload=raw,
            payload_type=payload_type,
            details=details,
        )
        return self._reply(ITI18, soap, response)

    def _visible(self, document: StoredDocument, caller: Caller) -> bool:
        """Professionals do not see documents masked to them, except the structure that authored them."""
        if document.status == STATUS_DELETED:
            return False
        return not document.masked_to_professionals or (
            caller.structure is not None and caller.structure == document.essms
        )

    # ------------------------------------------------------------------------------------------ ITI-43
    def retrieve(self, soap: SoapRequest, caller: Caller, raw: bytes, payload_type: str) -> Reply:
        operation = OPERATIONS[ITI43]
        payload = soap.payload
        if payload is None or payload.tag != f"{{{E.XDSB}}}RetrieveDocumentSetRequest":
            raise SoapFault("Sender", "xdsb:RetrieveDocumentSetRequest attendu dans env:Body", error_code="XDS-BODY")
        findings: list[Finding] = list(caller.vihf.findings)
        found: list[StoredDocument] = []
        patient: str | None = None
        requested_patient: INS | None = None
        for request in payload.findall("xdsb:DocumentRequest", E.NS):
            repository = request.findtext("xdsb:RepositoryUniqueId", namespaces=E.NS) or ""
            unique_id = (request.findtext("xdsb:DocumentUniqueId", namespaces=E.NS) or "").strip()
            if repository.strip() != self.repository_id:
                findings.append(
                    Finding(
                        "XDSUnknownRepositoryId",
                        f"RepositoryUniqueId {repository!r} inconnu (attendu {self.repository_id})",
                    )
                )
                continue
            document = self.store.by_unique_id(unique_id)
            if document is None or document.status == STATUS_DELETED or not self._visible(document, caller):
                findings.append(Finding("XDSDocumentUniqueIdError", f"document {unique_id!r} introuvable"))
                continue
            patient = document.patient
            requested_patient = parse_xds_patient_id(document.patient_cx)
            what = f"récupération du document {unique_id}"
            bound = self._bound_to_vihf(requested_patient, caller, what) or self._other_session(
                requested_patient, caller, what
            )
            state_findings = bound or self._person_findings(requested_patient, caller, feeding=False)
            if state_findings:
                findings.extend(state_findings)
                continue
            found.append(document)
        if not payload.findall("xdsb:DocumentRequest", E.NS):
            findings.append(Finding("XDSRegistryError", "aucun xdsb:DocumentRequest"))
        errors = [f for f in findings if f.severity is Severity.ERROR]
        response = etree.Element(f"{{{E.XDSB}}}RetrieveDocumentSetResponse", nsmap={"xdsb": E.XDSB, "rs": E.RS})
        registry = registry_response(findings)
        if errors and found:
            registry.set("status", E.RESPONSE_PARTIAL)
        response.append(registry)
        attachments: dict[str, bytes] = {}
        for document in found:
            item = etree.SubElement(response, f"{{{E.XDSB}}}DocumentResponse")
            etree.SubElement(item, f"{{{E.XDSB}}}RepositoryUniqueId").text = document.repository_unique_id
            etree.SubElement(item, f"{{{E.XDSB}}}DocumentUniqueId").text = document.unique_id
            etree.SubElement(item, f"{{{E.XDSB}}}mimeType").text = document.mime_type
            cid = f"doc{len(attachments) + 1}.{uuid.uuid4().hex}@dmp.simulateur"
            include = etree.SubElement(
                etree.SubElement(item, f"{{{E.XDSB}}}Document"),
                "{http://www.w3.org/2004/08/xop/include}Include",
                nsmap={"xop": "http://www.w3.org/2004/08/xop/include"},
            )
            include.set("href", f"cid:{cid}")
            attachments[cid] = self.store.content(document)
        self.record(
            operation,
            Outcome.ACCEPTED if found and not errors else Outcome.REJECTED,
            caller,
            person=patient,
            findings=findings,
            payload=raw,
            payload_type=payload_type,
            details={"retrieved": [d.unique_id for d in found], **caller.identities(requested_patient)},
        )
        body, content_type = mtom_bytes(ITI43 + "Response", soap.message_id, response, attachments)
        return Reply(body, content_type)

    # ------------------------------------------------------------------------------------------ ITI-57
    def update(self, soap: SoapRequest, caller: Caller, raw: bytes, payload_type: str) -> Reply:
        operation = OPERATIONS[ITI57]
        sor = soap.payload
        if sor is None or sor.tag != f"{{{E.LCM}}}SubmitObjectsRequest":
            raise SoapFault("Sender", "lcm:SubmitObjectsRequest attendu dans env:Body", error_code="XDS-BODY")
        findings: list[Finding] = list(caller.vihf.findings)
        objects = sor.find("rim:RegistryObjectList", E.NS)
        changes: list[dict[str, Any]] = []  # the registry operation's changes, applied all or none
        planned: list[dict[str, Any]] = []
        patient: str | None = None
        patient_cx: str | None = None
        targets: set[str] = set()  # the patients (XDS CX) of every updated document
        if objects is None:
            findings.append(Finding("XDSMetadataUpdateError", "rim:RegistryObjectList absent"))
            objects = etree.Element(E.rim("RegistryObjectList"))
        # status updates
        for assoc in objects.findall("rim:Association", E.NS):
            if assoc.get("associationType") != E.UPDATE_AVAILABILITY_STATUS:
                continue
            target = self.store.get(assoc.get("targetObject", ""))
            original = next(iter(E.slot(assoc, "OriginalStatus")), None)
            new = next(iter(E.slot(assoc, "NewStatus")), None)
            if target is None:
                findings.append(
                    Finding(
                        "UnresolvedReferenceException",
                        f"UpdateAvailabilityStatus: document {assoc.get('targetObject')!r} inconnu",
                    )
                )
                continue
            patient, patient_cx = target.patient, target.patient_cx
            targets.add(target.patient_cx)
            if refused := self._other_session_document(target, caller):  # before any check that would reveal it
                findings.extend(refused)
                continue
            if original != target.status:
                findings.append(
                    Finding(
                        "XDSMetadataUpdateError",
                        f"OriginalStatus {original!r} différent du statut actuel {target.status!r}",
                    )
                )
                continue
            if new not in {E.STATUS_APPROVED, E.STATUS_DEPRECATED, STATUS_ARCHIVED, STATUS_DELETED}:
                findings.append(Finding("XDSMetadataUpdateError", f"NewStatus {new!r} non pris en charge"))
                continue
            planned.append({"document": target.unique_id, "status": new})
            changes.append({"entry_uuid": target.entry_uuid, "status": new, "original": target.status})
        # metadata updates (confidentiality: masking, visibility)
        for element in objects.findall("rim:ExtrinsicObject", E.NS):
            lid = element.get("lid", "")
            target = self.store.get(lid)
            if target is None:
                findings.append(
                    Finding("UnresolvedReferenceException", f"mise à jour: lid {lid!r} ne désigne aucun document")
                )
                continue
            patient, patient_cx = target.patient, target.patient_cx
            targets.add(target.patient_cx)
            if refused := self._other_session_document(target, caller):
                findings.extend(refused)
                continue
            cx = E.external_id(element, E.DOC_PATIENT_ID)
            if cx != target.patient_cx:
                findings.append(
                    Finding("XDSPatientIdDoesNotMatch", "mise à jour: patientId différent de celui du document")
                )
                continue
            previous = [
                v
                for a in objects.findall("rim:Association", E.NS)
                if a.get("targetObject") == element.get("id")
                for v in E.slot(a, "PreviousVersion")
            ]
            if previous and previous[0] != str(target.version):
                findings.append(
                    Finding(
                        "XDSMetadataVersionError",
                        f"PreviousVersion {previous[0]} alors que la version courante est {target.version}",
                    )
                )
                continue
            codes = tuple(E.coded_values(element, E.CONFIDENTIALITY_CODE))
            if not any(s == "2.16.840.1.113883.5.25" for _, s in codes):
                findings.append(
                    Finding("XDSMetadataUpdateError", "confidentialityCode HL7 (N, R, V) absent de la nouvelle version")
                )
                continue
            planned.append({"document": target.unique_id, "confidentiality": [c for c, _ in codes]})
            changes.append(self._confidentiality_change(target, codes))
        if not changes and not findings:
            findings.append(
                Finding(
                    "XDSMetadataUpdateError",
                    "aucune mise à jour (ni UpdateAvailabilityStatus, ni nouvelle version de DocumentEntry)",
                )
            )
        bound = [
            f for cx in sorted(targets) for f in self._bound_to_vihf(parse_xds_patient_id(cx), caller, "mise à jour")
        ]
        findings.extend(bound)
        if patient_cx is not None and not bound and not any(f.code == "DMPAccessDenied" for f in findings):
            findings.extend(self._person_findings(parse_xds_patient_id(patient_cx), caller, feeding=True))
        errors = [f for f in findings if f.severity is Severity.ERROR]
        details = {"changes": planned, **caller.identities(parse_xds_patient_id(patient_cx) if patient_cx else None)}
        journaled: dict[str, Any] = {
            "person": patient,
            "payload": raw,
            "payload_type": payload_type,
            "details": details,
        }
        if errors:
            self.record(operation, Outcome.REJECTED, caller, findings=findings, **journaled)
            return self._reply(ITI57, soap, registry_response(findings))
        accepted = self.ctx.stamp(self.exchange(operation, Outcome.ACCEPTED, caller, findings=findings, **journaled))
        try:  # changed before it is journaled, as ITI-41 registers first: the journal matches every answer
            previous = self.store.update_all(changes, session=accepted.session_id)
        except RegistryConflictError as exc:  # another process or thread changed the document since the checks
            findings.append(Finding(exc.code, f"mise à jour concurrente refusée : {exc}"))
            self.record(operation, Outcome.REJECTED, caller, findings=findings, **journaled)
            return self._reply(ITI57, soap, registry_response(findings))
        try:
            self.ctx.commit(accepted)
        except BaseException:  # not journaled: the registry takes the change back (a compensating operation)
            self.store.revert(previous)
            raise
        return self._reply(ITI57, soap, registry_response(findings))

    def _confidentiality_change(self, target: StoredDocument, codes: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        """The next version's metadata with ``codes`` as its confidentiality (new Classification ids drawn here)."""
        element = etree.fromstring(target.metadata)
        for old in E.classifications(element, E.CONFIDENTIALITY_CODE):
            element.remove(old)
        for code, scheme in codes:
            cl = etree.SubElement(
                element,
                E.rim("Classification"),
                id=f"urn:uuid:{uuid.uuid4()}",
                classifiedObject=target.entry_uuid,
                classificationScheme=E.CONFIDENTIALITY_CODE,
                nodeRepresentation=code,
            )
            etree.SubElement(
                etree.SubElement(etree.SubElement(cl, E.rim("Slot"), name="codingScheme"), E.rim("ValueList")),
                E.rim("Value"),
            ).text = scheme
        return {
            "entry_uuid": target.entry_uuid,
            "version": target.version,
            "confidentiality": [list(c) for c in codes],
            "metadata": etree.tostring(element).decode(),
        }

    # ------------------------------------------------------------------------------------------ TD0.2
    def test_existence(self, soap: SoapRequest, caller: Caller, raw: bytes, payload_type: str) -> Reply:
        operation = OPERATIONS[TD02]
        query = soap.payload
        if query is None or query.tag != f"{{{HL7}}}PRPA_IN201307UV02":
            raise SoapFault("Sender", "hl7:PRPA_IN201307UV02 attendu dans env:Body", error_code="HL7-BODY")
        ns = {"hl7": HL7}
        value = query.find(
            "hl7:controlActProcess/hl7:queryByParameter/hl7:parameterList/hl7:patientIdentifier/hl7:value", ns
        )
        findings: list[Finding] = list(caller.vihf.findings)
        ins: INS | None = None
        if value is None:
            findings.append(Finding("HL7-PATIENT-ID", "parameterList/patientIdentifier/value absent"))
        else:
            try:
                ins = parse_ins(value.get("extension", ""), value.get("root", ""))
            except InsError as exc:
                findings.append(
                    Finding(
                        "HL7-PATIENT-ID",
                        f"identifiant {value.get('extension')!r} / {value.get('root')!r}: {exc.message}",
                    )
                )
        refused = self._bound_to_vihf(ins, caller, "test d'existence du DMP") or self._other_session(
            ins, caller, "test d'existence du DMP"
        )
        findings.extend(refused)
        findings.extend(self._production_ins(ins, "patientIdentifier"))
        person = self.store.person(ins) if ins and not refused else None  # a refused caller learns nothing of it
        state = person.state if person else DmpState.ABSENT
        authorisation = person.authorisation if person else Authorisation.NONE
        errors = [f for f in findings if f.severity is Severity.ERROR]
        response = self._prpa_in201308(query, ins, state, authorisation, errors)
        self.record(
            operation,
            Outcome.REJECTED if errors else Outcome.ACCEPTED,
            caller,
            person=ins.value if ins else None,
            findings=findings,
            payload=raw,
            payload_type=payload_type,
            details={"state": state.value, "authorisation": authorisation.value, **caller.identities(ins)},
        )
        return Reply(
            soap_bytes("urn:hl7-org:v3:PRPA_IN201308UV02", soap.message_id, response),
            "application/soap+xml; charset=UTF-8",
        )

    def _prpa_in201308(
        self,
        query: etree._Element,
        ins: INS | None,
        state: DmpState,
        authorisation: Authorisation,
        errors: list[Finding],
    ) -> etree._Element:
        def el(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
            return etree.SubElement(parent, f"{{{HL7}}}{tag}", attrs)

        root = etree.Element(f"{{{HL7}}}PRPA_IN201308UV02", nsmap={None: HL7}, ITSVersion="XML_1.0")
        el(root, "id", root=self.repository_id, extension=uuid.uuid4().hex)
        el(root, "creationTime", value=datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
        el(root, "interactionId", root="2.16.840.1.113883.1.6", extension="PRPA_IN201308UV02")
        el(root, "processingCode", code="P")
        el(root, "processingModeCode", code="T")
        el(root, "acceptAckCode", code="NE")
        ack = el(root, "acknowledgement", typeCode="AE" if errors or state is DmpState.CLOSED else "AA")
        request_id = query.find(f"{{{HL7}}}id")
        target = el(ack, "targetMessage")
        if request_id is not None:
            el(target, "id", root=request_id.get("root", ""), extension=request_id.get("extension", ""))
        for finding in errors:
            detail = el(ack, "acknowledgementDetail", typeCode="E")
            el(detail, "code", code=finding.code)
            el(detail, "text").text = finding.message
        if state is DmpState.CLOSED:
            detail = el(ack, "acknowledgementDetail", typeCode="E")
            el(detail, "code", code="DMPClosed")
            el(detail, "text").text = "le DMP de la personne est fermé"
        control = el(root, "controlActProcess", classCode="CACT", moodCode="EVN")
        if state is not DmpState.ABSENT and ins is not None and not errors:
            line = el(control, "attentionLine")
            el(line, "keyWordText", code="AUTORISATION")
            el(line, "value", code=authorisation.value)
            subject = el(control, "subject", typeCode="SUBJ")
            event = el(subject, "registrationEvent", classCode="REG", moodCode="EVN")
            el(event, "statusCode", code="active" if state is DmpState.ACTIVE else "completed")
            patient = el(el(event, "subject1", typeCode="SBJ"), "patient", classCode="PAT")
            el(patient, "id", root=ins.oid, extension=ins.value)
            el(patient, "statusCode", code="active" if state is DmpState.ACTIVE else "completed")
        query_ack = el(control, "queryAck")
        by_param = query.find(f"{{{HL7}}}controlActProcess/{{{HL7}}}queryByParameter/{{{HL7}}}queryId")
        if by_param is not None:
            el(query_ack, "queryId", root=by_param.get("root", ""), extension=by_param.get("extension", ""))
        code = "AE" if errors else ("OK" if state is not DmpState.ABSENT else "NF")
        el(query_ack, "queryResponseCode", code=code)
        return root


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def _list_values(value: str) -> list[str]:
    """Values of an ebRS query slot: ``('a','b')`` lists or a single quoted value."""
    value = value.strip()
    if value.startswith("(") and value.endswith(")"):
        return [v.strip() for v in value[1:-1].split(",") if v.strip()]
    return [value]
