"""Synthetic electronic prescriptions: generation, FHIR rendering, CDA eP-MED-DM rendering, QR code.

A prescription (ordonnance numérique) has a unique identifier, the CNAM "EPU" (OID ``1.2.250.1.215.500.1.1``,
18 characters: the computation rule is not public, the harness draws ``01`` + 16 random characters ``[0-9A-Z]``),
the person it is for (a fixture person with a test INS, or a Faker ``fr_FR`` identity), a prescriber (Faker
``fr_FR`` name, synthetic RPPS with a Luhn key) and lines drawn from ``catalogue.json`` (codes and EDQM terms of
the public e-Prescription guide examples, invented posologies).

Renderings:

- FHIR R4 (``ans.fhir.fr.eprescription``): one ``MedicationRequest`` per line (``fr-medicationrequest``) sharing
  ``groupIdentifier`` = EPU, each referencing its ``Medication`` (``fr-medication-noncompound``), the ``Patient``
  (FR Core INS identifier) and the ``Practitioner`` (IDNPS); posology in ``dosageInstruction`` (``text`` plus
  structured ``timing`` / ``route`` / ``doseAndRate``); a cancelled prescription has every line ``cancelled``.
- CDA R2 eP-MED-DM 2024.01 (CI-SIS): header, EPU in ``documentationOf/serviceEvent/id``, FR-Code-a-barres section
  with the QR code as PNG, FR-Prescription-medicaments section with one FR-Traitement-prescrit per line.
- QR code (``segno``): the payload is the EPU, what an ESSMS professional scans at the DUI.
"""

from __future__ import annotations

import base64
import io
import json
import random
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any
from xml.sax.saxutils import escape

from harness.fields.identity import INS, generate_test_ins
from harness.fields.testdata import Person
from harness.validators.eprescription import (
    CDA_CODE,
    CDA_TEMPLATE,
    CDA_TEMPLATE_VERSION,
    ENTRY_TRAITEMENT,
    EPU_SYSTEM,
    OID_EPU,
    PROFILE_MEDICATION,
    PROFILE_MEDICATION_REQUEST,
    SECTION_BARCODE,
    SECTION_PRESCRIPTION,
)
from harness.validators.frcore import IDNPS_SYSTEM

EDQM = "http://standardterms.edqm.eu"
UCUM = "http://unitsofmeasure.org"
_EPU_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CODE_SYSTEM_OIDS = {  # CDA codeSystem of the medication codes
    "http://data.esante.gouv.fr/ansm/medicament/UCD": "1.2.250.1.213.2.3.3",
    "http://data.esante.gouv.fr/ansm/medicament/codeSMS": "2.16.840.1.113883.3.6905.2",
}


@dataclass(frozen=True)
class Posology:
    text: str
    dose: float
    unit: str
    unit_system: str
    unit_code: str
    days: int
    route: tuple[str, str]
    times: tuple[str, ...] = ()
    when: tuple[str, ...] = ()
    as_needed: str | None = None
    min_interval_hours: int | None = None
    max_per_day: tuple[float, str] | None = None
    extra: tuple[float, tuple[str, ...]] | None = None  # a second dose at other times (split dose)


@dataclass(frozen=True)
class Medicine:
    code: str
    system: str
    display: str
    form: tuple[str, str]
    posologies: tuple[Posology, ...]


@dataclass(frozen=True)
class Line:
    id: str
    medicine: Medicine
    posology: Posology


@dataclass(frozen=True)
class Prescriber:
    rpps: str
    family: str
    given: str
    finess: str
    organisation: str
    city: str


@dataclass
class Prescription:
    """One electronic prescription (mutable ``status``: the prescriber may cancel it)."""

    epu: str
    person: Person
    prescriber: Prescriber
    authored: datetime
    lines: tuple[Line, ...]
    status: str = "active"  # active | cancelled
    renewals: int = 0
    ids: dict[str, str] = field(default_factory=dict)  # FHIR logical ids: patient, practitioner

    @property
    def start(self) -> date:
        return self.authored.date()

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"


