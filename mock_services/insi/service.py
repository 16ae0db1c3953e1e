"""The INSi teleservice endpoint: ``POST /insi/lps`` on the shared HTTPS port (mutual TLS), SOAP 1.2.

Behaviour (WSDL ``DESIR_ICIR_EXP_1.5.0``, operation ``rechercherInsAvecTraitsIdentite``; the same operation serves
the *verification* of an INS the DUI already holds: it re-sends the identity's complete traits and compares the INS
returned). Each request is decided in this order, and every outcome — answer or fault — is committed to the
journal before the reply is sent (with a SQLite journal, decided on the event loop and committed with the other
requests of the same loop turn, :class:`~harness.core.group_commit.GroupCommit`; in a worker thread otherwise):

1. a fault injected by the scenario (``insi.indisponible``: ``env:Receiver`` / ``siram_40`` / ``insi_102`` with
   HTTP 500, or a bare HTTP 503 with ``{"mode": "http"}``);
2. the client certificate of the TLS connection: its CN must be ``INSI-AUTO`` or ``INSI-MANU`` (``desir_560``),
   checked before the body is read (an unknown caller's body is never read: ``Connection: close``);
3. the HTTP request: body size (HTTP 413); a SOAP 1.1 envelope gets a SOAP 1.1 ``VersionMismatch`` fault (``text/xml``,
   HTTP 500, ``Upgrade`` header naming SOAP 1.2: SOAP 1.2 Part 1 §5.4.7 and appendix A); otherwise the media type
   must be ``application/soap+xml`` (HTTP 415);
4. the SOAP request (:func:`harness.validators.insi.parse_request`): XML safety, SOAP 1.2 envelope, the
   ``ContexteBAM`` / ``ContexteLPS`` headers, the body ``RECSANSVITALE`` and its traits — harness faults;
5. the software authorisation number ``ContexteLPS/LPS/IDAM`` (settings ``authorised_idam``): ``desir_550``;
6. a CNAM fault injected by the scenario (``insi.faute`` ``{"code": "desir_550"}``...);
7. the search in the identity base (:mod:`mock_services.insi.identities`): ``RESULTAT`` CR 00 / 01 / 02.

``insi.delai`` (``{"seconds": 12}``) delays the answer after the journal commit (a DUI timeout test).

SOAP faults go with HTTP 500, ``env:Sender`` ones included, as the CNAM service does (SOAP 1.2 Part 2 §7.5.2.2 would
give 400): public clients tested against the CNAM qualification platform read an INSi fault only from a 500 (see
``docs/specs/insi.md``, "Request checks and faults").
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from harness.core.group_commit import GroupCommit
from harness.core.journal import RESPONSE_DIGEST, Exchange, Outcome, SQLiteJournal, payload_digest
from harness.core.settings import read_settings
from harness.host.asgi_tls import client_common_name
from harness.host.simulator import SimulatorContext
from harness.validators.insi import InsiRequest, parse_request
from mock_services.insi.faults import FAULT_DELAY, FAULT_SOAP, FAULT_UNAVAILABLE
from mock_services.insi.identities import (
    Identity,
    IdentityBase,
    build_identity_base,
)
from mock_services.insi.soap import (
    CONTENT_TYPE,
    KNOWN_FAULTS,
    SOAP11_CONTENT_TYPE,
    SOAP11_VERSION_MISMATCH,
    FaultSpec,
    fault_envelope,
    request_fault,
    result_envelope,
    soap11_version_mismatch_envelope,
)

logger = logging.getLogger("socle_harness.insi")

INSI_CERTIFICATE_NAMES = ("INSI-AUTO", "INSI-MANU")
REFERENCE_DUI_IDAM = "SOCLE-HARNESS-DUI-REF"  # the IDAM the built-in reference DUI presents


def idam_remedy(idam: str | None) -> str:
    """What the operator does when the simulator refuses a DUI's IDAM (``desir_550``): declare it in the harness
    configuration (an absent IDAM is the DUI's to send, ContexteLPS/LPS/IDAM of the CNAM cahier des charges)."""
    if not idam:
        return "le DUI n'envoie aucun IDAM (ContexteLPS/LPS/IDAM) : il doit présenter son numéro d'autorisation"
    return (
        f"IDAM « {idam} » non déclaré au simulateur : si c'est le numéro d'autorisation de votre DUI, "
        "déclarez-le dans socle-harness.toml, "
        f"[settings.insi] authorised_idam = [{json.dumps(idam, ensure_ascii=False)}]"
    )


OPERATION_PREFIX = "soap."
DEFAULT_OPERATION = "soap.rechercherInsAvecTraitsIdentite"
EVIDENCE_PAYLOAD_BYTES = 64 * 1024  # what is kept of an oversized request
ANSWER_CACHE_SIZE = 4096  # answers kept per simulator (issue 18: built once per identity, not per search)
MEDIA_TYPE_CACHE_SIZE = 4096  # parsed Content-Types kept per simulator (a DUI sends the same one each time)


@dataclass(frozen=True)
class InsiSettings:
    """``[settings.insi]`` of the harness configuration."""

    authorised_idam: tuple[str, ...] = (REFERENCE_DUI_IDAM,)  # "*" accepts any IDAM
    qualification_identities: bool = True
    refuse_production_ins: bool = True
    synthetic_identities: int = 200
    seed: int = 20240101
    max_request_bytes: int = 256 * 1024
    max_delay_seconds: float = 120.0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> InsiSettings:
        """Typed read of the table (:func:`harness.core.settings.read_settings`; one IDAM may be written as a
        string), bounds clamped."""
        idam = raw.get("authorised_idam")
        settings = read_settings(cls, {**raw, "authorised_idam": [idam]} if isinstance(idam, str) else raw)
        return replace(
            settings,
            synthetic_identities=max(0, min(settings.synthetic_identities, 100_000)),
            max_request_bytes=max(4096, settings.max_request_bytes),
        )


@dataclass
class Reply:
    """What the handler decided: status, headers and body, the journal row to commit before sending them, and a
    delay to apply after that commit."""

    status: int
    body: bytes
    exchange: Exchange
    media_type: str = CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def content_type_of(scope: Scope) -> str:
    """The request's Content-Type, ``""`` without one: the first ``content-type`` header, as
    ``Request.headers.get`` reads it (ASGI header names are lower case), without building the headers mapping."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.decode("latin-1")
    return ""


def _media_type(content_type: str) -> tuple[str, str | None]:
    """The media type of a Content-Type (lower case) and its ``action`` parameter (SOAP 1.2 HTTP binding)."""
    main, *params = content_type.split(";")
    parsed: dict[str, str] = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"')
    return main.strip().lower(), parsed.get("action")


class InsiService:
    """The ASGI side of the INSi simulator (one per simulator instance: no shared state between runs)."""

    def __init__(self, ctx: SimulatorContext, settings: InsiSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self._base: IdentityBase | None = None
        self._base_lock = threading.Lock()
        self._essms_by_emitter = {e.finess: e.finess for e in ctx.testdata.establishments}
        self._essms_by_emitter.update({m.address.casefold(): m.finess for m in ctx.testdata.mailboxes if m.finess})
        # a local (SQLite) journal: decide on the event loop and share the commit of the requests of one loop turn
        # (issue 18: no worker thread taking the GIL in turn with the loop); a remote one (PostgreSQL: a network
        # round trip per commit, and the fault board's log) keeps the worker thread, not to stall the loop
        self.groups = GroupCommit(ctx.record_many) if isinstance(ctx.journal, SQLiteJournal) else None
        # what the answer of a search is, by CR and identity (the base does not change once built)
        self._answers: dict[tuple[str, int], _Answer] = {}
        self._media_types: dict[str, tuple[str, str | None]] = {}  # a DUI sends the same Content-Type each time

    # ------------------------------------------------------------------------------------------- state

    @property
    def base(self) -> IdentityBase:
        """The identity base, built on first use (Faker is only imported then)."""
        with self._base_lock:
            if self._base is None:
                self._base = build_identity_base(
                    self.ctx.testdata,
                    qualification=self.settings.qualification_identities,
                    refuse_production_ins=self.settings.refuse_production_ins,
                    synthetic=self.settings.synthetic_identities,
                    seed=self.settings.seed,
                )
                for reason in self._base.refused:
                    logger.warning("INSi: identité refusée (OID de production) : %s", reason)
            return self._base

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/lps", self.endpoint, methods=["POST"])])

    # ------------------------------------------------------------------------------------------- HTTP

    async def endpoint(self, request: Request) -> Response:
        client_cn = client_common_name(request.scope)  # parsed once per connection (harness.host.asgi_tls)
        # the client is known before its body is read: a caller without an INSi certificate gets desir_560 without
        # the server reading (nor holding) a byte of what it sends (issue 15 item 6)
        known = client_cn in INSI_CERTIFICATE_NAMES
        limit = self.settings.max_request_bytes
        chunks: list[bytes] = []
        size = 0
        too_large = False
        if known:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    too_large = True
                    break
                chunks.append(chunk)
        call = InsiCall(
            body=b"".join(chunks),
            size=size,
            too_large=too_large,
            content_type=content_type_of(request.scope),
            client_cn=client_cn,
            tls=bool((request.scope.get("extensions") or {}).get("tls")),
            body_read=known,
        )
        if self.groups is None:
            reply = await asyncio.to_thread(self.handle, call)
        else:
            reply = await self.handle_on_loop(call, self.groups)
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        headers = dict(reply.headers)
        if too_large or not known:
            headers["Connection"] = "close"  # the rest of the body was not read
        return Response(reply.body, status_code=reply.status, media_type=reply.media_type, headers=headers)

    # ------------------------------------------------------------------------------------------- decision

    def handle(self, call: InsiCall) -> Reply:
        """Decide, record, and return the reply (in a worker thread: the journal commit blocks)."""
        reply = self.decide(call)
        try:
            self.ctx.commit(reply.exchange)
        except Exception as exc:  # the journal refused the row: answer the internal fault, journaled itself
            reply = self._internal_error(call, exc)
            self.ctx.commit(reply.exchange)
        return reply

    async def handle_on_loop(self, call: InsiCall, groups: GroupCommit) -> Reply:
        """:meth:`handle` on the event loop, its row committed with those of the requests of the same loop turn (one
        SQLite transaction: :class:`~harness.core.group_commit.GroupCommit`), still before the answer is sent."""
        if self._base is None:  # built once, off the loop (Faker)
            await asyncio.to_thread(lambda: self.base)
        reply = self.decide(call)
        failure = await groups.add([reply.exchange])
        if failure is not None:  # the journal refused the row: answer the internal fault, journaled itself
            reply = self._internal_error(call, failure)
            failure = await groups.add([reply.exchange])
            if failure is not None:
                raise failure
        return reply

    def decide(self, call: InsiCall) -> Reply:
        """The reply and its journal row, not yet committed."""
        try:
            return self._decide(call)
        except Exception as exc:  # a simulator bug must neither lose the exchange nor take the service down
            return self._internal_error(call, exc)

    def _internal_error(self, call: InsiCall, exc: BaseException) -> Reply:
        logger.error("INSi: erreur interne", exc_info=exc)
        fault = request_fault("INSI-ERREUR-INTERNE", f"erreur interne du simulateur ({type(exc).__name__})")
        return self._refuse(call, None, fault, {"internal_error": repr(exc)[:500]})

    def _decide(self, call: InsiCall) -> Reply:
        media, action = self._cached_media_type(call.content_type)
        simulated = self.ctx.run.now()
        today = simulated.date() if simulated is not None else None
        request = (
            parse_request(call.body, content_action=action, today=today)
            if call.body_read and not call.too_large
            else InsiRequest()
        )
        # the software and the establishment the request names: a fault aimed at a test session is theirs
        actor, essms = self._who(request, call)
        delay_fault = self.ctx.take_fault(FAULT_DELAY, actor=actor, essms=essms)
        delay = 0.0
        if delay_fault is not None:
            delay = max(0.0, min(float(delay_fault.params.get("seconds", 30.0)), self.settings.max_delay_seconds))
        extra: dict[str, Any] = {"delay_seconds": delay} if delay else {}

        unavailable = self.ctx.take_fault(FAULT_UNAVAILABLE, actor=actor, essms=essms)
        if unavailable is not None:
            extra["fault_injected"] = FAULT_UNAVAILABLE
            if str(unavailable.params.get("mode", "soap")) == "http":
                return self._refuse_http(call, request, 503, "Service Unavailable", extra, delay)
            return self._refuse(call, request, KNOWN_FAULTS["insi_102"], extra, delay)
        if call.client_cn not in INSI_CERTIFICATE_NAMES:
            shown = "aucun certificat client" if call.client_cn is None else f"certificat client CN={call.client_cn}"
            extra["certificate_problem"] = shown
            return self._refuse(call, request, KNOWN_FAULTS["desir_560"], extra, delay)
        if call.too_large:
            fault = request_fault(
                "INSI-XML-TROP-VOLUMINEUX", f"requête de plus de {self.settings.max_request_bytes} octets"
            )
            return self._refuse(call, request, fault, extra, delay)
        if request.soap11:
            # SOAP 1.2 Part 1 §5.4.7 and appendix A: a SOAP 1.2 node that does not process SOAP/1.1 answers a SOAP/1.1
            # message with a SOAP/1.1 VersionMismatch fault (with the Upgrade header), over the SOAP 1.1 binding.
            return self._refuse(call, request, SOAP11_VERSION_MISMATCH, extra, delay)
        if media != "application/soap+xml":
            hint = " (text/xml est le type de SOAP 1.1 ; le service est en SOAP 1.2)" if media == "text/xml" else ""
            fault = request_fault(
                "INSI-CONTENT-TYPE", f"type de contenu {media or '(absent)'!r} : application/soap+xml attendu{hint}"
            )
            return self._refuse(call, request, fault, extra, delay)
        if request.errors:
            first = request.errors[0]
            more = f" (+{len(request.errors) - 1} autre(s))" if len(request.errors) > 1 else ""
            return self._refuse(
                call, request, request_fault(first.code, f"{first.location}: {first.message}{more}"), extra, delay
            )
        lps = request.lps.lps if request.lps is not None else None
        idam = lps.idam if lps is not None else None
        if "*" not in self.settings.authorised_idam and idam not in self.settings.authorised_idam:
            extra["idam_refused"] = idam
            extra["remedy"] = idam_remedy(idam)  # shown in the journal's reason and the scenario's verdict
            return self._refuse(call, request, KNOWN_FAULTS["desir_550"], extra, delay)
        injected = self.ctx.take_fault(FAULT_SOAP, actor=actor, essms=essms)
        if injected is not None:
            code = str(injected.params.get("code", "insi_102"))
            fault = KNOWN_FAULTS.get(code) or request_fault(code, str(injected.params.get("message", "faute simulée")))
            extra["fault_injected"] = f"{FAULT_SOAP}:{code}"
            return self._refuse(call, request, fault, extra, delay)
        if request.operation != "rechercherInsAvecTraitsIdentite" or request.traits is None:
            fault = request_fault(
                "INSI-OPERATION-NON-SIMULEE",
                f"opération {request.operation} non simulée (seule la recherche par traits l'est)",
            )
            return self._refuse(call, request, fault, extra, delay)
        return self._answer(call, request, extra, delay)

    # ------------------------------------------------------------------------------------------- outcomes

    def _common(self, call: InsiCall, request: InsiRequest | None) -> dict[str, Any]:
        details: dict[str, Any] = {
            "client_cn": call.client_cn,
            "tls": call.tls,
            "content_type": call.content_type[:200],
            "request_bytes": call.size,
        }
        if not call.body_read:
            details["body_read"] = False
        if request is None:
            return details
        details["message_id"] = request.message_id
        details["action"] = request.action
        if request.lps is not None:
            lps = request.lps.lps
            details["lps"] = {
                "emetteur": request.lps.emetteur,
                "idam": lps.idam if lps else None,
                "nom": lps.nom if lps else None,
                "version": lps.version if lps else None,
                "instance": lps.instance if lps else None,
            }
        if request.bam is not None:
            details["bam"] = {"emetteur": request.bam.emetteur, "version": request.bam.version}
        if request.traits is not None:
            details["request"] = request.traits.as_dict()
        if request.findings:
            details["findings"] = [f.to_dict(max_message=500) for f in request.findings]
        return details

    def _who(self, request: InsiRequest | None, call: InsiCall) -> tuple[str | None, str | None]:
        """(actor, essms): the software (IDAM/instance) and the establishment named in the contexts' Emetteur."""
        actor = call.client_cn
        essms = None
        if request is not None and request.lps is not None:
            lps = request.lps.lps
            if lps is not None and lps.idam:
                actor = f"{lps.idam[:64]}/{(lps.instance or '')[:64]}"
            for emitter in (request.lps.emetteur, request.bam.emetteur if request.bam else None):
                if emitter:
                    essms = self._essms_by_emitter.get(emitter.strip()) or self._essms_by_emitter.get(
                        emitter.strip().casefold()
                    )
                    if essms:
                        break
        return actor, essms

    def _payload(self, call: InsiCall) -> bytes:
        return call.body[:EVIDENCE_PAYLOAD_BYTES] if call.too_large else call.body

    def _operation(self, request: InsiRequest | None) -> str:
        return OPERATION_PREFIX + request.operation if request is not None and request.operation else DEFAULT_OPERATION

    def _refuse(
        self, call: InsiCall, request: InsiRequest | None, fault: FaultSpec, extra: dict[str, Any], delay: float = 0.0
    ) -> Reply:
        if fault is SOAP11_VERSION_MISMATCH:
            body, media_type = soap11_version_mismatch_envelope(), SOAP11_CONTENT_TYPE
        else:
            media_type = CONTENT_TYPE
            body = fault_envelope(
                fault,
                message_id=request.message_id if request is not None else None,
                not_understood=request.not_understood if request is not None and fault.code == "MustUnderstand" else (),
            )
        actor, essms = self._who(request, call)
        details = {
            **self._common(call, request),
            **extra,
            "fault": {
                "soap_code": f"env:{fault.code}",
                "soap_version": "1.1" if fault is SOAP11_VERSION_MISMATCH else "1.2",
                "subcode": fault.subcode,
                "code": fault.error_code,
                "http_status": fault.http_status,
            },
            **_response(body),
        }
        exchange = self.ctx.exchange(
            self._operation(request),
            Outcome.REJECTED,
            actor=actor,
            essms=essms,
            error_code=fault.error_code,
            error_message=(
                f"env:{fault.code}{'/' + fault.subcode if fault.subcode else ''}: {fault.error_text}"
                + (f" — {extra['remedy']}" if extra.get("remedy") else "")
            )[:1000],
            payload=self._payload(call) or None,
            payload_type="application/soap+xml",
            details=details,
            attachments=(body,),
        )
        return Reply(fault.http_status, body, exchange, media_type=media_type, delay=delay)

    def _refuse_http(
        self, call: InsiCall, request: InsiRequest, status: int, text: str, extra: dict[str, Any], delay: float
    ) -> Reply:
        actor, essms = self._who(request, call)
        exchange = self.ctx.exchange(
            self._operation(request),
            Outcome.REJECTED,
            actor=actor,
            essms=essms,
            error_code=f"HTTP {status}",
            error_message=text,
            payload=self._payload(call) or None,
            payload_type="application/soap+xml",
            details={**self._common(call, request), **extra, "fault": {"http_status": status}},
        )
        return Reply(
            status,
            f"{status} {text}\n".encode(),
            exchange,
            media_type="text/plain",
            headers={"Retry-After": "30"},
            delay=delay,
        )

    def _answer(self, call: InsiCall, request: InsiRequest, extra: dict[str, Any], delay: float) -> Reply:
        assert request.traits is not None
        match = self.base.search(request.traits)
        identity = match.identity
        answer = self._answer_of(match.code, identity)
        body = answer.body
        details = {**self._common(call, request), **extra, "cr": match.code, "candidates": match.candidates}
        if match.trigger:
            details["qualification_trigger"] = match.trigger
        if identity is not None:
            details["ins"] = {
                "value": identity.value,
                "number": identity.number,
                "key": identity.key,
                "oid": identity.oid,
            }
            details["history"] = [
                {"value": h.value, "oid": h.oid, "start": h.start, "end": h.end} for h in identity.history
            ]
            details["tiq"] = {
                "nom_naissance": identity.birth_name,
                "liste_prenoms": identity.first_names,
                "sexe": identity.sex,
                "date_naissance": identity.birth_date,
                "lieu_naissance": identity.birth_place,
            }
            details["identity_source"] = identity.source
            if answer.flags:
                details["identity_flags"] = list(answer.flags)
        details.update(answer.response)
        actor, essms = self._who(request, call)
        exchange = self.ctx.exchange(
            self._operation(request),
            Outcome.ACCEPTED,
            actor=actor,
            essms=essms,
            person=identity.value if identity else None,
            payload=call.body,
            payload_type="application/soap+xml",
            details=details,
            attachments=(body,),
        )
        return Reply(200, body, exchange, delay=delay)

    def _cached_media_type(self, content_type: str) -> tuple[str, str | None]:
        """:func:`_media_type`, kept for the (short) Content-Types seen, :data:`MEDIA_TYPE_CACHE_SIZE` at most."""
        known = self._media_types.get(content_type)
        if known is None:
            known = _media_type(content_type)
            if len(content_type) <= 256 and len(self._media_types) < MEDIA_TYPE_CACHE_SIZE:
                self._media_types[content_type] = known
        return known

    def _answer_of(self, code: str, identity: Identity | None) -> _Answer:
        """The ``RESULTAT`` of CR ``code`` for ``identity``, where the journal finds it and the identity's flags:
        the same for every search that finds it, so built once (:data:`ANSWER_CACHE_SIZE` kept)."""
        key = (code, id(identity))
        cached = self._answers.get(key)
        if cached is not None and cached.identity is identity:
            return cached
        body = result_envelope(code, identity)
        answer = _Answer(identity, body, _response(body), identity.flags if identity is not None else ())
        if len(self._answers) < ANSWER_CACHE_SIZE:
            self._answers[key] = answer
        return answer


@dataclass(frozen=True)
class _Answer:
    """The answer to a search, as :meth:`InsiService._answer_of` keeps it."""

    identity: Identity | None  # kept: the key holds its id
    body: bytes
    response: dict[str, Any]  # _response(body), copied into each row's details
    flags: tuple[str, ...]  # Identity.flags


def _response(body: bytes) -> dict[str, Any]:
    """Where the journal row finds the SOAP answer: in the evidence store by digest (an attachment of the exchange,
    :data:`harness.core.journal.RESPONSE_DIGEST`), not in ``details`` (a 2 KB row per search before): answers to the
    same identity are stored once."""
    return {RESPONSE_DIGEST: payload_digest(body), "response_bytes": len(body)}


@dataclass(frozen=True)
class InsiCall:
    """One request as the endpoint read it: what :meth:`InsiService.decide` needs of the HTTP and TLS layers."""

    body: bytes
    size: int
    too_large: bool
    content_type: str
    client_cn: str | None
    tls: bool
    body_read: bool = True  # False: refused on its certificate before its body was read


__all__ = [
    "INSI_CERTIFICATE_NAMES",
    "REFERENCE_DUI_IDAM",
    "InsiCall",
    "InsiService",
    "InsiSettings",
    "Reply",
    "content_type_of",
    "idam_remedy",
]
