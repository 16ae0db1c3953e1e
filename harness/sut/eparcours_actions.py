"""e-Parcours actions of the reference DUI: the cahier de liaison (ANS ``ans.fhir.fr.cdl`` 3.0.0, FHIR R4).

What a conformant DUI does, as a content creator and consumer of the platform's cahier de liaison:

- write a note: a CdLDocumentReference (``type`` from JDV_J23, ``isEmergency`` extension, optional visibility
  ``securityLabel``, text attachment) whose subject is the person (FR Core Patient with the INS) and whose author is
  the professional's PractitionerRole at the ESSMS — in one transaction Bundle (actors ``POST`` with
  ``ifNoneExist``), or RESTful (find or create each actor, then ``POST DocumentReference``);
- update its note with ``PUT`` and ``If-Match`` set to the version it last saw; on 412 it re-reads the note and
  tells its user that the note changed meanwhile (no blind overwrite);
- read the cahier: search the person's notes by INS (``patient.identifier``), with ``_include`` of subjects and
  authors, then read each note; urgent notes (``isEmergency``) are flagged to the user.

Defects of the faulty DUI for this capability are declared here and checked with ``self.has(...)``.
"""

from __future__ import annotations

import base64
import ssl
import uuid
from datetime import UTC, datetime
from typing import Any

from harness.fields.testdata import Establishment, Person
from harness.sut.base import (
    ActionResult,
    ActionStatus,
    CdlNotePost,
    CdlNotesRead,
    CdlNoteUpdate,
    Defect,
    SutEnvironment,
)
from harness.sut.documents import AUTHOR, author_id
from harness.sut.fhir_client import FhirClient, organisation_certificate

EPARCOURS_DEFECTS = (
    Defect("note-type-hors-jdv", "type de note codé avec une nomenclature locale au lieu du JDV_J23 (TRE_R234)"),
    Defect("ignore-urgence", "ne signale pas à l'utilisateur les notes urgentes (extension isEmergency)"),
    Defect("sans-if-match", "met à jour une note sans If-Match : écrase les modifications faites entre-temps"),
    Defect("recherche-sans-patient", "recherche les notes sans critère sur l'INS de la personne"),
)

CDL = "https://interop.esante.gouv.fr/ig/fhir/cdl"
PROFILE_NOTE = f"{CDL}/StructureDefinition/cdl-document-reference"
EXT_URGENT = f"{CDL}/StructureDefinition/cdl-ext-is-emergency"
TRE_R234 = "https://mos.esante.gouv.fr/NOS/TRE_R234-TypeNote/FHIR/TRE-R234-TypeNote"
TRE_A07 = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument"
TRE_G15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
FINESS = "http://finess.esante.gouv.fr"
ROLE_SYSTEM = "https://dui-reference.socle-harness.test/practitioner-role"
NOTE_ID_SYSTEM = "urn:ietf:rfc:3986"
NOTE_DISPLAY = {
    "DEM-AVIS": "Demande d'avis",
    "GEN": "Note générale",
    "INST": "Instruction",
    "INTERV": "Note d'intervention",
    "OBS": "Note d'observation",
}


def _actors(person: Person, establishment: Establishment) -> dict[str, dict[str, Any]]:
    """The note's subject and author as FHIR resources (no ids), with the search that finds each one."""
    family, given, _ = AUTHOR
    idnps = author_id(establishment)
    return {
        "Patient": {
            "resourceType": "Patient",
            "identifier": [{"use": "official", **person.ins.to_fhir_identifier()}],
            "name": [{"use": "official", "family": person.family, "given": person.given.split()}],
            "gender": "male" if person.sex == "M" else "female",
            "birthDate": person.birth_date.isoformat(),
        },
        "Practitioner": {
            "resourceType": "Practitioner",
            "identifier": [{"system": IDNPS, "value": idnps}],
            "name": [{"family": family, "given": [given]}],
        },
        "Organization": {
            "resourceType": "Organization",
            "identifier": [{"system": FINESS, "value": establishment.finess}],
            "name": establishment.name,
        },
        "PractitionerRole": {
            "resourceType": "PractitionerRole",
            "identifier": [{"system": ROLE_SYSTEM, "value": f"{idnps}@{establishment.finess}"}],
            "active": True,
            "code": [{"coding": [{"system": TRE_G15, "code": "60", "display": "Infirmier"}]}],
        },
    }


