"""DMP (Dossier Médical Partagé, Mon espace santé's document store) simulator: XDS.b over SOAP 1.2 + MTOM.

Mounted at ``/dmp`` on the harness HTTPS port, with service paths shaped like the real ones:
``/dmp/si-dmp-server/v2/services/repository`` (ITI-41, ITI-43), ``.../registry`` (ITI-18, ITI-57) and
``.../patients`` (TD0.2, HL7 v3 ``PRPA_IN201307UV02``). Every request needs an organisation client certificate
of the test PKI (mutual TLS) and a VIHF 3.0 assertion; see :mod:`mock_services.dmp.transactions` for the
transactions and :mod:`mock_services.dmp.soap` for the transport.

Settings (``[settings.dmp]``, :class:`~mock_services.dmp.settings.DmpSettings`): ``cda_xsd_dir`` (folder holding ``CDA_extended.xsd``), ``schematron_dir`` (CI-SIS
``schematrons/`` folder), ``jdv_dir`` (ANS value sets ``JDV_*.xml``), ``vihf`` (``strict`` / ``lenient`` /
``off``), ``mtom`` (``strict`` / ``lenient`` / ``off``: ITI-41 without MTOM refused / warned / accepted),
``production_ins`` (``warn`` / ``refuse``, default from the harness configuration), ``require_client_certificate``
(default true), ``max_request_bytes``, ``persons`` (``{INS: {"state": "closed", "authorisation": "INTERDITE"}}``,
INS as a value of a test person or ``value^^^&oid&ISO^NH``). Rules and sources: ``docs/specs/dmp.md``. Faults (``FaultBoard`` kinds): ``dmp.closed``,
``dmp.authorisation_refused``, ``soap.fault`` (params ``code``, ``reason``), ``timeout`` (param ``seconds``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from cryptography import x509
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.core.journal import Outcome
from harness.fhir.access import certificate_finess, ensure_establishment_certificates
from harness.fields.identity import INS, OID_INS_NIR_TEST, parse_ins, parse_xds_patient_id
from harness.fields.soap12 import SoapFault, SoapLimits, SoapRequest, addressing_fault, parse_soap_request
from harness.host.asgi_tls import client_certificate
from harness.host.simulator import Simulator, SimulatorContext, catalogue_of
from harness.validators.cda import CdaSchema
from harness.validators.iti41 import Iti41Policy
from harness.validators.schematron import SchematronEngine
from harness.validators.vihf import (
    VIHF_STRUCTURE,
    SignatureCache,
    Strictness,
    VihfPolicy,
    check_vihf,
    structure_finding,
    structure_mismatch,
)
from harness.validators.xds_metadata import ValueSets
from mock_services.dmp.faults import FAULT_SOAP, FAULT_TIMEOUT, FAULTS
from mock_services.dmp.settings import DmpSettings
from mock_services.dmp.soap import fault_bytes, read_body
from mock_services.dmp.store import Authorisation, DmpState, DmpStore, PersonDmp
from mock_services.dmp.transactions import ITI18, ITI41, ITI43, ITI57, OPERATIONS, TD02, Caller, Reply, Transactions

BASE_PATH = "/si-dmp-server/v2/services"
# Test-PKI organisation certificates whose role is another service's (INSi automated / manual calls)
NON_DMP_CERTIFICATE_PREFIXES = ("INSI-",)
ENDPOINT_ACTIONS = {
    "repository": (ITI41, ITI43),
    "registry": (ITI18, ITI57),
    "patients": (TD02,),
}


class DMPSimulator(Simulator):
    name = "dmp"
    title = "DMP (XDS.b, SOAP 1.2 + MTOM, VIHF)"
    http_error_shape = "soap12"
    fault_catalogue = catalogue_of(FAULTS)
    # taken with the structure of the client certificate (and the feed's with its patient): they may be aimed at
    # one test session
    session_faults = frozenset(catalogue_of(FAULTS))
    repository_unique_id = "1.2.250.1.213.4.1.1.2"  # the simulator's repositoryUniqueId (fictitious)

    def __init__(self, ctx: SimulatorContext) -> None:
        super().__init__(ctx)
        settings = DmpSettings.from_mapping(ctx.settings)
        self.store = DmpStore(self._initial_persons(dict(settings.persons)), state=ctx.state, evidence=ctx.journal)
        self.limits = SoapLimits(max_request_bytes=settings.max_request_bytes)
        self.require_client_certificate = settings.require_client_certificate
        self.vihf_policy = VihfPolicy(strictness=Strictness(settings.vihf))
        # IHE ITI TF-2b §3.41.4.1.3: Provide and Register shall use MTOM/XOP; "lenient" answers with a warning
        self.mtom_policy = Strictness(settings.mtom)
        self.production_ins = settings.production_ins
        # Every ESSMS of the test data gets its organisation certificate (CN ESSMS-<FINESS>, OU 1<FINESS>): the
        # structure the DMP authenticates is the one the TLS certificate names.
        ensure_establishment_certificates(ctx.pki, [e.finess for e in ctx.testdata.establishments])
        self.cda_schema = CdaSchema(settings.cda_xsd_dir) if settings.cda_xsd_dir else None
        self.schematron = SchematronEngine(settings.schematron_dir) if settings.schematron_dir else None
        jdv = settings.value_sets_dir
        self.value_sets = ValueSets(jdv) if jdv and jdv.is_dir() else None
        self.anchors: list[x509.Certificate] = [ctx.pki.intermediate.cert, ctx.pki.root.cert]
        self.signatures = SignatureCache()
        self.transactions = Transactions(self)

    @property
    def iti41_policy(self) -> Iti41Policy:
        """The settings the ITI-41 checks of :mod:`harness.validators.iti41` read (built per request: the
        production-INS policy may change during a run)."""
        return Iti41Policy(
            cda_schema=self.cda_schema,
            schematron=self.schematron,
            value_sets=self.value_sets,
            mtom=self.mtom_policy,
            production_ins=self.production_ins,
            anchors=self.anchors,
        )

    def _initial_persons(self, overrides: dict[str, Any]) -> list[PersonDmp]:
        persons = {(p.ins.value, p.ins.oid): PersonDmp(p.ins.value, p.ins.oid) for p in self.ctx.testdata.persons}
        for key, conf in overrides.items():
            ins = self._ins(key)
            persons[(ins.value, ins.oid)] = PersonDmp(
                ins.value,
                ins.oid,
                DmpState(conf.get("state", "active")),
                Authorisation(conf.get("authorisation", "VALIDE")),
            )
        return list(persons.values())

    def _ins(self, ins: INS | str) -> INS:
        """An INS given as such, as ``value^^^&oid&ISO^NH``, or as the value of a test person (their OID)."""
        if isinstance(ins, INS):
            return ins
        if "^" in ins:
            return parse_xds_patient_id(ins)
        known = next((p.ins for p in self.ctx.testdata.persons if p.ins.value == ins), None)
        return known or parse_ins(ins, OID_INS_NIR_TEST)

    # public controls for scenario steps ---------------------------------------------------------
    def set_person(
        self, ins: INS | str, *, state: DmpState | None = None, authorisation: Authorisation | None = None
    ) -> PersonDmp:
        """Put the person's DMP in a state (absent / active / closed) and set the structure's authorisation. The
        person is the (value, OID) pair: a bare value means the test person holding it (else the test NIR OID)."""
        return self.store.set_person(self._ins(ins), state=state, authorisation=authorisation)

    # HTTP ----------------------------------------------------------------------------------------
    def http_app(self) -> Starlette:
        routes = [Route(f"{BASE_PATH}/{name}", self._endpoint(name), methods=["POST"]) for name in ENDPOINT_ACTIONS]
        return Starlette(routes=routes)

    def http_endpoints(self) -> dict[str, str]:
        return {name: f"{BASE_PATH}/{name}" for name in ENDPOINT_ACTIONS}

    def _endpoint(self, name: str):  # noqa: ANN202
        async def handle(request: Request) -> Response:
            return await self._serve(request, name)

        return handle

    async def start(self) -> dict[str, str]:
        # One worker thread per simulator: parsing and validation run off the shared event loop.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dmp")
        return {}

    async def stop(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _serve(self, request: Request, endpoint: str) -> Response:
        cert = client_certificate(request.scope)  # parsed once per connection (harness.host.asgi_tls)
        loop = asyncio.get_running_loop()
        executor = getattr(self, "_executor", None)
        refusal = self._certificate_refusal(cert)
        if refusal is not None:  # the client is known before its body is read (issue 15 item 6): none is read
            reply = await loop.run_in_executor(executor, self._fault, refusal, endpoint, None, cert)
            return _response(replace(reply, headers={**reply.headers, "Connection": "close"}))
        try:
            body = await read_body(request.headers, request.stream(), self.limits)
        except SoapFault as fault:
            reply = await loop.run_in_executor(executor, self._fault, fault, endpoint, None, cert)
            return _response(reply)
        content_type = request.headers.get("content-type", "")
        timeout = self.ctx.take_fault(FAULT_TIMEOUT, essms=certificate_finess(cert))
        if timeout is not None:
            seconds = float(timeout.params.get("seconds", 30))
            await loop.run_in_executor(executor, self._record_timeout, cert, seconds)
            await asyncio.sleep(seconds)
            return Response(status_code=504)
        return _response(await loop.run_in_executor(executor, self._handle, content_type, body, endpoint, cert))

    def _handle(self, content_type: str, body: bytes, endpoint: str, cert: x509.Certificate | None) -> Reply:
        """Parse, check transport and security, run the transaction (journal first), build the reply."""
        soap: SoapRequest | None = None
        try:
            soap = parse_soap_request(content_type, body, self.limits)
            addressing = addressing_fault(soap, ENDPOINT_ACTIONS[endpoint], endpoint)
            if addressing is not None:
                raise addressing
            fault = self.ctx.take_fault(FAULT_SOAP, essms=certificate_finess(cert))
            if fault is not None:
                raise SoapFault(
                    str(fault.params.get("code", "Receiver")),
                    str(fault.params.get("reason", "erreur simulée du DMP")),
                    error_code="SIMULATED-FAULT",
                )
            return self._dispatch(soap, Caller(certificate_cn=_cn(cert), certificate_structure=_ou(cert)))
        except SoapFault as fault:
            return self._fault(fault, endpoint, soap, cert)

    def _certificate_refusal(self, cert: x509.Certificate | None) -> SoapFault | None:
        """The fault for a TLS client certificate the DMP does not accept (none when required, an INSi one), checked
        before the request's body is read."""
        if self.require_client_certificate and cert is None:
            return SoapFault(
                "Sender",
                "aucun certificat client d'organisation présenté (TLS mutuel requis)",
                subcode="wsse:FailedAuthentication",
                error_code="TLS-CLIENT-CERT",
            )
        if cert is not None and _cn(cert) and str(_cn(cert)).upper().startswith(NON_DMP_CERTIFICATE_PREFIXES):
            return SoapFault(
                "Sender",
                f"certificat {_cn(cert)} réservé au téléservice INSi : le DMP attend le certificat "
                "d'organisation de la structure (ESSMS)",
                subcode="wsse:FailedAuthentication",
                error_code="TLS-CERT-ROLE",
            )
        return None

    def _record_timeout(self, cert: x509.Certificate | None, seconds: float) -> None:
        self.ctx.record(
            "soap.request",
            Outcome.REJECTED,
            actor=_cn(cert),
            error_code="SIMULATED-TIMEOUT",
            error_message=f"pas de réponse avant {seconds} s (panne simulée)",
        )

    def _dispatch(self, soap: SoapRequest, caller: Caller) -> Reply:
        caller.vihf = check_vihf(
            soap.security, anchors=self.anchors, policy=self.vihf_policy, cache=self.signatures
        )  # real time
        vihf_errors = [f for f in caller.vihf.findings if f.severity.value == "error"]
        if vihf_errors:
            raise SoapFault(
                "Sender",
                "VIHF refusé: " + "; ".join(f"{f.code}: {f.message}" for f in vihf_errors),
                subcode="wsse:InvalidSecurity" if caller.vihf.present else "wsse:SecurityTokenUnavailable",
                error_code=vihf_errors[0].code,
                findings=caller.vihf.findings,
            )
        self._check_identity_chain(caller)
        raw = soap.raw
        payload_type = "multipart/related" if soap.mtom else "application/soap+xml"
        handlers = {
            ITI41: self.transactions.provide_and_register,
            ITI18: self.transactions.stored_query,
            ITI43: self.transactions.retrieve,
            ITI57: self.transactions.update,
            TD02: self.transactions.test_existence,
        }
        return handlers[soap.action or ""](soap, caller, raw, payload_type)

    def _check_identity_chain(self, caller: Caller) -> None:
        """One structure per request: the TLS client certificate (OU ``1`` + FINESS), the certificate that signed the
        VIHF and the VIHF ``Identifiant_Structure`` must name the same structure (DMP integration guide, VIHF
        indirect authentication); a mismatch is the VIHF security fault."""
        detail = structure_mismatch(caller.vihf, self.vihf_policy, certificate_structure=caller.certificate_structure)
        if detail is not None:
            raise SoapFault(
                "Sender",
                f"VIHF refusé: la structure authentifiée n'est pas la même partout ({detail})",
                subcode="wsse:InvalidSecurity",
                error_code=VIHF_STRUCTURE,
                findings=[structure_finding(detail)],
            )

    def _fault(self, fault: SoapFault, endpoint: str, soap: SoapRequest | None, cert: x509.Certificate | None) -> Reply:
        operation = OPERATIONS.get(soap.action or "", "soap.request") if soap else "soap.request"
        self.ctx.record(
            operation,
            Outcome.REJECTED,
            actor=_cn(cert),
            error_code=fault.error_code,
            error_message=fault.reason,
            payload=soap.raw if soap else None,
            payload_type="application/soap+xml" if soap else None,
            details={
                "endpoint": endpoint,
                "soap_fault": fault.code,
                "subcode": fault.subcode,
                "findings": [f.to_dict() for f in fault.findings],
            },
        )
        # An oversized body is not read to its end: close the connection instead of draining it.
        headers = {"Connection": "close"} if fault.error_code == "HTTP-TOO-LARGE" else {}
        return Reply(
            fault_bytes(fault, soap.message_id if soap else None),
            "application/soap+xml; charset=UTF-8",
            fault.http_status,
            headers,
        )


def _response(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type, headers=reply.headers or None)


def _cn(cert: x509.Certificate | None) -> str | None:
    if cert is None:
        return None
    values = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _ou(cert: x509.Certificate | None) -> str | None:
    if cert is None:
        return None
    values = cert.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(values[0].value) if values else None
