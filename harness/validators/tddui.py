"""Validation of an ANS "Transfert de données DUI" transaction Bundle, and extraction of the DUI facts.

Specifications followed:
- ANS FHIR implementation guide *Médicosocial - Transfert de données DUI* (package ``ans.fhir.fr.tddui``,
  2.x ballot): TDDUIBundle (``type`` = transaction, every entry ``request.method`` = POST: the guide only allows
  creation), TDDUIPatient / TDDUIPatientINS, TDDUIOrganization (``identifier[idNatSt]`` = ``1`` + FINESS),
  TDDUIEncounterSejour (``period`` = dateEntree / dateSortie, ``serviceProvider`` = the ESSMS),
  TDDUIEncounterEvenement (``period.start``/``end`` 1..1, ``partOf`` = the séjour), TDDUICarePlanProjetPersonnalise
  (statuses ENPREPARATION → draft, ENCOURS → active, ENPAUSE → on-hold, TERMINE → completed). The guide maps
  ``meta.lastUpdated`` to the producer's own dates (``dateModificationEvenement``,
  ``statutProjetPersonnalise.dateStatut``): the facts keep the date **as sent**.
- FHIR R4 (4.0.1) RESTful API, transaction: ``request.url`` of a POST entry is the resource type; entries
  reference each other by ``fullUrl``. Structure and datatypes are checked with the ``fhir.resources`` R4B
  models (R4B is wire-compatible with R4 for these resources); profiles and invariants are checked here.
- Référentiel INS: an INS carries a valid key; test campaigns only accept test identities (OID …4.10/…4.11).

Tolerated with a warning: ``request.url`` set to a profile name (``"TDDUIEncounterSejour"``), as the guide's
published example Bundles do; resources without ``meta.profile`` (the kind is then inferred).
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field
from typing import Any

from harness.fields import dui
from harness.fields.identity import INS_OIDS, InsError, ProductionInsPolicy, parse_ins
from harness.validators import Finding, Severity, production_ins_findings

MAX_BYTES = 50 * 1024 * 1024
PROFILE_BASE = "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/"
PROFILES = {
    "tddui-patient": dui.FactKind.USAGER,
    "tddui-patient-ins": dui.FactKind.USAGER,
    "tddui-encounter-sejour": dui.FactKind.SEJOUR,
    "tddui-encounter-evenement": dui.FactKind.EVENEMENT,
    "tddui-careplan-projet-personnalise": dui.FactKind.PROJET,
}
#: FHIR R4 resource types constrained by the guide's profiles, whose names are "TDDUI" + type + qualifier
#: (``TDDUIEncounterSejour``, ``TDDUITaskTransportUsager``, ``TDDUIPractitionerRole``…): the published examples
#: put these names in ``request.url``.
PROFILED_TYPES = (
    "CarePlan",
    "Consent",
    "DocumentReference",
    "Encounter",
    "Goal",
    "Observation",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "QuestionnaireResponse",
    "RelatedPerson",
    "Schedule",
    "ServiceRequest",
    "Slot",
    "Task",
)


def profile_name_type(url: str) -> str | None:
    """The resource type a TDDUI profile name stands for (``TDDUITaskTransportUsager`` → ``Task``), else None."""
    if not url.startswith("TDDUI"):
        return None
    matches = [t for t in PROFILED_TYPES if url[len("TDDUI") :].startswith(t)]
    return max(matches, key=len) if matches else None


OID_IDNAT_STRUCT = "urn:oid:1.2.250.1.71.4.2.2"  # idNat_Struct: "1" + FINESS
FINESS_SYSTEMS = {"https://finess.esante.gouv.fr", "http://finess.esante.gouv.fr", "urn:oid:1.2.250.1.71.4.2.2.1"}
LOCAL_ID_SYSTEM = "https://identifiant-medicosocial-localusager.esante.gouv.fr"
SEJOUR_SYSTEMS = {
    "https://identifiant-medicosocial-sejour.esante.gouv.fr",
    "https://identifiant-medicosocial-sejour.cnsa.fr",
}
_FINESS_RE = re.compile(r"^\d[\dAB]\d{7}$")
_LOCAL_PREFIX_RE = re.compile(r"^3(\d[\dAB]\d{7})/")  # "3" + FINESS + "/" + local id (TRE_G08 type 3)
_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


@dataclass(frozen=True)
class DuiFact:
    """One fact extracted from a Bundle entry (see :mod:`harness.fields.dui` for the meaning of each field)."""

    kind: dui.FactKind
    essms: str
    person: str
    key: str
    date: str | None
    start: str | None = None
    end: str | None = None
    status: str | None = None
    full_url: str = ""
    profile: str = ""

    def as_details(self) -> dict[str, Any]:
        return {
            dui.FACT: {
                dui.KEY: self.key,
                dui.DATE: self.date,
                dui.START: self.start,
                dui.END: self.end,
                dui.STATUS: self.status,
            },
            dui.FULL_URL: self.full_url,
            dui.PROFILE: self.profile,
        }


@dataclass(frozen=True)
class EntryOutcome:
    """What the transaction-response says for one entry."""

    resource_type: str
    full_url: str


@dataclass(frozen=True)
class TdduiReport:
    findings: tuple[Finding, ...] = ()
    facts: tuple[DuiFact, ...] = ()
    entries: tuple[EntryOutcome, ...] = ()
    essms: tuple[str, ...] = ()
    structural: bool = False  # the refusal is about JSON/FHIR structure (HTTP 400), not content (422)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]


def _day(value: Any, *, end: bool = False) -> str | None:
    """The producer's local calendar date of a FHIR date/dateTime/instant (``YYYY-MM-DD``), as written."""
    if not isinstance(value, str):
        return None
    match = _DATE_RE.match(value)
    if not match:
        return None
    year, month, day = match.group(1), match.group(2), match.group(3)
    if day:
        return f"{year}-{month}-{day}"
    if month:
        if not end:
            return f"{year}-{month}-01"
        return f"{year}-{month}-{calendar.monthrange(int(year), int(month))[1]:02d}"
    return f"{year}-12-31" if end else f"{year}-01-01"