def prescription_json(prescription: Prescription) -> dict[str, Any]:
    """A prescription as JSON (the shared state's operation): lines name their medicine by code and their posology
    by its rank in the catalogue, which every process has the same."""
    person = prescription.person
    return {
        "epu": prescription.epu,
        "person": {
            "id": person.id,
            "family": person.family,
            "given": person.given,
            "sex": person.sex,
            "birth_date": person.birth_date.isoformat(),
            "ins": [person.ins.number, person.ins.key, person.ins.oid],
            "essms": person.essms,
            "patient_mailbox": person.patient_mailbox,
        },
        "prescriber": asdict(prescription.prescriber),
        "authored": prescription.authored.isoformat(),
        "lines": [
            [line.id, line.medicine.code, line.medicine.posologies.index(line.posology)] for line in prescription.lines
        ],
        "status": prescription.status,
        "renewals": prescription.renewals,
        "ids": dict(prescription.ids),
    }


def prescription_from_json(fields: dict[str, Any]) -> Prescription:
    """:func:`prescription_json` read back."""
    medicines = {m.code: m for m in catalogue()}
    person = fields["person"]
    return Prescription(
        epu=fields["epu"],
        person=Person(
            id=person["id"],
            family=person["family"],
            given=person["given"],
            sex=person["sex"],
            birth_date=date.fromisoformat(person["birth_date"]),
            ins=INS(*person["ins"]),
            essms=person["essms"],
            patient_mailbox=person["patient_mailbox"],
        ),
        prescriber=Prescriber(**fields["prescriber"]),
        authored=datetime.fromisoformat(fields["authored"]),
        lines=tuple(
            Line(line_id, medicines[code], medicines[code].posologies[rank]) for line_id, code, rank in fields["lines"]
        ),
        status=fields["status"],
        renewals=fields["renewals"],
        ids=dict(fields["ids"]),
    )


@lru_cache(maxsize=1)
def catalogue() -> tuple[Medicine, ...]:
    raw = json.loads(
        resources.files("mock_services.eprescription").joinpath("catalogue.json").read_text(encoding="utf-8")
    )
    out = []
    for m in raw["medicaments"]:
        posologies = tuple(
            Posology(
                text=p["text"],
                dose=float(p["dose"]),
                unit=p["unit"],
                unit_system=p["unit_system"],
                unit_code=p["unit_code"],
                days=int(p["days"]),
                route=(p["route"][0], p["route"][1]),
                times=tuple(p.get("times", ())),
                when=tuple(p.get("when", ())),
                as_needed=p.get("as_needed"),
                min_interval_hours=p.get("min_interval_hours"),
                max_per_day=(float(p["max_per_day"][0]), p["max_per_day"][1]) if p.get("max_per_day") else None,
                extra=(float(p["extra"]["dose"]), tuple(p["extra"]["times"])) if p.get("extra") else None,
            )
            for p in m["posologies"]
        )
        out.append(
            Medicine(m["code"], m["system"], m["display"], (m["form"]["code"], m["form"]["display"]), posologies)
        )
    return tuple(out)


def new_epu(rng: random.Random) -> str:
    return "01" + "".join(rng.choice(_EPU_ALPHABET) for _ in range(16))


def _rpps(rng: random.Random) -> str:
    """A synthetic 11-digit RPPS whose last digit is a Luhn key (never a real professional: starts with 9)."""
    body = "9" + "".join(rng.choice("0123456789") for _ in range(9))
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return body + str((10 - total % 10) % 10)


def synthetic_person(rng: random.Random, essms: str) -> Person:
    """A Faker ``fr_FR`` person with a test INS (for prescriptions of people the DUI does not know)."""
    from faker import Faker

    fake = Faker("fr_FR")
    fake.seed_instance(rng.randrange(1 << 30))
    sex = rng.choice("MF")
    birth = fake.date_of_birth(minimum_age=60, maximum_age=99)
    ins: INS = generate_test_ins(rng, sex=sex, birth_date=birth)
    given = fake.first_name_male() if sex == "M" else fake.first_name_female()
    return Person(
        id=f"SYN-{ins.value[-6:]}",
        family=fake.last_name().upper(),
        given=given,
        sex=sex,
        birth_date=birth,
        ins=ins,
        essms=essms,
        patient_mailbox=False,
    )


