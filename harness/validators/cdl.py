"""Profile rules of the ANS "Cahier de liaison" FHIR guide (``ans.fhir.fr.cdl`` 3.0.0, FHIR R4 4.0.1).

Checked on resources as FHIR JSON dicts (:mod:`harness.fhir` parses JSON and XML), returning findings:

- **CdLDocumentReference** (``cdl-document-reference``): ``type`` 1..1 from JDV_J23 TypeNoteCahierLiaison
  (TRE_R234 TypeNote: DEM-AVIS, GEN, INST, INTERV, OBS — required binding); ``subject`` 1..1 Reference(Patient);
  ``author`` 1..* Reference(Device | RelatedPerson | Patient | Practitioner | PractitionerRole | Organization);
  ``docStatus``, ``authenticator``, ``custodian`` 0..0; ``securityLabel`` 0..1 from JDV_J110
  StatutVisibiliteDocument (the TRE_A07 visibility codes; value set read second-hand: an unknown code is a
  warning); extension ``cdl-ext-is-emergency`` (``isEmergency``) with a ``valueBoolean``; ``content`` with an
  attachment carrying ``data`` or ``url``.
- **CdLBundleCreationNote** / **CdLBundleMAJNote**: ``type = transaction``; exactly one DocumentReference entry,
  ``request.method`` POST (creation) or PUT (update); actor entries (Patient, Practitioner, PractitionerRole,
  Organization, RelatedPerson, Device) POST or PUT (invariant ``req-met-1``); no ``response`` in a request.
- the note's subject Patient follows FR Core (:mod:`harness.validators.frcore`).
"""

from __future__ import annotations

from typing import Any

from harness.fields.fhir_references import references_in
from harness.validators import Finding, Severity, frcore

CANONICAL = "https://interop.esante.gouv.fr/ig/fhir/cdl"
PROFILE_DOCUMENT_REFERENCE = f"{CANONICAL}/StructureDefinition/cdl-document-reference"
PROFILE_BUNDLE_CREATION = f"{CANONICAL}/StructureDefinition/cdl-bundle-creation-note"
EXT_IS_EMERGENCY = f"{CANONICAL}/StructureDefinition/cdl-ext-is-emergency"
IMPLEMENTATION_GUIDE = f"{CANONICAL}/ImplementationGuide/ans.fhir.fr.cdl"

TRE_R234 = "https://mos.esante.gouv.fr/NOS/TRE_R234-TypeNote/FHIR/TRE-R234-TypeNote"
TRE_R234_OID = "urn:oid:1.2.250.1.213.1.1.4.334"
JDV_J23_OID = "urn:oid:1.2.250.1.213.1.1.5.98"  # the guide's search example uses the value set OID as system
#: JDV_J23 TypeNoteCahierLiaison CI-SIS (code -> display).
NOTE_TYPES = {
    "DEM-AVIS": "Demande d'avis",
    "GEN": "Note générale",
    "INST": "Instruction",
    "INTERV": "Note d'intervention",
    "OBS": "Note d'observation",
}
TRE_A07 = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument"
TRE_A07_OID = "urn:oid:1.2.250.1.213.1.1.4.13"
#: JDV_J110 StatutVisibiliteDocument CI-SIS: the TRE_A07 codes (as used by the DMP; read second-hand).
VISIBILITY_CODES = {
    "MASQUE_PS": "Masqué aux professionnels de santé",
    "INVISIBLE_PATIENT": "Non visible par le patient",
    "INVISIBLE_REPRESENTANTS_LEGAUX": "Non visible par les représentants légaux du patient",
    "CONNEXION_SECRETE": "Connexion secrète",
}
AUTHOR_TYPES = ("Device", "RelatedPerson", "Patient", "Practitioner", "PractitionerRole", "Organization")
ACTOR_TYPES = ("Patient", "Practitioner", "PractitionerRole", "Organization", "RelatedPerson", "Device")


def _type_of(reference: Any) -> str | None:
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if isinstance(ref, str):
        parts = [p for p in ref.split("/_history/")[0].split("/") if p]
        if len(parts) >= 2 and parts[-2][:1].isupper():
            return parts[-2]
        if ref.startswith("urn:uuid:"):
            return reference.get("type") or "urn:uuid"
    return reference.get("type") if isinstance(reference.get("type"), str) else None


def is_emergency(note: dict[str, Any]) -> bool | None:
    """The ``isEmergency`` extension value (``None`` when absent)."""
    for ext in note.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == EXT_IS_EMERGENCY and isinstance(ext.get("valueBoolean"), bool):
            return ext["valueBoolean"]
    return None


def note_type(note: dict[str, Any]) -> str | None:
    """The JDV_J23 code of a note's type (``None`` when absent or outside the value set)."""
    for coding in (note.get("type") or {}).get("coding") or []:
        if (
            isinstance(coding, dict)
            and coding.get("system") in (TRE_R234, TRE_R234_OID, JDV_J23_OID)
            and coding.get("code") in NOTE_TYPES
        ):
            return coding["code"]
    return None