def _profile_kind(resource: dict[str, Any]) -> tuple[dui.FactKind | None, str]:
    for profile in (resource.get("meta") or {}).get("profile") or []:
        if isinstance(profile, str) and profile.startswith(PROFILE_BASE):
            ident = profile[len(PROFILE_BASE) :].split("|")[0]
            if ident in PROFILES:
                return PROFILES[ident], ident
            return None, ident
    return None, ""


def _infer_kind(resource: dict[str, Any]) -> dui.FactKind | None:
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        return dui.FactKind.USAGER
    if rtype == "CarePlan":
        return dui.FactKind.PROJET
    if rtype == "Encounter":
        if resource.get("partOf"):
            return dui.FactKind.EVENEMENT
        systems = {i.get("system") for i in resource.get("identifier") or [] if isinstance(i, dict)}
        if systems & SEJOUR_SYSTEMS or resource.get("serviceProvider"):
            return dui.FactKind.SEJOUR
    return None


def _identifier_key(resource: dict[str, Any], fallback: str) -> str:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("value"):
            return f"{ident.get('system', '')}|{ident['value']}"
    if isinstance(resource.get("identifier"), dict) and resource["identifier"].get("value"):
        ident = resource["identifier"]
        return f"{ident.get('system', '')}|{ident['value']}"
    return fallback


def _finess_of_organization(resource: dict[str, Any]) -> str | None:
    for ident in resource.get("identifier") or []:
        if not isinstance(ident, dict):
            continue
        system, value = ident.get("system"), str(ident.get("value") or "")
        if system == OID_IDNAT_STRUCT and value.startswith("1") and _FINESS_RE.match(value[1:]):
            return value[1:]
        if system in FINESS_SYSTEMS and _FINESS_RE.match(value):
            return value
    return None