def generate(
    person: Person,
    *,
    rng: random.Random,
    authored: datetime,
    lines: int = 2,
    status: str = "active",
    medicines: tuple[str, ...] = (),
) -> Prescription:
    """A prescription for ``person`` with ``lines`` lines (catalogue order when ``medicines`` names them)."""
    from faker import Faker

    fake = Faker("fr_FR")
    fake.seed_instance(rng.randrange(1 << 30))
    catalog = catalogue()
    if medicines:
        chosen = [next(m for m in catalog if name.casefold() in m.display.casefold()) for name in medicines]
    else:
        chosen = rng.sample(list(catalog), k=max(1, min(lines, len(catalog))))
    prescriber = Prescriber(
        rpps=_rpps(rng),
        family=fake.last_name().upper(),
        given=fake.first_name(),
        finess="99" + "".join(rng.choice("0123456789") for _ in range(7)),
        organisation=f"Cabinet médical {fake.last_name()}",
        city=fake.city(),
    )
    built = tuple(Line(str(uuid.UUID(int=rng.getrandbits(128))), m, rng.choice(m.posologies)) for m in chosen)
    return Prescription(
        epu=new_epu(rng),
        person=person,
        prescriber=prescriber,
        authored=authored,
        lines=built,
        status=status,
        renewals=rng.choice((0, 0, 1, 2)),
    )