def visibility(note: dict[str, Any]) -> str | None:
    for label in note.get("securityLabel") or []:
        for coding in (label or {}).get("coding") or []:
            if isinstance(coding, dict) and coding.get("code"):
                return str(coding["code"])
    return None


def check_note(note: dict[str, Any], *, where: str = "DocumentReference") -> list[Finding]:
    """CdLDocumentReference rules (see the module docstring)."""
    out: list[Finding] = []

    def add(code: str, message: str, location: str, severity: Severity = Severity.ERROR) -> None:
        out.append(Finding(code, message, severity, f"{where}.{location}" if location else where))

    codings = [c for c in (note.get("type") or {}).get("coding") or [] if isinstance(c, dict)]
    if not codings:
        add("CDL-TYPE-ABSENT", "type de la note absent (DocumentReference.type 1..1, JDV_J23)", "type")
    elif note_type(note) is None:
        seen = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in codings)
        add(
            "CDL-TYPE-JDV",
            f"type de note hors du jeu de valeurs JDV_J23 TypeNoteCahierLiaison ({seen}); attendu "
            f"{TRE_R234} parmi {', '.join(NOTE_TYPES)}",
            "type",
        )
    elif any(c.get("system") == JDV_J23_OID for c in codings):
        add(
            "CDL-TYPE-SYSTEM",
            f"système {JDV_J23_OID} (OID du jeu de valeurs) au lieu de {TRE_R234}",
            "type",
            Severity.WARNING,
        )
    subject_type = _type_of(note.get("subject"))
    if note.get("subject") is None:
        add("CDL-SUBJECT-ABSENT", "sujet de la note absent (subject 1..1, Reference(FRCorePatient))", "subject")
    elif subject_type not in ("Patient", "urn:uuid"):
        add(
            "CDL-SUBJECT-TYPE",
            f"le sujet doit être un Patient, reçu {subject_type or 'une référence illisible'}",
            "subject",
        )
    authors = note.get("author") or []
    if not authors:
        add("CDL-AUTHOR-ABSENT", "auteur de la note absent (author 1..*)", "author")
    for index, author in enumerate(authors):
        kind = _type_of(author)
        if kind not in (*AUTHOR_TYPES, "urn:uuid"):
            add(
                "CDL-AUTHOR-TYPE",
                f"type d'auteur non permis : {kind or 'référence illisible'} ({', '.join(AUTHOR_TYPES)})",
                f"author[{index}]",
            )
    for element in ("docStatus", "authenticator", "custodian"):
        if note.get(element) is not None:
            add("CDL-INTERDIT", f"{element} interdit dans une note du cahier de liaison (0..0)", element)
    labels = note.get("securityLabel") or []
    if len(labels) > 1:
        add("CDL-SECURITYLABEL-CARD", f"{len(labels)} securityLabel (0..1 au plus)", "securityLabel")
    for index, label in enumerate(labels):
        codings = [c for c in (label or {}).get("coding") or [] if isinstance(c, dict)]
        for coding in codings:
            if coding.get("system") not in (TRE_A07, TRE_A07_OID):
                add(
                    "CDL-SECURITYLABEL-JDV",
                    f"securityLabel hors JDV_J110 (système {coding.get('system')!r})",
                    f"securityLabel[{index}]",
                )
            elif coding.get("code") not in VISIBILITY_CODES:
                add(
                    "CDL-SECURITYLABEL-JDV",
                    f"code de visibilité inconnu {coding.get('code')!r} ({', '.join(VISIBILITY_CODES)})",
                    f"securityLabel[{index}]",
                    Severity.WARNING,
                )
    for index, ext in enumerate(note.get("extension") or []):
        if (
            isinstance(ext, dict)
            and ext.get("url") == EXT_IS_EMERGENCY
            and not isinstance(ext.get("valueBoolean"), bool)
        ):
            add(
                "CDL-URGENCE", "extension isEmergency sans valueBoolean (value[x] 1..1, boolean)", f"extension[{index}]"
            )
    for index, content in enumerate(note.get("content") or []):
        attachment = (content or {}).get("attachment") or {}
        if not attachment.get("data") and not attachment.get("url"):
            add("CDL-CONTENT-VIDE", "pièce jointe sans data ni url", f"content[{index}].attachment", Severity.WARNING)
        elif attachment.get("data") and not attachment.get("contentType"):
            add("CDL-CONTENT-TYPE", "pièce jointe sans contentType", f"content[{index}].attachment", Severity.WARNING)
    if note.get("status") not in ("current", "superseded", "entered-in-error"):
        add("CDL-STATUS", f"statut de note invalide {note.get('status')!r}", "status")
    return out


