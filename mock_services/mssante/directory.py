"""The MSSanté test directory of one simulator instance, and its read-only FHIR search endpoint.

The directory starts from the fixtures (``fixtures/mssante/annuaire.json``: PER / ORG / APP / CAB mailboxes, plus
the persons' Mon espace santé mailboxes ``<INS>@patient.mssante.fr``) and scenarios may add mailboxes to it
(:meth:`MailboxDirectory.add`); the additions live as long as the simulator instance (one run).

``GET /mssante/fhir/PractitionerRole`` answers like the Annuaire Santé FHIR API (ANS IG "Annuaire Santé"
1.1.0): search parameters ``mailbox-mss`` (string on ``telecom.value``, modifiers ``:exact`` and
``:contains``; without modifier a case-insensitive "starts with", FHIR R4 string search) and ``mailbox-mss-type``
(token on the ``type`` sub-extension of ``as-ext-mailbox-mss-metadata``: ``ORG`` / ``APP`` / ``PER`` / ``CAB``),
comma-separated values meaning OR; ``_count``. The answer is a FHIR R4 ``Bundle`` of type ``searchset`` (JSON).
Unknown parameters give ``400`` with an ``OperationOutcome`` (FHIR R4 §3.1.1.5: a server may refuse them).
Patient mailboxes are not published in the Annuaire Santé and are not returned.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness.core.journal import Outcome
from harness.fields.testdata import Mailbox, MailboxType
from harness.host.simulator import SimulatorContext

META_EXTENSION = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-mailbox-mss-metadata"
PUBLISHED_TYPES = (MailboxType.PER, MailboxType.ORG, MailboxType.APP, MailboxType.CAB)
FHIR_JSON = "application/fhir+json"
MAX_COUNT = 100


class MailboxDirectory:
    """The directory: fixtures plus the mailboxes scenarios added. Thread-safe."""

    def __init__(self, ctx: SimulatorContext) -> None:
        self._lock = threading.Lock()
        self._by_address: dict[str, Mailbox] = {m.address.casefold(): m for m in ctx.testdata.mailboxes}

    def get(self, address: str) -> Mailbox | None:
        with self._lock:
            return self._by_address.get(address.strip().strip("<>").casefold())

    def all(self) -> list[Mailbox]:
        with self._lock:
            return list(self._by_address.values())

    def add(self, mailbox: Mailbox) -> Mailbox:
        """Add (or replace) a mailbox for the rest of the run."""
        with self._lock:
            self._by_address[mailbox.address.casefold()] = mailbox
        return mailbox

    def may_send_as(self, login: str, sender: str) -> bool:
        """The authenticated mailbox may send as itself; an APP mailbox also for its establishment's mailboxes."""
        user, mailbox = self.get(login), self.get(sender)
        if user is None or mailbox is None:
            return False
        if user.address.casefold() == mailbox.address.casefold():
            return True
        return user.type is MailboxType.APP and user.finess is not None and user.finess == mailbox.finess

    def for_professional(self, id_nat_ps: str) -> list[Mailbox]:
        """The personal (PER) mailboxes of a professional, by idNat_PS (``8`` + RPPS) or RPPS."""
        wanted = {id_nat_ps, id_nat_ps[1:] if id_nat_ps.startswith("8") else "8" + id_nat_ps}
        return [m for m in self.all() if m.type is MailboxType.PER and m.rpps in wanted]

    def search(self, addresses: Iterable[tuple[str, str]] = (), types: Iterable[str] = ()) -> list[Mailbox]:
        """Published mailboxes matching every criterion. ``addresses`` holds ``(modifier, value)`` pairs whose
        values are OR-ed; ``types`` are OR-ed."""
        wanted_types = {t.strip().upper() for t in types if t.strip()}
        matchers = list(addresses)
        found = []
        for mailbox in self.all():
            if mailbox.type not in PUBLISHED_TYPES:
                continue
            if wanted_types and str(mailbox.type) not in wanted_types:
                continue
            if matchers and not any(_matches(mailbox.address, modifier, value) for modifier, value in matchers):
                continue
            found.append(mailbox)
        return sorted(found, key=lambda m: m.address.casefold())