# ------------------------------------------------------------------------------------------------------ FHIR
def _dosage(
    p: Posology,
    sequence: int,
    start: date,
    dose: float | None = None,
    times: tuple[str, ...] | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    repeat: dict[str, Any] = {
        "boundsPeriod": {"start": start.isoformat(), "end": (start + timedelta(days=p.days - 1)).isoformat()},
    }
    if times or (times is None and p.times):
        repeat["timeOfDay"] = list(times if times is not None else p.times)
    if p.when:
        repeat["when"] = list(p.when)
        repeat["frequency"], repeat["period"], repeat["periodUnit"] = len(p.when), 1, "d"
    if p.min_interval_hours:
        repeat["frequency"], repeat["period"], repeat["periodUnit"] = 1, p.min_interval_hours, "h"
    dosage: dict[str, Any] = {
        "sequence": sequence,
        "text": text or p.text,
        "timing": {"repeat": repeat},
        "route": {"coding": [{"system": EDQM, "code": p.route[0], "display": p.route[1]}], "text": p.route[1]},
        "doseAndRate": [
            {
                "doseQuantity": {
                    "value": dose if dose is not None else p.dose,
                    "unit": p.unit,
                    "system": p.unit_system,
                    "code": p.unit_code,
                }
            }
        ],
    }
    if p.as_needed:
        dosage["asNeededCodeableConcept"] = {"text": p.as_needed}
    if p.max_per_day:
        dosage["maxDosePerPeriod"] = {
            "numerator": {
                "value": p.max_per_day[0],
                "unit": p.max_per_day[1],
                "system": UCUM,
                "code": p.max_per_day[1],
            },
            "denominator": {"value": 1, "unit": "jour", "system": UCUM, "code": "d"},
        }
    return dosage


def fhir_resources(prescription: Prescription) -> list[dict[str, Any]]:
    """Patient, Practitioner, then one Medication and one MedicationRequest per line (ids fixed by the caller)."""
    person, prescriber = prescription.person, prescription.prescriber
    patient_id = prescription.ids.setdefault(
        "patient", str(uuid.uuid5(uuid.NAMESPACE_URL, f"patient:{person.ins.value}"))
    )
    practitioner_id = prescription.ids.setdefault(
        "practitioner", str(uuid.uuid5(uuid.NAMESPACE_URL, f"rpps:{prescriber.rpps}"))
    )
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": patient_id,
            "meta": {"profile": ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"]},
            "identifier": [{"use": "official", **person.ins.to_fhir_identifier()}],
            "name": [{"use": "official", "family": person.family, "given": person.given.split()}],
            "gender": "male" if person.sex == "M" else "female",
            "birthDate": person.birth_date.isoformat(),
        },
        {
            "resourceType": "Practitioner",
            "id": practitioner_id,
            "identifier": [{"system": IDNPS_SYSTEM, "value": f"8{prescriber.rpps}"}],
            "name": [{"prefix": ["DR"], "family": prescriber.family, "given": [prescriber.given]}],
        },
    ]
    for line in prescription.lines:
        medication_id = f"med-{line.id}"
        medicine, p = line.medicine, line.posology
        out.append(
            {
                "resourceType": "Medication",
                "id": medication_id,
                "meta": {"profile": [PROFILE_MEDICATION]},
                "code": {
                    "coding": [{"system": medicine.system, "code": medicine.code, "display": medicine.display}],
                    "text": medicine.display,
                },
                "form": {"coding": [{"system": EDQM, "code": medicine.form[0], "display": medicine.form[1]}]},
            }
        )
        dosages = [_dosage(p, 1, prescription.start, times=p.times if p.times else None)]
        if p.extra is not None:
            dosages.append(_dosage(p, 2, prescription.start, dose=p.extra[0], times=p.extra[1]))
        request: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": line.id,
            "meta": {"profile": [PROFILE_MEDICATION_REQUEST]},
            "groupIdentifier": {"system": EPU_SYSTEM, "value": prescription.epu},
            "status": "cancelled" if prescription.cancelled else "active",
            "intent": "order",
            "medicationReference": {"reference": f"Medication/{medication_id}", "display": medicine.display},
            "subject": {"reference": f"Patient/{patient_id}", "display": f"{person.given} {person.family}"},
            "authoredOn": prescription.authored.isoformat(timespec="seconds"),
            "requester": {
                "reference": f"Practitioner/{practitioner_id}",
                "display": f"Dr {prescriber.given} {prescriber.family}",
            },
            "dosageInstruction": dosages,
            "dispenseRequest": {
                "numberOfRepeatsAllowed": prescription.renewals,
                "validityPeriod": {
                    "start": prescription.start.isoformat(),
                    "end": (prescription.start + timedelta(days=90)).isoformat(),
                },
            },
        }
        if prescription.cancelled:
            request["statusReason"] = {"text": "Ordonnance annulée par le prescripteur"}
        out.append(request)
    return out


# ------------------------------------------------------------------------------------------------------ QR
def qr_png(payload: str, *, scale: int = 6) -> bytes:
    """The QR code (PNG) carrying ``payload`` (the EPU), scannable by a phone or a 2D scanner."""
    import segno

    buffer = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------------ CDA
def _ts(moment: datetime) -> str:
    local = moment.astimezone(UTC)
    return local.strftime("%Y%m%d%H%M%S+0000")


#: CI-SIS eP-MED-DM 2024.01: the mandatory section FR-Document-PDF-copie and its entry FR-Document-attache.
SECTION_PDF_COPY = "1.2.250.1.213.1.1.2.243"
ENTRY_ATTACHED_DOCUMENT = "1.2.250.1.213.1.1.3.18"
ENTRY_ALD = "1.2.250.1.213.1.1.3.48.13"  # FR-En-rapport-avec-ALD, mandatory in each medicine entry