class _Bundle:
    """Reference resolution inside one transaction Bundle (by ``fullUrl``)."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.by_url: dict[str, dict[str, Any]] = {}
        for entry in entries:
            url, resource = entry.get("fullUrl"), entry.get("resource")
            if isinstance(url, str) and isinstance(resource, dict):
                self.by_url[url] = resource

    def resolve(self, reference: Any) -> dict[str, Any] | None:
        ref = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(ref, str) or not ref:
            return None
        if ref in self.by_url:
            return self.by_url[ref]
        for url, resource in self.by_url.items():  # relative "Patient/x" against absolute fullUrls
            if url.endswith("/" + ref) or (
                ref.count("/") == 1 and f"{resource.get('resourceType')}/{resource.get('id')}" == ref
            ):
                return resource
        return None


def _person_key(
    patient: dict[str, Any], where: str, findings: list[Finding], policy: ProductionInsPolicy = ProductionInsPolicy.WARN
) -> str | None:
    """The INS (15 characters) when the DUI sent one, else the local identifier."""
    local = None
    for ident in patient.get("identifier") or []:
        if not isinstance(ident, dict):
            continue
        system, value = str(ident.get("system") or ""), str(ident.get("value") or "")
        oid = system.removeprefix("urn:oid:")
        if oid in INS_OIDS:
            try:
                ins = parse_ins(value, oid)
            except InsError as exc:
                findings.append(Finding("TDDUI-INS", f"INS invalide: {exc}", Severity.ERROR, where))
                return None
            production = production_ins_findings(ins, policy, where)  # harness-wide policy: warn or refuse
            findings.extend(production)
            if any(f.severity is Severity.ERROR for f in production):
                return None
            return ins.value
        if system == LOCAL_ID_SYSTEM or any(
            c.get("code") == "PLI" for c in ((ident.get("type") or {}).get("coding") or []) if isinstance(c, dict)
        ):
            local = local or value
    if local:
        return local
    findings.append(Finding("TDDUI-USAGER-ID", "usager sans INS ni identifiant local", Severity.ERROR, where))
    return None


def validate_bundle(
    data: bytes, *, max_bytes: int = MAX_BYTES, production_ins: ProductionInsPolicy = ProductionInsPolicy.WARN
) -> TdduiReport:
    """Check a TDDUI transaction Bundle (JSON bytes) and extract its DUI facts. Never raises on bad input. An INS
    under a production OID follows ``production_ins`` (``INS-PRODUCTION`` warning, or error under ``refuse``)."""
    findings: list[Finding] = []
    if len(data) > max_bytes:
        return TdduiReport((Finding("TDDUI-TAILLE", f"Bundle de {len(data)} octets > {max_bytes}"),), structural=True)
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return TdduiReport((Finding("FHIR-JSON", f"JSON illisible: {exc}"),), structural=True)
    if not isinstance(raw, dict) or raw.get("resourceType") != "Bundle":
        got = raw.get("resourceType") if isinstance(raw, dict) else type(raw).__name__
        return TdduiReport((Finding("TDDUI-BUNDLE", f"ressource Bundle attendue, reçu {got!r}"),), structural=True)
    if raw.get("type") != "transaction":
        return TdduiReport(
            (
                Finding(
                    "TDDUI-BUNDLE-TYPE",
                    f"Bundle.type 'transaction' attendu (TDDUIBundle), reçu {raw.get('type')!r}",
                    location="Bundle.type",
                ),
            ),
            structural=True,
        )
    structure = _structure_findings(raw)
    if structure:
        return TdduiReport(tuple(structure), structural=True)
    entries = [e for e in raw.get("entry") or [] if isinstance(e, dict)]
    bundle = _Bundle(entries)
    outcomes: list[EntryOutcome] = []
    classified: list[_Classified] = []
    for index, entry in enumerate(entries):
        where = f"Bundle.entry[{index}]"
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            findings.append(Finding("TDDUI-ENTRY", "entrée sans ressource", Severity.ERROR, where))
            continue
        rtype = str(resource.get("resourceType"))
        full_url = entry.get("fullUrl")
        if not isinstance(full_url, str) or not full_url:
            findings.append(
                Finding(
                    "TDDUI-FULLURL",
                    "fullUrl absent: les références entre entrées ne peuvent être résolues",
                    Severity.ERROR,
                    where,
                )
            )
            full_url = ""
        request = entry.get("request") or {}
        if request.get("method") != "POST":
            findings.append(
                Finding(
                    "TDDUI-METHOD",
                    f"request.method POST attendu (le guide n'autorise que la création), reçu {request.get('method')!r}",
                    Severity.ERROR,
                    f"{where}.request.method",
                )
            )
        url = request.get("url")
        if url != rtype:
            if isinstance(url, str) and profile_name_type(url) == rtype:
                findings.append(
                    Finding(
                        "TDDUI-URL-PROFIL",
                        f"request.url {url!r} est un nom de profil; FHIR attend le type de ressource {rtype!r} (toléré, comme dans les exemples publiés du guide)",
                        Severity.WARNING,
                        f"{where}.request.url",
                    )
                )
            else:
                findings.append(
                    Finding(
                        "TDDUI-URL",
                        f"request.url {url!r} ne désigne pas le type {rtype!r} de la ressource créée",
                        Severity.ERROR,
                        f"{where}.request.url",
                    )
                )
        outcomes.append(EntryOutcome(rtype, full_url))
        kind, profile = _profile_kind(resource)
        if kind is None and not profile:
            kind = _infer_kind(resource)
            if kind is not None:
                findings.append(
                    Finding(
                        "TDDUI-PROFIL-ABSENT",
                        f"meta.profile absent: {rtype} lu comme {kind.value.rsplit('.', 1)[-1]}",
                        Severity.WARNING,
                        f"{where}.meta.profile",
                    )
                )
        if kind is not None:
            classified.append((index, resource, kind, full_url, profile))
    facts = _extract(bundle, classified, findings, production_ins)
    essms = tuple(sorted({f.essms for f in facts}))
    return TdduiReport(tuple(findings), tuple(facts), tuple(outcomes), essms)


def _structure_findings(raw: dict[str, Any]) -> list[Finding]:
    """Structure and datatypes against the FHIR models (fhir.resources R4B)."""
    from fhir.resources.R4B.bundle import Bundle  # imported on first use (0.2 s)
    from pydantic import ValidationError

    try:
        Bundle.model_validate(raw)
    except ValidationError as exc:
        out = []
        for error in exc.errors()[:20]:
            loc = ".".join(str(p) for p in error.get("loc", ()))
            out.append(Finding("FHIR-STRUCTURE", f"{error.get('msg')}", Severity.ERROR, f"Bundle.{loc}"))
        if len(exc.errors()) > 20:
            out.append(Finding("FHIR-STRUCTURE", f"… et {len(exc.errors()) - 20} autres erreurs", Severity.ERROR))
        return out
    except Exception as exc:  # noqa: BLE001 - fhir.resources raises KeyError/TypeError on unknown resource types
        return [
            Finding(
                "FHIR-STRUCTURE",
                f"ressource non reconnue ({type(exc).__name__}: {str(exc)[:300]})",
                Severity.ERROR,
                "Bundle",
            )
        ]
    return []


_Classified = tuple[int, dict[str, Any], dui.FactKind, str, str]  # entry index, resource, kind, fullUrl, profile


def _extract(
    bundle: _Bundle,
    classified: list[_Classified],
    findings: list[Finding],
    production_ins: ProductionInsPolicy = ProductionInsPolicy.WARN,
) -> list[DuiFact]:
    """The DUI facts of the classified entries: séjours first (they tie persons to establishments), then usagers,
    événements and projets personnalisés in entry order, one extractor per kind."""
    extractor = _FactExtractor(bundle, findings, production_ins)
    facts = [fact for entry in classified if entry[2] is dui.FactKind.SEJOUR for fact in extractor.sejour(*entry)]
    by_kind = {
        dui.FactKind.USAGER: extractor.usager,
        dui.FactKind.EVENEMENT: extractor.evenement,
        dui.FactKind.PROJET: extractor.projet,
    }
    for entry in classified:
        extract = by_kind.get(entry[2])
        if extract is not None:
            facts.extend(extract(*entry))
    return facts


class _FactExtractor:
    """What the extractors of one Bundle share: the persons already identified (or refused, reported once) and the
    establishments the séjours tie them to."""

    def __init__(self, bundle: _Bundle, findings: list[Finding], production_ins: ProductionInsPolicy) -> None:
        self.bundle = bundle
        self.findings = findings
        self.production_ins = production_ins
        self.persons: dict[int, str] = {}  # id(patient resource) -> person key
        self.refused: set[int] = set()  # Patient resources whose identity was refused (reported once)
        self.stays_essms: dict[int, str] = {}  # id(séjour resource) -> FINESS
        self.person_essms: dict[str, set[str]] = {}

    def _error(self, code: str, message: str, where: str, severity: Severity = Severity.ERROR) -> None:
        self.findings.append(Finding(code, message, severity, where))

    def identify(self, patient: dict[str, Any], where: str) -> str | None:
        """The person key of a Patient resource (checked once; ``None`` when its identity is refused)."""
        if id(patient) in self.refused:
            return None
        if id(patient) not in self.persons:
            key = _person_key(patient, where, self.findings, self.production_ins)
            if key is None:
                self.refused.add(id(patient))
                return None
            self.persons[id(patient)] = key
        return self.persons[id(patient)]

    def person_of(self, resource: dict[str, Any], where: str) -> str | None:
        patient = self.bundle.resolve(resource.get("subject"))
        if patient is None or patient.get("resourceType") != "Patient":
            self._error(
                "TDDUI-REFERENCE",
                f"subject {resource.get('subject')!r} ne désigne aucun Patient du Bundle",
                f"{where}.subject",
            )
            return None
        return self.identify(patient, where)

    def organization_finess(self, reference: Any, where: str) -> str | None:
        org = self.bundle.resolve(reference)
        if org is None or org.get("resourceType") != "Organization":
            return None
        finess = _finess_of_organization(org)
        if finess is None:
            self._error("TDDUI-FINESS", "Organization sans identifiant idNatSt (1 + FINESS) ni FINESS", where)
        return finess

    def single_essms(self, person: str | None) -> str | None:
        """The establishment of a person's only séjour in the Bundle, if exactly one."""
        if person is not None and len(self.person_essms.get(person, ())) == 1:
            return next(iter(self.person_essms[person]))
        return None

    def sejour(
        self, index: int, resource: dict[str, Any], kind: dui.FactKind, full_url: str, profile: str
    ) -> list[DuiFact]:
        """TDDUIEncounterSejour: period = dateEntree / dateSortie, serviceProvider = the ESSMS."""
        where = f"Bundle.entry[{index}].resource"
        person = self.person_of(resource, where)
        essms = self.organization_finess(resource.get("serviceProvider"), f"{where}.serviceProvider")
        if essms is None:
            self._error(
                "TDDUI-SEJOUR-ESSMS",
                "séjour sans serviceProvider (ESSMS d'accueil) identifiable",
                f"{where}.serviceProvider",
            )
        period = resource.get("period") or {}
        start = _day(period.get("start"))
        if start is None:
            for ext in resource.get("extension") or []:
                if isinstance(ext, dict) and str(ext.get("url", "")).endswith("tddui-admission-date"):
                    start = _day(ext.get("valueDateTime") or ext.get("valueDate"))
        if start is None:
            self._error("TDDUI-SEJOUR-DEBUT", "séjour sans date d'entrée (period.start)", f"{where}.period.start")
        end = _day(period.get("end"), end=True)
        if person is None or essms is None or start is None:
            return []
        self.stays_essms[id(resource)] = essms
        self.person_essms.setdefault(person, set()).add(essms)
        date = _day((resource.get("meta") or {}).get("lastUpdated")) or end or start
        key = _identifier_key(resource, full_url)
        return [DuiFact(kind, essms, person, key, date, start, end, resource.get("status"), full_url, profile)]

    def usager(
        self, index: int, resource: dict[str, Any], kind: dui.FactKind, full_url: str, profile: str
    ) -> list[DuiFact]:
        """TDDUIPatient / TDDUIPatientINS: one fact per establishment the person is known to (séjour, or local
        identifier ``3`` + FINESS ``/`` …)."""
        where = f"Bundle.entry[{index}].resource"
        person = self.identify(resource, where)
        if person is None:
            return []
        targets = set(self.person_essms.get(person, set()))
        for ident in resource.get("identifier") or []:
            match = _LOCAL_PREFIX_RE.match(str((ident or {}).get("value") or "")) if isinstance(ident, dict) else None
            if match and str(ident.get("system")) == LOCAL_ID_SYSTEM:
                targets.add(match.group(1))
        updated = _day((resource.get("meta") or {}).get("lastUpdated"))
        if updated is None:
            self._error(
                "TDDUI-DATE-ABSENTE",
                "usager sans meta.lastUpdated: date de mise à jour du dossier inconnue",
                f"{where}.meta.lastUpdated",
                Severity.WARNING,
            )
        key = _identifier_key(resource, full_url)
        return [
            DuiFact(kind, essms, person, key, updated, full_url=full_url, profile=profile) for essms in sorted(targets)
        ]

    def evenement(
        self, index: int, resource: dict[str, Any], kind: dui.FactKind, full_url: str, profile: str
    ) -> list[DuiFact]:
        """TDDUIEncounterEvenement: period.start 1..1; the ESSMS is its serviceProvider, else its séjour's
        (partOf), else the person's only séjour."""
        where = f"Bundle.entry[{index}].resource"
        person = self.person_of(resource, where)
        essms = self.organization_finess(resource.get("serviceProvider"), f"{where}.serviceProvider")
        if essms is None:
            stay = self.bundle.resolve(resource.get("partOf"))
            essms = self.stays_essms.get(id(stay)) if stay is not None else None
        essms = essms or self.single_essms(person)
        period = resource.get("period") or {}
        start, end = _day(period.get("start")), _day(period.get("end"), end=True)
        if start is None:
            self._error(
                "TDDUI-EVENEMENT-PERIODE",
                "événement sans period.start (1..1 dans TDDUIEncounterEvenement)",
                f"{where}.period.start",
            )
        if essms is None:
            self._error(
                "TDDUI-EVENEMENT-ESSMS",
                "événement sans structure: ni serviceProvider ni séjour (partOf) résolus",
                where,
            )
        if person is None or essms is None or start is None:
            return []
        updated = _day((resource.get("meta") or {}).get("lastUpdated"))
        key = _identifier_key(resource, full_url)
        date = updated or end or start
        return [DuiFact(kind, essms, person, key, date, start, end, resource.get("status"), full_url, profile)]

    def projet(
        self, index: int, resource: dict[str, Any], kind: dui.FactKind, full_url: str, profile: str
    ) -> list[DuiFact]:
        """TDDUICarePlanProjetPersonnalise: the ESSMS from its identifier (``3`` + FINESS ``/`` …), else the
        person's only séjour; the status date as sent (meta.lastUpdated, else created, else period.start)."""
        where = f"Bundle.entry[{index}].resource"
        person = self.person_of(resource, where)
        key = _identifier_key(resource, full_url)
        match = _LOCAL_PREFIX_RE.match(key.split("|", 1)[-1])
        essms = (match.group(1) if match else None) or self.single_essms(person)
        if essms is None:
            self._error(
                "TDDUI-PROJET-ESSMS",
                "projet personnalisé: ESSMS introuvable (identifiant 3+FINESS/… ou séjour unique de l'usager)",
                where,
            )
        period = resource.get("period") or {}
        updated = _day((resource.get("meta") or {}).get("lastUpdated"))
        date = updated or _day(resource.get("created")) or _day(period.get("start"))
        if date is None:
            self._error(
                "TDDUI-DATE-ABSENTE",
                "projet personnalisé sans date de statut (meta.lastUpdated)",
                f"{where}.meta.lastUpdated",
                Severity.WARNING,
            )
        if person is None or essms is None:
            return []
        start, end = _day(period.get("start")), _day(period.get("end"), end=True)
        return [DuiFact(kind, essms, person, key, date, start, end, resource.get("status"), full_url, profile)]


@dataclass(frozen=True)
class OperationOutcomeIssue:
    severity: str
    code: str
    diagnostics: str
    expression: str = ""


@dataclass(frozen=True)
class OperationOutcome:
    issues: tuple[OperationOutcomeIssue, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": i.severity,
                    "code": i.code,
                    "diagnostics": i.diagnostics,
                    **({"expression": [i.expression]} if i.expression else {}),
                }
                for i in self.issues
            ],
        }


def operation_outcome(findings: list[Finding] | tuple[Finding, ...], *, code: str = "invalid") -> OperationOutcome:
    """An R4 OperationOutcome listing ``findings`` (issue.code: FHIR R4 issue-type value set)."""
    issues = []
    for f in findings:
        severity = {Severity.ERROR: "error", Severity.WARNING: "warning"}.get(f.severity, "information")
        issue_code = (
            "structure" if f.code in {"FHIR-JSON", "FHIR-STRUCTURE", "TDDUI-BUNDLE", "TDDUI-BUNDLE-TYPE"} else code
        )
        issues.append(OperationOutcomeIssue(severity, issue_code, f"{f.code}: {f.message}", f.location))
    return OperationOutcome(tuple(issues))