def _condition(resource: dict[str, Any]) -> str:
    identifier = resource["identifier"][0]
    return f"identifier={identifier['system']}|{identifier['value']}"


class EparcoursActions:
    """Mixin of :class:`harness.sut.reference.ReferenceDUI`."""

    env: SutEnvironment | None

    def has(self, defect: str) -> bool:  # provided by ReferenceDUI
        raise NotImplementedError

    def tls_context(self, certificate: str | None = None) -> ssl.SSLContext:  # provided by ReferenceDUI
        raise NotImplementedError

    def _cdl_memory(self) -> dict[str, dict[str, Any]]:
        """The notes this DUI wrote: platform id -> {"resource": as last sent/seen, "version": "n"}."""
        memory = getattr(self, "_cdl_notes", None)
        if memory is None:
            memory = {}
            self._cdl_notes = memory
        return memory

    def _cdl_client(self, establishment: Establishment) -> FhirClient | None:
        assert self.env is not None  # noqa: S101
        base = self.env.endpoints.get("eparcours", {}).get("fhir")
        return (
            FhirClient(
                self.env,
                base,
                establishment.finess,
                tls=self.tls_context(organisation_certificate(self.env, establishment.finess)),
            )
            if base
            else None
        )

    def _note(self, action: CdlNotePost, subject: str, author: str) -> dict[str, Any]:
        coding = (
            {
                "system": "https://dui-reference.socle-harness.test/types-transmission",
                "code": "TRANSMISSION",
                "display": "Transmission",
            }
            if self.has("note-type-hors-jdv")
            else {"system": TRE_R234, "code": action.note_type, "display": NOTE_DISPLAY.get(action.note_type, "")}
        )
        now = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
        note: dict[str, Any] = {
            "resourceType": "DocumentReference",
            "meta": {"profile": [PROFILE_NOTE]},
            "extension": [{"url": EXT_URGENT, "valueBoolean": action.urgent}],
            "masterIdentifier": {"system": NOTE_ID_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"},
            "status": "current",
            "type": {"coding": [coding]},
            "subject": {"reference": subject},
            "date": now,
            "author": [{"reference": author}],
            "description": action.text[:80],
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain",
                        "language": "fr",
                        "creation": now,
                        "data": base64.b64encode(action.text.encode("utf-8")).decode("ascii"),
                    }
                }
            ],
        }
        if action.visibility:
            note["securityLabel"] = [{"coding": [{"system": TRE_A07, "code": action.visibility}]}]
        return note

    # -------------------------------------------------------------------------------------------- write
    def cdl_post_note(self, action: CdlNotePost) -> ActionResult:
        client = self._cdl_client(action.establishment)
        if client is None:
            return ActionResult(ActionStatus.FAILED, "plateforme e-Parcours non configurée (point d'accès FHIR absent)")
        with client:
            return self._post_transaction(client, action) if action.transaction else self._post_restful(client, action)

    def _post_transaction(self, client: FhirClient, action: CdlNotePost) -> ActionResult:
        actors = _actors(action.person, action.establishment)
        urls = {name: f"urn:uuid:{uuid.uuid4()}" for name in (*actors, "DocumentReference")}
        actors["PractitionerRole"]["practitioner"] = {"reference": urls["Practitioner"]}
        actors["PractitionerRole"]["organization"] = {"reference": urls["Organization"]}
        note = self._note(action, urls["Patient"], urls["PractitionerRole"])
        entries = [
            {
                "fullUrl": urls["DocumentReference"],
                "resource": note,
                "request": {"method": "POST", "url": "DocumentReference"},
            }
        ]
        entries += [
            {
                "fullUrl": urls[name],
                "resource": resource,
                "request": {"method": "POST", "url": name, "ifNoneExist": _condition(resource)},
            }
            for name, resource in actors.items()
        ]
        reply = client.request("POST", "", resource={"resourceType": "Bundle", "type": "transaction", "entry": entries})
        if not reply.ok:
            return ActionResult(ActionStatus.FAILED, f"note refusée par la plateforme e-Parcours : {reply.problem()}")
        answered = reply.json().get("entry") or []
        if len(answered) != len(entries):
            return ActionResult(
                ActionStatus.FAILED, "réponse de transaction incomplète (une entrée par entrée de la requête attendue)"
            )
        # transaction-response entries come in request order: fullUrl -> the id the platform assigned
        assigned = {
            sent["fullUrl"]: str((got.get("response") or {}).get("location", "")).split("/_history/")[0]
            for sent, got in zip(entries, answered, strict=True)
        }
        assigned = {url: "/".join(location.split("/")[-2:]) for url, location in assigned.items() if location}
        note["subject"] = {"reference": assigned.get(urls["Patient"], note["subject"]["reference"])}
        note["author"] = [{"reference": assigned.get(urls["PractitionerRole"], note["author"][0]["reference"])}]
        response = answered[0].get("response") or {}
        location = str(response.get("location", ""))
        if "DocumentReference/" not in location:
            return ActionResult(ActionStatus.FAILED, "réponse de transaction sans la note créée")
        return self._remember(note, location, response.get("etag"), action)

    def _post_restful(self, client: FhirClient, action: CdlNotePost) -> ActionResult:
        actors = _actors(action.person, action.establishment)
        ids: dict[str, str] = {}
        for name in ("Patient", "Practitioner", "Organization", "PractitionerRole"):
            resource = actors[name]
            if name == "PractitionerRole":
                resource["practitioner"] = {"reference": f"Practitioner/{ids['Practitioner']}"}
                resource["organization"] = {"reference": f"Organization/{ids['Organization']}"}
            identifier = resource["identifier"][0]
            found = client.request(
                "GET", name, params=[("identifier", f"{identifier['system']}|{identifier['value']}")]
            )
            existing = (
                [
                    e["resource"]
                    for e in found.json().get("entry") or []
                    if (e.get("search") or {}).get("mode") == "match"
                ]
                if found.ok
                else []
            )
            if existing:
                ids[name] = existing[0]["id"]
                continue
            created = client.request("POST", name, resource=resource)
            if not created.ok:
                return ActionResult(ActionStatus.FAILED, f"création de l'acteur {name} refusée : {created.problem()}")
            ids[name] = created.json()["id"]
        note = self._note(action, f"Patient/{ids['Patient']}", f"PractitionerRole/{ids['PractitionerRole']}")
        reply = client.request("POST", "DocumentReference", resource=note)
        if not reply.ok:
            return ActionResult(ActionStatus.FAILED, f"note refusée par la plateforme e-Parcours : {reply.problem()}")
        return self._remember(note, reply.headers.get("location", ""), reply.headers.get("etag"), action)

    def _remember(self, note: dict[str, Any], location: str, etag: str | None, action: CdlNotePost) -> ActionResult:
        parts = location.split("/_history/")[0].rstrip("/").split("/")
        note_id = parts[-1]
        version = (location.split("/_history/")[1] if "/_history/" in location else (etag or "").strip('W/"')) or "1"
        stored = {**note, "id": note_id}
        self._cdl_memory()[note_id] = {
            "resource": stored,
            "version": version,
            "subject": note["subject"],
            "author": note["author"],
        }
        return ActionResult(
            ActionStatus.DONE,
            f"note {action.note_type} écrite dans le cahier de liaison (note {note_id})",
            {"note_id": note_id, "version": version},
        )

    def cdl_update_note(self, action: CdlNoteUpdate) -> ActionResult:
        known = self._cdl_memory().get(action.note_id)
        if known is None:
            return ActionResult(ActionStatus.FAILED, f"note {action.note_id} inconnue de ce DUI")
        client = self._cdl_client(action.establishment)
        if client is None:
            return ActionResult(ActionStatus.FAILED, "plateforme e-Parcours non configurée (point d'accès FHIR absent)")
        resource = dict(known["resource"])
        now = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
        resource["content"] = [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "language": "fr",
                    "creation": now,
                    "data": base64.b64encode(action.text.encode("utf-8")).decode("ascii"),
                }
            }
        ]
        resource["description"] = action.text[:80]
        resource.pop("meta", None)
        headers = {} if self.has("sans-if-match") else {"If-Match": f'W/"{known["version"]}"'}
        with client:
            reply = client.request("PUT", f"DocumentReference/{action.note_id}", resource=resource, headers=headers)
            if reply.status == 412:
                current = client.request("GET", f"DocumentReference/{action.note_id}")
                if current.ok:
                    known["seen"] = current.json()
                return ActionResult(
                    ActionStatus.FAILED,
                    "la note a été modifiée sur la plateforme depuis votre dernière lecture : "
                    "relisez-la avant de la modifier (HTTP 412)",
                    {"conflit": True, "note_id": action.note_id},
                )
            if not reply.ok:
                return ActionResult(ActionStatus.FAILED, f"mise à jour de la note refusée : {reply.problem()}")
        known["resource"], known["version"] = (
            resource,
            (reply.headers.get("etag") or "").strip('W/"') or known["version"],
        )
        return ActionResult(
            ActionStatus.DONE,
            f"note {action.note_id} mise à jour",
            {"note_id": action.note_id, "version": known["version"]},
        )

    # -------------------------------------------------------------------------------------------- read
    def cdl_read_notes(self, action: CdlNotesRead) -> ActionResult:
        client = self._cdl_client(action.establishment)
        if client is None:
            return ActionResult(ActionStatus.FAILED, "plateforme e-Parcours non configurée (point d'accès FHIR absent)")
        params: list[tuple[str, str]] = []
        if not self.has("recherche-sans-patient"):
            identifier = action.person.ins.to_fhir_identifier()
            params.append(("patient.identifier", f"{identifier['system']}|{identifier['value']}"))
        if action.note_type:
            params.append(("type", f"{TRE_R234}|{action.note_type}"))
        if action.since:
            params.append(("date", f"ge{action.since}"))
        params += [
            ("_include", "DocumentReference:subject"),
            ("_include", "DocumentReference:author"),
            ("_sort", "-date"),
        ]
        with client:
            found = client.request("GET", "DocumentReference", params=params)
            if not found.ok:
                return ActionResult(
                    ActionStatus.FAILED, f"recherche dans le cahier de liaison refusée : {found.problem()}"
                )
            entries = [e for e in found.json().get("entry") or [] if isinstance(e, dict)]
            included = {
                f"{e['resource'].get('resourceType')}/{e['resource'].get('id')}": e["resource"]
                for e in entries
                if (e.get("search") or {}).get("mode") == "include" and isinstance(e.get("resource"), dict)
            }
            notes = []
            for entry in entries:
                if (entry.get("search") or {}).get("mode") != "match":
                    continue
                note_id = entry["resource"].get("id")
                read = client.request("GET", f"DocumentReference/{note_id}")
                if not read.ok:
                    return ActionResult(
                        ActionStatus.FAILED, f"lecture de la note {note_id} impossible : {read.problem()}"
                    )
                notes.append(_summary(read.json(), included))
        urgent = [] if self.has("ignore-urgence") else [n["id"] for n in notes if n["urgent"]]
        detail = f"{len(notes)} note(s) dans le cahier de liaison"
        if urgent:
            detail += f" ; URGENT : {len(urgent)} note(s) à traiter en priorité"
        return ActionResult(ActionStatus.DONE, detail, {"notes": notes, "urgentes": urgent})


def _summary(note: dict[str, Any], included: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the DUI shows of a note: type, urgency, text, author, the person's INS (from the included subject)."""
    coding = next(iter((note.get("type") or {}).get("coding") or [{}]), {})
    urgent = any(
        isinstance(e, dict) and e.get("url") == EXT_URGENT and e.get("valueBoolean") is True
        for e in note.get("extension") or []
    )
    text = ""
    for content in note.get("content") or []:
        data = ((content or {}).get("attachment") or {}).get("data")
        if data:
            try:
                text = base64.b64decode(data).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                text = ""
            break
    subject = included.get(str((note.get("subject") or {}).get("reference")), {})
    ins = next(
        (
            i.get("value")
            for i in subject.get("identifier") or []
            if str(i.get("system", "")).startswith("urn:oid:1.2.250.1.213.1.4.")
        ),
        None,
    )
    return {
        "id": note.get("id"),
        "type": coding.get("code"),
        "urgent": urgent,
        "text": text,
        "ins": ins,
        "version": (note.get("meta") or {}).get("versionId"),
        "auteurs": [a.get("reference") for a in note.get("author") or []],
    }
