"""TDDUI simulator: the national endpoint that receives a DUI's "transfert de données DUI" (ANS TDDUI guide).

FHIR R4 JSON over the host's shared HTTPS port: ``POST <base>/`` (``https://host:port/tddui/``) with a
TDDUIBundle transaction (``application/fhir+json``) answers ``200`` with a ``transaction-response`` Bundle, or
``4xx`` with an OperationOutcome (400: not JSON / not a transaction / FHIR structure; 415: media type; 422:
profile rules, unresolvable references, invalid or production INS). ``GET <base>/metadata`` returns the
CapabilityStatement. Validation: :mod:`harness.validators.tddui`.

Journal (:mod:`harness.fields.dui`): one ``fhir.transaction`` exchange per Bundle (payload = the Bundle, findings),
and, when accepted, one exchange per entry the usage indicators use (``fhir.create.<kind>``, ``essms`` = FINESS,
``person`` = INS, the producer's facts in ``details["fact"]``), all committed together before the answer. The
``lastModified`` the response gives is the server's; the facts keep the DUI's own dates.

Fault (``ctx.take_fault("fhir.reply")``, params ``status`` and ``message``): the next transaction is refused
with that HTTP status and an OperationOutcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness.core.journal import Direction, Exchange, Outcome
from harness.fields import dui
from harness.host.simulator import Simulator, SimulatorContext
from harness.validators import Finding, Severity
from harness.validators.tddui import MAX_BYTES, TdduiReport, operation_outcome, validate_bundle

FHIR_JSON = "application/fhir+json"
ACCEPTED_MEDIA = {"application/fhir+json", "application/json"}


@dataclass(frozen=True)
class TdduiSettings:
    max_bytes: int = MAX_BYTES

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> TdduiSettings:
        return cls(max_bytes=int(raw.get("max_bytes", MAX_BYTES)))


def _fhir(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


class TdduiSimulator(Simulator):
    name = "tddui"
    title = "TDDUI (transfert de données DUI, FHIR)"

    def __init__(self, ctx: SimulatorContext) -> None:
        super().__init__(ctx)
        self.settings = TdduiSettings.from_mapping(dict(ctx.settings))

    def http_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self._transaction, methods=["POST"]),
                Route("/metadata", self._metadata, methods=["GET"]),
            ]
        )

    def http_endpoints(self) -> dict[str, str]:
        return {"fhir": "/", "metadata": "/metadata"}

    async def _metadata(self, request: Request) -> Response:
        return _fhir(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "date": datetime.now(UTC).date().isoformat(),
                "format": [FHIR_JSON],
                "implementation": {
                    "description": "socle-harness: simulateur de réception TDDUI",
                    "url": self.ctx.http_base,
                },
                "rest": [
                    {
                        "mode": "server",
                        "interaction": [{"code": "transaction"}],
                        "documentation": "TDDUIBundle (ans.fhir.fr.tddui): création seulement (POST)",
                    }
                ],
            }
        )

    async def _transaction(self, request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        actor = request.headers.get("user-agent")
        if media not in ACCEPTED_MEDIA:
            finding = Finding(
                "FHIR-MEDIA", f"Content-Type {media or '(absent)'} non pris en charge: application/fhir+json attendu"
            )
            return await asyncio.to_thread(self._refuse, 415, [finding], body, actor, "not-supported")
        try:
            return await asyncio.to_thread(self._handle, body, actor)
        except Exception as exc:  # a validator bug must not leak a traceback nor skip the journal
            finding = Finding(
                "TDDUI-INTERNE",
                f"erreur interne du simulateur ({type(exc).__name__}); transaction non enregistrée, réessayez",
            )
            return await asyncio.to_thread(
                self._refuse, 500, [finding], body, actor, "exception", {"internal_error": repr(exc)[:500]}
            )

    def _refuse(
        self,
        status: int,
        findings: list[Finding],
        body: bytes,
        actor: str | None,
        code: str = "invalid",
        extra: dict[str, Any] | None = None,
        report: TdduiReport | None = None,
    ) -> Response:
        outcome = operation_outcome(findings, code=code)
        first = next((f for f in findings if f.severity is Severity.ERROR), findings[0] if findings else None)
        self.ctx.record(
            Exchange(
                service=self.ctx.name,
                operation=dui.OP_TRANSACTION,
                direction=Direction.FROM_DUI,
                outcome=Outcome.REJECTED,
                actor=actor,
                essms=report.essms[0] if report and len(report.essms) == 1 else None,
                error_code=str(status),
                error_message=f"{first.code}: {first.message}" if first else None,
                payload=body or None,
                payload_type=FHIR_JSON if body else None,
                details={"findings": [f.to_dict() for f in findings], **(extra or {})},
            )
        )
        return _fhir(outcome.to_json(), status)

    def _handle(self, body: bytes, actor: str | None) -> Response:
        fault = self.ctx.take_fault("fhir.reply")
        if fault is not None:
            status = int(fault.params.get("status", 503))
            message = str(fault.params.get("message", "service indisponible (panne simulée)"))
            return self._refuse(status, [Finding("TDDUI-PANNE", message)], body, actor, "transient", {"fault": True})
        report = validate_bundle(body, max_bytes=self.settings.max_bytes)
        if report.errors:
            return self._refuse(
                400 if report.structural else 422,
                list(report.findings),
                body,
                actor,
                "structure" if report.structural else "invalid",
                report=report,
            )
        now = datetime.now(UTC)
        bundle = Exchange(
            service=self.ctx.name,
            operation=dui.OP_TRANSACTION,
            direction=Direction.FROM_DUI,
            outcome=Outcome.ACCEPTED,
            actor=actor,
            essms=report.essms[0] if len(report.essms) == 1 else None,
            payload=body,
            payload_type=FHIR_JSON,
            details={
                "findings": [f.to_dict() for f in report.findings],
                "entries": len(report.entries),
                "facts": len(report.facts),
                "essms": list(report.essms),
            },
        )
        evidence = hashlib.sha256(body).hexdigest()  # the entries point to the Bundle's evidence
        facts = [
            Exchange(
                service=self.ctx.name,
                operation=str(f.kind),
                direction=Direction.FROM_DUI,
                outcome=Outcome.ACCEPTED,
                actor=actor,
                essms=f.essms,
                person=f.person,
                payload_type=FHIR_JSON,
                digest=evidence,
                details={**f.as_details(), dui.BUNDLE: bundle.id},
            )
            for f in report.facts
        ]
        recorded = self.ctx.record_many([bundle, *facts])
        warnings_by_entry: dict[int, list[Finding]] = {}
        for finding in report.warnings:  # Bundle-level warnings go with the first entry (1:1 entries in R4)
            index = max(_entry_index(finding.location), 0)
            warnings_by_entry.setdefault(index, []).append(finding)
        response_entries = []
        for index, entry in enumerate(report.entries):
            response: dict[str, Any] = {
                "status": "201 Created",
                "location": f"{entry.resource_type}/{uuid.uuid4().hex}/_history/1",
                "etag": 'W/"1"',
                "lastModified": now.isoformat(timespec="seconds"),
            }
            if index in warnings_by_entry:
                response["outcome"] = operation_outcome(warnings_by_entry[index]).to_json()
            response_entries.append({"response": response})
        answer: dict[str, Any] = {
            "resourceType": "Bundle",
            "id": recorded[0].id,
            "type": "transaction-response",
            "entry": response_entries,
        }
        return _fhir(answer)


def _entry_index(location: str) -> int:
    prefix = "Bundle.entry["
    if location.startswith(prefix):
        number = location[len(prefix) :].split("]", 1)[0]
        if number.isdigit():
            return int(number)
    return -1
