"""Synthetic test data loaded from the ``fixtures/`` folder: persons, establishments, MSSanté directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

from harness.core.messages import bilingual
from harness.fields.identity import INS, parse_ins

PATIENT_DOMAIN = "patient.mssante.fr"


@dataclass(frozen=True)
class Person:
    """A person accompanied by an ESSMS (usager), with a test INS."""

    id: str
    family: str
    given: str
    sex: str  # "M" / "F"
    birth_date: date
    ins: INS
    essms: str  # FINESS géographique
    patient_mailbox: bool  # has activated the Mon espace santé mailbox

    @property
    def display_name(self) -> str:
        return f"{self.given} {self.family}"

    @property
    def mailbox(self) -> str:
        return self.ins.patient_mailbox()


@dataclass(frozen=True)
class Establishment:
    finess: str
    finess_juridique: str
    name: str
    category: str
    mailbox: str  # the organisation mailbox (BAL ORG)
    dui_mailbox: str  # the DUI's applicative mailbox (BAL APP)


class MailboxType(StrEnum):
    """Mailbox types of the MSSanté directory (Annuaire Santé ``mailbox-mss-type``), plus patient mailboxes."""

    PER = "PER"
    ORG = "ORG"
    APP = "APP"
    CAB = "CAB"
    PAT = "PAT"


@dataclass(frozen=True)
class Mailbox:
    address: str
    type: MailboxType
    name: str
    finess: str | None = None
    rpps: str | None = None
    password: str | None = None
    person_ins: str | None = None  # for PAT mailboxes


@dataclass(frozen=True)
class TestData:
    __test__ = False  # not a pytest test class, whatever its name
    persons: tuple[Person, ...]
    establishments: tuple[Establishment, ...]
    mailboxes: tuple[Mailbox, ...]
    grappe_id: str
    grappe_name: str
    # the grappe declares that the ESSMS of one organisme gestionnaire (same FINESS juridique) act for each other on
    # the FHIR services (``"og_mutualise": true`` in the grappe of essms.json); by default each acts for itself only
    og_shared: bool = False

    def person(self, ref: str) -> Person:
        """Find a person by id (``P001``), full name (``Jeanne MARTIN``), family name or INS."""
        wanted = ref.strip().casefold()
        for p in self.persons:
            keys = {p.id, p.display_name, f"{p.family} {p.given}", p.family, p.ins.value}
            if wanted in {k.casefold() for k in keys}:
                return p
        raise LookupError(bilingual("personne inconnue dans les fixtures", "unknown person") + f": {ref!r}")

    def establishment(self, ref: str) -> Establishment:
        wanted = ref.strip().casefold()
        for e in self.establishments:
            if wanted in {e.finess, e.name.casefold()}:
                return e
        raise LookupError(bilingual("ESSMS inconnu dans les fixtures", "unknown establishment") + f": {ref!r}")

    def mailbox(self, address: str) -> Mailbox | None:
        wanted = address.strip().casefold()
        for m in self.mailboxes:
            if m.address.casefold() == wanted:
                return m
        return None


def load_testdata(fixtures_dir: Path) -> TestData:
    """Load the fixtures folder. Patient mailboxes are derived from persons who activated theirs."""
    persons = tuple(
        Person(
            id=raw["id"],
            family=raw["family"],
            given=raw["given"],
            sex=raw["sex"],
            birth_date=date.fromisoformat(raw["birth_date"]),
            ins=parse_ins(raw["ins"], raw["ins_oid"]),
            essms=raw["essms"],
            patient_mailbox=bool(raw.get("patient_mailbox", True)),
        )
        for raw in json.loads((fixtures_dir / "persons.json").read_text(encoding="utf-8"))
    )
    essms_raw = json.loads((fixtures_dir / "essms.json").read_text(encoding="utf-8"))
    establishments = tuple(Establishment(**raw) for raw in essms_raw["essms"])
    mailboxes = [
        Mailbox(**{**raw, "type": MailboxType(raw["type"])})
        for raw in json.loads((fixtures_dir / "mssante" / "annuaire.json").read_text(encoding="utf-8"))
    ]
    mailboxes += [
        Mailbox(address=p.mailbox, type=MailboxType.PAT, name=f"Messagerie de {p.display_name}", person_ins=p.ins.value)
        for p in persons
        if p.patient_mailbox
    ]
    return TestData(
        persons=persons,
        establishments=establishments,
        mailboxes=tuple(mailboxes),
        grappe_id=essms_raw["grappe"]["id"],
        grappe_name=essms_raw["grappe"]["name"],
        og_shared=bool(essms_raw["grappe"].get("og_mutualise", False)),
    )