def _pdf_text(text: str) -> str:
    """A PDF literal string (WinAnsi / Latin-1 text, ``\\``, ``(`` and ``)`` escaped)."""
    safe = text.encode("latin-1", "replace").decode("latin-1")
    return "(" + safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def pdf_copy(prescription: Prescription) -> bytes:
    """A one-page PDF 1.4 rendering of the prescription (the « copie PDF du document » the eP-MED-DM volet
    requires): prescriber, person, date, EPU and one line per medicine, in Helvetica (WinAnsiEncoding)."""
    p = prescription
    lines = [
        f"Prescription de médicaments - {p.prescriber.organisation}",
        f"Dr {p.prescriber.given} {p.prescriber.family} (RPPS {p.prescriber.rpps})",
        f"Patient : {p.person.given} {p.person.family}, né(e) le {p.person.birth_date:%d/%m/%Y}",
        f"Date : {p.authored:%d/%m/%Y} - EPU {p.epu}",
        *[f"- {line.medicine.display} : {line.posology.text}" for line in p.lines],
    ]
    content = "BT /F1 11 Tf 50 800 Td 14 TL " + " ".join(f"{_pdf_text(t)} '" for t in lines) + " ET"
    stream = content.encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def cda_document(prescription: Prescription) -> bytes:
    """The prescription as a CDA R2 eP-MED-DM 2024.01 document (a reduced instance of the volet that passes its
    CI-SIS schematron ``CI-SIS_EP-MED-DM_2024.01.sch``: patient address and telecom, FR-En-rapport-avec-ALD in each
    medicine entry, the section FR-Document-PDF-copie with the PDF copy)."""
    e = escape
    p, person, prescriber = prescription, prescription.person, prescription.prescriber
    when = _ts(p.authored)
    rows = []
    entries = []
    for index, line in enumerate(p.lines, start=1):
        medicine, pos = line.medicine, line.posology
        rows.append(
            f'<tr><td ID="med-{index}">{e(medicine.display)}</td><td ID="poso-{index}">{e(pos.text)}</td>'
            f'<td ID="ald-{index}">Sans rapport avec une ALD</td></tr>'
        )
        end = p.start + timedelta(days=pos.days - 1)
        system = _CODE_SYSTEM_OIDS.get(medicine.system, "1.2.250.1.213.2.3.3")
        entries.append(
            f'<entry><substanceAdministration classCode="SBADM" moodCode="INT">'
            f'<templateId root="2.16.840.1.113883.10.20.1.24"/><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.7"/>'
            f'<templateId root="1.3.6.1.4.1.19376.1.9.1.3.2"/><templateId root="{ENTRY_TRAITEMENT}"/>'
            f'<id root="{line.id.upper()}"/>'
            f'<code code="DRUG" displayName="Médicament" codeSystem="2.16.840.1.113883.5.4"/>'
            f'<text><reference value="#poso-{index}"/></text><statusCode code="completed"/>'
            f'<effectiveTime xsi:type="IVL_TS"><low value="{p.start.strftime("%Y%m%d")}"/><high value="{end.strftime("%Y%m%d")}"/></effectiveTime>'
            f'<repeatNumber value="{p.renewals}"/>'
            f'<routeCode code="{pos.route[0]}" displayName="{e(pos.route[1])}" codeSystem="0.4.0.127.0.16.1.1.2.1" codeSystemName="EDQM"/>'
            f'<doseQuantity><low value="{pos.dose:g}" unit="1"/><high value="{pos.dose:g}" unit="1"/></doseQuantity>'
            f'<consumable><manufacturedProduct classCode="MANU"><templateId root="2.16.840.1.113883.10.20.1.53"/>'
            f'<templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.7.2"/><templateId root="1.2.250.1.213.1.1.3.43"/>'
            f'<manufacturedMaterial classCode="MMAT" determinerCode="KIND"><templateId root="1.3.6.1.4.1.19376.1.9.1.3.1"/>'
            f'<code code="{e(medicine.code)}" displayName="{e(medicine.display)}" codeSystem="{system}">'
            f'<originalText><reference value="#med-{index}"/></originalText></code><name>{e(medicine.display)}</name>'
            f"</manufacturedMaterial></manufacturedProduct></consumable>"
            f'<entryRelationship typeCode="COMP"><observation classCode="OBS" moodCode="EVN">'
            f'<templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.13"/><templateId root="1.2.250.1.213.1.1.3.48"/>'
            f'<templateId root="{ENTRY_ALD}"/><id root="{uuid.uuid5(uuid.NAMESPACE_URL, "ald:" + line.id)}"/>'
            f'<code code="MED-574" displayName="En rapport avec une ALD" codeSystem="1.2.250.1.213.1.1.4.322" codeSystemName="TA_ASIP"/>'
            f'<text><reference value="#ald-{index}"/></text><statusCode code="completed"/>'
            f'<effectiveTime value="{when}"/><value xsi:type="BL" value="false"/></observation></entryRelationship>'
            f"</substanceAdministration></entry>"
        )
    qr = base64.b64encode(qr_png(p.epu, scale=3)).decode("ascii")
    family_given = f'<family qualifier="BR">{e(person.family)}</family><given>{e(person.given)}</given>'
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<realmCode code="FR"/><typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
        '<templateId root="2.16.840.1.113883.2.8.2.1"/><templateId root="1.2.250.1.213.1.1.1.1"/>'
        '<templateId root="1.3.6.1.4.1.19376.1.9.1.1.1"/><templateId root="1.3.6.1.4.1.19376.1.5.3.1.1.1"/>'
        f'<templateId root="{CDA_TEMPLATE}" extension="{CDA_TEMPLATE_VERSION}"/>'
        f'<id root="{uuid.uuid5(uuid.NAMESPACE_URL, "cda:" + p.epu)}"/>'
        f'<code code="{CDA_CODE}" displayName="Prescription de produits de santé" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>'
        "<title>Prescription de médicaments</title>"
        f'<effectiveTime value="{when}"/>'
        '<confidentialityCode code="N" displayName="Normal" codeSystem="2.16.840.1.113883.5.25"/><languageCode code="fr-FR"/>'
        f'<setId root="{uuid.uuid5(uuid.NAMESPACE_URL, "cda-set:" + p.epu)}"/><versionNumber value="1"/>'
        f'<recordTarget><patientRole><id root="{person.ins.oid}" extension="{person.ins.value}"/>'
        '<addr nullFlavor="UNK"/>'  # the prescriber's software knows it; the simulator does not
        f'<telecom value="mailto:{person.ins.value}@patient.mssante.fr"/>'
        f'<patient classCode="PSN"><name>{family_given}</name>'
        f'<administrativeGenderCode code="{person.sex}" codeSystem="2.16.840.1.113883.5.1"/>'
        f'<birthTime value="{person.birth_date.strftime("%Y%m%d")}"/></patient></patientRole></recordTarget>'
        f'<author><time value="{when}"/><assignedAuthor classCode="ASSIGNED"><id root="1.2.250.1.71.4.2.1" extension="8{prescriber.rpps}"/>'
        '<code code="G15_10/SM26" displayName="Médecin - Qualifié en Médecine Générale (SM)" codeSystem="1.2.250.1.213.1.1.4.5"/>'
        f"<assignedPerson><name><prefix>DR</prefix><given>{e(prescriber.given)}</given><family>{e(prescriber.family)}</family></name></assignedPerson>"
        f'<representedOrganization><id root="1.2.250.1.71.4.2.2" extension="1{prescriber.finess}"/><name>{e(prescriber.organisation)}</name>'
        "</representedOrganization></assignedAuthor></author>"
        f'<custodian><assignedCustodian><representedCustodianOrganization><id root="1.2.250.1.71.4.2.2" extension="1{prescriber.finess}"/>'
        f"<name>{e(prescriber.organisation)}</name></representedCustodianOrganization></assignedCustodian></custodian>"
        f'<legalAuthenticator><time value="{when}"/><signatureCode code="S"/><assignedEntity>'
        f'<id root="1.2.250.1.71.4.2.1" extension="8{prescriber.rpps}"/>'
        f"<assignedPerson><name><given>{e(prescriber.given)}</given><family>{e(prescriber.family)}</family></name></assignedPerson>"
        "</assignedEntity></legalAuthenticator>"
        f'<documentationOf><serviceEvent classCode="ACT"><id root="{OID_EPU}" extension="{p.epu}"/>'
        f'<code code="{CDA_CODE}" displayName="Prescription de produits de santé" codeSystem="2.16.840.1.113883.6.1"/>'
        f'<effectiveTime><low value="{when}"/><high value="{_ts(p.authored + timedelta(days=90))}"/></effectiveTime>'
        "</serviceEvent></documentationOf>"
        '<componentOf><encompassingEncounter><code code="AMB" displayName="Ambulatoire (hors établissement)" codeSystem="2.16.840.1.113883.5.4"/>'
        f'<effectiveTime><high value="{when}"/></effectiveTime><location><healthCareFacility>'
        f'<id root="1.2.250.1.71.4.2.2" extension="1{prescriber.finess}"/>'
        '<code code="SA07" displayName="Cabinet individuel" codeSystem="1.2.250.1.71.4.2.4"/>'
        "</healthCareFacility></location></encompassingEncounter></componentOf>"
        "<component><structuredBody>"
        f'<component><section classCode="DOCSECT" moodCode="EVN"><templateId root="{SECTION_BARCODE}"/>'
        '<code code="57723-9" displayName="Numéro de code à barres unique" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>'
        '<title>Code 2D de la prescription</title><text><renderMultiMedia referencedObject="Code2d"/></text>'
        '<entry><observationMedia classCode="OBS" moodCode="EVN" ID="Code2d"><templateId root="2.16.840.1.113883.10.12.304"/>'
        f'<templateId root="1.2.250.1.213.1.1.3.103"/><value mediaType="image/png" representation="B64">{qr}</value>'
        "</observationMedia></entry></section></component>"
        f'<component><section><templateId root="1.3.6.1.4.1.19376.1.9.1.2.1"/><templateId root="{SECTION_PRESCRIPTION}"/>'
        '<code code="57828-6" displayName="Prescriptions" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>'
        "<title>Prescription de médicaments</title>"
        f"<text><table><thead><tr><th>Médicament</th><th>Posologie</th><th>ALD</th></tr></thead><tbody>{''.join(rows)}</tbody></table></text>"
        f"{''.join(entries)}</section></component>"
        f'<component><section><templateId root="{SECTION_PDF_COPY}"/><id root="{uuid.uuid5(uuid.NAMESPACE_URL, "pdf:" + p.epu)}"/>'
        '<code code="55108-5" displayName="Copie du document" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>'
        '<title>Copie du document</title><text><table><tbody><tr><td><renderMultiMedia referencedObject="doc-1"/></td></tr>'
        '<tr><td ID="doc1">Copie PDF de la prescription</td></tr></tbody></table></text>'
        f'<entry><organizer classCode="CLUSTER" moodCode="EVN"><templateId root="{ENTRY_ATTACHED_DOCUMENT}"/>'
        f'<id root="{uuid.uuid5(uuid.NAMESPACE_URL, "pdf-entry:" + p.epu)}"/>'
        '<code code="55107-7" displayName="Document attaché" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>'
        '<statusCode code="completed"/><component><observation classCode="OBS" moodCode="EVN">'
        '<templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.13"/><templateId root="1.2.250.1.213.1.1.3.48"/>'
        '<templateId root="1.2.250.1.213.1.1.3.48.18"/>'
        f'<id root="{uuid.uuid5(uuid.NAMESPACE_URL, "pdf-type:" + p.epu)}"/>'
        '<code code="69764-9" displayName="Type de document" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>'
        '<text><reference value="#doc1"/></text><statusCode code="completed"/><effectiveTime nullFlavor="NA"/>'
        '<value xsi:type="CD" code="55108-5" displayName="Copie du document" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>'
        '</observation></component><component><observationMedia classCode="OBS" moodCode="EVN" ID="doc-1">'
        f'<value mediaType="application/pdf" representation="B64">{base64.b64encode(pdf_copy(p)).decode("ascii")}</value>'
        "</observationMedia></component></organizer></entry></section></component>"
        "</structuredBody></component></ClinicalDocument>"
    )
    return xml.encode("utf-8")