def _matches(address: str, modifier: str, value: str) -> bool:
    text, wanted = address.casefold(), value.strip().casefold()
    if modifier == "exact":
        return address == value.strip()
    if modifier == "contains":
        return wanted in text
    return text.startswith(wanted)


def practitioner_role(mailbox: Mailbox, base: str) -> dict[str, Any]:
    """A PractitionerRole carrying one MSSanté mailbox (``telecom`` with the mailbox metadata extension)."""
    rid = "mss-" + uuid.uuid5(uuid.NAMESPACE_URL, mailbox.address.casefold()).hex[:16]
    resource: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": rid,
        "active": True,
        "telecom": [
            {
                "extension": [
                    {
                        "url": META_EXTENSION,
                        "extension": [
                            {"url": "type", "valueString": str(mailbox.type)},
                            {"url": "description", "valueString": mailbox.name},
                        ],
                    }
                ],
                "system": "email",
                "value": mailbox.address,
            }
        ],
    }
    if mailbox.rpps:
        resource["practitioner"] = {
            "identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": mailbox.rpps},
            "display": mailbox.name,
        }
    if mailbox.finess:
        resource["organization"] = {
            "identifier": {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1" + mailbox.finess},
            "display": mailbox.name,
        }
    return {"fullUrl": f"{base}/PractitionerRole/{rid}", "resource": resource, "search": {"mode": "match"}}


def _outcome(status: int, code: str, text: str) -> JSONResponse:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


class DirectoryApi:
    """The ASGI routes of the directory lookup (mounted under ``/mssante``)."""

    def __init__(self, ctx: SimulatorContext, directory: MailboxDirectory) -> None:
        self.ctx = ctx
        self.directory = directory

    def routes(self) -> list[Route]:
        return [Route("/fhir/PractitionerRole", self.practitioner_roles, methods=["GET"])]

    async def practitioner_roles(self, request: Request) -> Response:
        addresses: list[tuple[str, str]] = []
        types: list[str] = []
        count = 20
        for name, value in request.query_params.multi_items():
            base, _, modifier = name.partition(":")
            if len(value) > 512:
                return self._refuse(request, 400, "too-costly", f"valeur trop longue pour {name}")
            if base == "mailbox-mss" and modifier in ("", "exact", "contains"):
                addresses.extend((modifier, v) for v in value.split(",") if v.strip())
            elif base == "mailbox-mss-type" and modifier == "":
                types.extend(v.rpartition("|")[2] for v in value.split(","))
            elif name == "_count" and value.isdigit():
                count = min(int(value), MAX_COUNT)
            else:
                return self._refuse(request, 400, "not-supported", f"paramètre de recherche non pris en charge: {name}")
        found = self.directory.search(addresses, types)
        base = self.ctx.http_base + "/fhir"
        bundle = {
            "resourceType": "Bundle",
            "id": uuid.uuid4().hex,
            "type": "searchset",
            "total": len(found),
            "link": [{"relation": "self", "url": str(request.url)}],
            "entry": [practitioner_role(m, base) for m in found[:count]],
        }
        self.ctx.record(
            "fhir.search", Outcome.ACCEPTED, details={"query": str(request.url.query)[:500], "total": len(found)}
        )
        return JSONResponse(bundle, media_type=FHIR_JSON)

    def _refuse(self, request: Request, status: int, code: str, text: str) -> Response:
        self.ctx.record(
            "fhir.search",
            Outcome.REJECTED,
            error_code=str(status),
            error_message=text,
            details={"query": str(request.url.query)[:500]},
        )
        return _outcome(status, code, text)


def mailbox_from_mapping(raw: dict[str, Any]) -> Mailbox:
    """A directory entry from a scenario table row or JSON (``address``, ``type``, ``name``...)."""
    known = {k: raw[k] for k in ("address", "name", "finess", "rpps", "password", "person_ins") if raw.get(k)}
    mailbox = Mailbox(type=MailboxType(str(raw.get("type", "PER")).upper()), **{"name": raw.get("name", ""), **known})
    return replace(mailbox, name=mailbox.name or mailbox.address)