def check_bundle(bundle: dict[str, Any], *, update: bool | None = None) -> list[Finding]:
    """CdLBundleCreationNote (``update`` False) / CdLBundleMAJNote (``update`` True) rules; ``None`` = either,
    told apart by the DocumentReference entry's method."""
    out: list[Finding] = []
    if bundle.get("type") != "transaction":
        out.append(
            Finding(
                "CDL-BUNDLE-TYPE",
                f"Bundle de note de type {bundle.get('type')!r} (attendu transaction)",
                Severity.ERROR,
                "Bundle.type",
            )
        )
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    notes = [
        (i, e) for i, e in enumerate(entries) if (e.get("resource") or {}).get("resourceType") == "DocumentReference"
    ]
    if len(notes) != 1:
        out.append(
            Finding(
                "CDL-BUNDLE-NOTE",
                f"{len(notes)} DocumentReference dans le Bundle (exactement 1 attendue)",
                Severity.ERROR,
                "Bundle.entry",
            )
        )
    for index, entry in notes:
        method = str((entry.get("request") or {}).get("method", "")).upper()
        wanted = {None: ("POST", "PUT"), False: ("POST",), True: ("PUT",)}[update]
        if method not in wanted:
            out.append(
                Finding(
                    "CDL-BUNDLE-METHOD",
                    f"la note doit être envoyée en {' ou '.join(wanted)}, reçu {method or 'rien'}",
                    Severity.ERROR,
                    f"Bundle.entry[{index}].request.method",
                )
            )
    for index, entry in enumerate(entries):
        rtype = (entry.get("resource") or {}).get("resourceType")
        if rtype == "DocumentReference":
            continue
        method = str((entry.get("request") or {}).get("method", "")).upper()
        if rtype in ACTOR_TYPES:
            if method not in ("POST", "PUT"):
                out.append(
                    Finding(
                        "CDL-REQ-MET-1",
                        f"acteur {rtype} : POST si nouvel élément, PUT s'il existe (reçu {method or 'rien'})",
                        Severity.ERROR,
                        f"Bundle.entry[{index}].request.method",
                    )
                )
        else:
            out.append(
                Finding(
                    "CDL-BUNDLE-RESSOURCE",
                    f"ressource {rtype!r} inattendue dans un Bundle de note",
                    Severity.WARNING,
                    f"Bundle.entry[{index}]",
                )
            )
        if entry.get("response") is not None:
            out.append(
                Finding(
                    "CDL-BUNDLE-RESPONSE",
                    "entry.response interdit dans une requête",
                    Severity.ERROR,
                    f"Bundle.entry[{index}].response",
                )
            )
    return out


def entry_findings(resource: dict[str, Any], *, where: str) -> list[Finding]:
    """The profile rules of one resource of a note Bundle: the note as CdLDocumentReference, the Patient,
    Organization and Practitioner as FR Core — the rules the e-Parcours simulator applies to each entry."""
    rules = {
        "DocumentReference": check_note,
        "Patient": frcore.check_patient,
        "Organization": frcore.check_organization,
        "Practitioner": frcore.check_practitioner,
    }
    rule = rules.get(str(resource.get("resourceType")))
    return rule(resource, where=where) if rule else []


def posted_id_references(bundle: dict[str, Any]) -> list[Finding]:
    """References ``Type/id`` to an entry the same transaction creates by POST under a ``urn:uuid:`` fullUrl.

    FHIR R4 §3.1.0.11.2 (transaction processing): a POST entry gets a new id from the server, and only references
    to the entry's ``fullUrl`` are rewritten to it; §3.3.1 (resolving references in Bundles): a relative reference
    in an entry whose fullUrl is a URN is not resolved inside the Bundle. So ``Patient/<id>`` naming the id a POST
    entry carries does not reach that entry: the server answers 422 « référence non résolue » (``FHIR-REFERENCE``).
    """
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    posted: dict[str, str] = {}
    for entry in entries:
        resource, url = entry.get("resource"), entry.get("fullUrl")
        method = str((entry.get("request") or {}).get("method", "")).upper()
        if isinstance(resource, dict) and method == "POST" and isinstance(url, str) and url.startswith("urn:"):
            posted[f"{resource.get('resourceType')}/{resource.get('id')}"] = url
    out: list[Finding] = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        for path, ref in references_in(resource):
            if ref in posted:
                out.append(
                    Finding(
                        "FHIR-REFERENCE",
                        f"référence non résolue : {ref} — l'entrée {posted[ref]} est créée par POST et reçoit un "
                        f"nouvel id ; la référencer par son fullUrl ({posted[ref]})",
                        Severity.ERROR,
                        f"Bundle.entry[{index}].resource.{path}",
                    )
                )
    return out


def check_transaction(bundle: dict[str, Any], *, update: bool | None = None) -> list[Finding]:
    """A note Bundle read as the e-Parcours service receives it: the Bundle profile (:func:`check_bundle`), the
    profile rules of every entry (:func:`entry_findings`) and the references that the transaction cannot resolve
    (:func:`posted_id_references`) — every finding, where the service stops at the first failing entry."""
    out = check_bundle(bundle, update=update)
    for index, entry in enumerate(bundle.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            out.extend(entry_findings(resource, where=f"Bundle.entry[{index}].resource"))
    return out + posted_id_references(bundle)
