"""The TDDUI reception endpoint on :mod:`harness.fhir`: authentication, bounded reading, negotiation and the
journal come from the FHIR layer; the TDDUIBundle rules and the DUI facts from :mod:`harness.validators.tddui`.

See :mod:`mock_services.tddui` for the contract. The transaction is not stored (the national endpoint only
receives): :meth:`TdduiService.transaction` replaces the FHIR layer's Bundle processing and
:meth:`TdduiService.exchanges` gives the journal rows, committed by the server before it answers.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from harness.core.journal import Exchange, Outcome
from harness.core.settings import read_settings
from harness.fhir import EstablishmentAccess, FhirHooks, FhirInteraction, FhirServer, Interaction, Limits, RequestInfo
from harness.fhir.access import OTHER_SESSION, identified_owners
from harness.fhir.interaction import default_exchange
from harness.fhir.outcome import FhirError, Issue, IssueCode, IssueSeverity
from harness.fhir.store import ResourceStore, UnitOfWork
from harness.fhir.wire import MIME_JSON, Format, body_format
from harness.fields import dui
from harness.fields.identity import ProductionInsPolicy
from harness.host.simulator import SimulatorContext
from harness.validators import Finding, Severity
from harness.validators.tddui import MAX_BYTES, TdduiReport, operation_outcome, validate_bundle

SERVICE = "tddui"
#: Declared faults (``<service>.<fault>``); ``fhir.reply`` is the former name, still accepted.
FAULT_REPLY = "tddui.reply"
FAULT_REPLY_LEGACY = "fhir.reply"
FAULTS = {FAULT_REPLY: "la prochaine transaction est refusée avec params.status (503) et params.message"}
_SEVERITIES = {"error": IssueSeverity.ERROR, "warning": IssueSeverity.WARNING, "information": IssueSeverity.INFORMATION}


@dataclass(frozen=True)
class TdduiSettings:
    """``[settings.tddui]`` of the harness configuration."""

    max_bytes: int = MAX_BYTES
    max_entries: int = 200_000  # a whole ESSMS in one Bundle: persons, stays, plans and events
    production_ins: ProductionInsPolicy = ProductionInsPolicy.WARN  # harness-wide unless the table overrides it

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TdduiSettings:
        """Typed read of the table (:func:`harness.core.settings.read_settings`)."""
        return read_settings(cls, raw)


class TdduiRefusal(FhirError):
    """A refused TDDUI transaction with the validator's findings (the OperationOutcome and the journal show them)."""

    def __init__(
        self,
        status: int,
        findings: list[Finding],
        *,
        code: str = "invalid",
        report: TdduiReport | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        outcome = operation_outcome(findings, code=code)
        issues = [
            Issue(_SEVERITIES.get(i.severity, IssueSeverity.ERROR), IssueCode(i.code), i.diagnostics, i.expression)
            for i in outcome.issues
        ]
        first = next((f for f in findings if f.severity is Severity.ERROR), findings[0] if findings else None)
        super().__init__(status, issues, error_code=first.code if first else None)
        self.findings = findings
        self.report = report
        self.extra = dict(extra or {})


@dataclass
class TdduiTransaction(FhirInteraction):
    """An accepted TDDUI transaction: its report and the journal rows it gives."""

    report: TdduiReport = field(default_factory=TdduiReport)
    journal: list[Exchange] = field(default_factory=list)


class TdduiService(FhirHooks):
    """The TDDUI endpoint of one run."""

    service = SERVICE

    def __init__(self, ctx: SimulatorContext, settings: TdduiSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.access = EstablishmentAccess(ctx.testdata.establishments, og_shared=ctx.testdata.og_shared)
        self.production_ins = settings.production_ins  # harness-wide production-INS policy
        self.fhir = FhirServer(
            resources=(),
            store=ResourceStore(clock=ctx.run.now, state=ctx.state, stream=f"{SERVICE}.fhir"),
            hooks=self,
            record=ctx.record_many,
            base_url=lambda: ctx.http_base,
            limits=Limits(max_body_bytes=settings.max_bytes, max_bundle_entries=settings.max_entries),
            software="socle-harness TDDUI",
            title="Simulateur de réception TDDUI (transfert de données DUI)",
            implementation_guides=(
                "https://interop.esante.gouv.fr/ig/fhir/tddui/ImplementationGuide/ans.fhir.fr.tddui",
            ),
            transaction=self.transaction,
            system_interactions=("transaction",),
        )

    # ------------------------------------------------------------------------------------ hooks
    def authenticate(self, certificate: x509.Certificate | None, *, request: RequestInfo) -> str | None:
        return self.access.authenticate(certificate)

    def _fault(self, caller_finess: str | None) -> Any:
        return self.ctx.take_fault(FAULT_REPLY, essms=caller_finess) or self.ctx.take_fault(
            FAULT_REPLY_LEGACY, essms=caller_finess
        )

    def _other_session(self, caller: str | None, bundle: Any) -> str | None:
        """Why an establishment of an open test session may not send this Bundle: it names a person (INS) or an
        establishment of another open session (issue 19 item 4); ``None`` when it may, or the caller is in no
        session (checked first: without sessions nothing else is read)."""
        if self.ctx.session_of("essms", caller) is None:
            return None
        for owner in identified_owners(bundle):
            refusal = self.ctx.cross_session(("essms", caller), owner)
            if refusal is not None:
                return refusal
        return None

    def transaction(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        """Validate the TDDUIBundle, check its establishments are the caller's, prepare the journal and answer."""
        parsed = self.fhir.parse_body(info)  # 415 media type, 400 JSON / XML, 413 entries: as every FHIR endpoint
        fault = self._fault(info.caller_finess)
        if fault is not None:
            status = int(fault.params.get("status", 503))
            message = str(fault.params.get("message", "service indisponible (panne simulée)"))
            raise TdduiRefusal(status, [Finding("TDDUI-PANNE", message)], code="transient", extra={"fault": True})
        body = info.body
        if body_format(info.content_type) is Format.XML:  # validated in its JSON form
            body = json.dumps(parsed, ensure_ascii=False).encode("utf-8")
        report = validate_bundle(body, max_bytes=self.settings.max_bytes, production_ins=self.production_ins)
        if report.errors:
            raise TdduiRefusal(
                400 if report.structural else 422,
                list(report.findings),
                code="structure" if report.structural else "invalid",
                report=report,
            )
        for finess in report.essms:
            self.access.require(
                info.caller_finess, finess, expression="Bundle.entry.resource.identifier", what="TDDUI :"
            )
        refusal = self._other_session(info.caller_finess, parsed)
        if refusal is not None:
            raise TdduiRefusal(
                403,
                [Finding(OTHER_SESSION, refusal, location="Bundle.entry.resource.identifier")],
                code="forbidden",
                report=report,
            )
        now = datetime.now(UTC)
        bundle = self.ctx.exchange(
            dui.OP_TRANSACTION,
            Outcome.ACCEPTED,
            actor=info.headers.get("user-agent"),
            essms=info.caller_finess,
            payload=body,
            payload_type=MIME_JSON,
            details={
                "findings": [f.to_dict() for f in report.findings],
                "entries": len(report.entries),
                "facts": len(report.facts),
                "essms": list(report.essms),
            },
        )
        evidence = hashlib.sha256(body).hexdigest()  # the entries point to the Bundle's evidence
        facts = [
            self.ctx.exchange(
                str(f.kind),
                Outcome.ACCEPTED,
                actor=bundle.actor,
                essms=info.caller_finess,  # the authenticated establishment, always
                person=f.person,
                payload_type=MIME_JSON,
                digest=evidence,
                details={**f.as_details(), dui.BUNDLE: bundle.id, "finess_donnees": f.essms},
            )
            for f in report.facts
        ]
        done = TdduiTransaction(Interaction.TRANSACTION, "POST", report=report, journal=[bundle, *facts])
        done.response = self._answer(bundle.id, report, now)
        return done

    @staticmethod
    def _answer(bundle_id: str, report: TdduiReport, now: datetime) -> dict[str, Any]:
        warnings_by_entry: dict[int, list[Finding]] = {}
        for finding in report.warnings:  # Bundle-level warnings go with the first entry (1:1 entries in R4)
            warnings_by_entry.setdefault(max(_entry_index(finding.location), 0), []).append(finding)
        entries = []
        for index, entry in enumerate(report.entries):
            response: dict[str, Any] = {
                "status": "201 Created",
                "location": f"{entry.resource_type}/{uuid.uuid4().hex}/_history/1",
                "etag": 'W/"1"',
                "lastModified": now.isoformat(timespec="seconds"),
            }
            if index in warnings_by_entry:
                response["outcome"] = operation_outcome(warnings_by_entry[index]).to_json()
            entries.append({"response": response})
        return {"resourceType": "Bundle", "id": bundle_id, "type": "transaction-response", "entry": entries}

    def exchanges(self, item: FhirInteraction, *, request: RequestInfo, body: bytes, uow: UnitOfWork) -> list[Exchange]:
        """Accepted: the Bundle's ``fhir.transaction`` and one row per DUI fact, committed together. Refused (any
        request): one rejected ``fhir.transaction`` with the findings, ``error_code`` = the HTTP status."""
        if isinstance(item, TdduiTransaction) and item.error is None:
            return item.journal
        if item.error is None or item.interaction is not Interaction.TRANSACTION:
            return [default_exchange(item, request=request, body=body)]  # metadata, other requests
        error = item.error
        refusal = error if isinstance(error, TdduiRefusal) else None
        findings = (
            refusal.findings
            if refusal is not None
            else [Finding(error.error_code, error.message, Severity.ERROR)]
            if error is not None
            else []
        )
        first = next((f for f in findings if f.severity is Severity.ERROR), findings[0] if findings else None)
        report = refusal.report if refusal is not None else None
        return [
            self.ctx.exchange(
                dui.OP_TRANSACTION,
                Outcome.REJECTED,
                actor=request.headers.get("user-agent"),
                essms=request.caller_finess,
                error_code=str(item.status),
                error_message=f"{first.code}: {first.message}" if first else None,
                payload=body or None,
                payload_type=(request.content_type or MIME_JSON) if body else None,
                details={
                    "findings": [f.to_dict() for f in findings],
                    "method": request.method,
                    "path": request.path,
                    **({"essms_bundle": list(report.essms)} if report else {}),
                    **(refusal.extra if refusal else {}),
                },
            )
        ]


def _entry_index(location: str) -> int:
    prefix = "Bundle.entry["
    if location.startswith(prefix):
        number = location[len(prefix) :].split("]", 1)[0]
        if number.isdigit():
            return int(number)
    return -1
