"""The INSi simulator's identity base: who the simulated national base knows, and how a search is matched.

Four sources, in this order:

1. the public test identities of the CNAM INSi qualification environment (facts listed in the public corpus:
   ``shared/corpus/README.md`` and the ``insi/responses`` of padoa/tlsi-ins), with their special cases — no
   match (DE VINCI LEONARDO is simply absent), a provisional NIA identity (``MATRICULE``), INS history
   (ECETINSI, CORSE, HERMANN) — served under the OIDs the real qualification service returns
   (1.2.250.1.213.1.4.8, NIA 1.2.250.1.213.1.4.9). They are public test data, not real persons; setting
   ``qualification_identities = false`` leaves them out;
2. the accompanied persons of the fixtures (``fixtures/persons.json``), so that a DUI can qualify them;
3. a pair of synthetic homonyms (same birth name, first name, sex and birth date, different birth places) that
   gives CR 02 unless the birth place is sent;
4. synthetic French identities generated with Faker (``fr_FR``, seeded) carrying valid test INS under the test
   OID 1.2.250.1.213.1.4.10.

Any other identity under a production OID (NIR 1.2.250.1.213.1.4.8, NIA 1.2.250.1.213.1.4.9) is refused (left
out, and listed in :attr:`IdentityBase.refused`) so that no real personal data enters a test run, unless
``refuse_production_ins = false``.

Two identities of the corpus carry keys that do not satisfy the NIR key rule ``97 - (N mod 97)``; they are
served exactly as the corpus responses give them and flagged (:attr:`Identity.flags`), never "fixed".

Matching (the harness's reading of the INSi search rules, ``docs/specs/insi.md``): traits are compared after
:func:`~harness.validators.insi.normalise_trait` (upper case, no diacritics); birth name, sex and birth date
must be equal; the first names sent (all ``Prenom`` joined by a space) must equal the identity's whole first-name
list or its first first name; a birth place, when both sides have one, must be equal. One identity → CR 00, none
→ CR 01, several → CR 02. In the qualification set, the first names ``OLA``, ``PIERRE``, ``PAUL``, ``JACQUES``
(and ``PIERRE PAUL JACQUES``) never match a qualification identity (CR 01 unless a fixture or synthetic person
answers) and ``MATRICULE`` always gives the provisional NIA identity.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from harness.fields.identity import (
    INS,
    OID_INS_NIA,
    OID_INS_NIR,
    OID_INS_NIR_TEST,
    InsError,
    compute_key,
    generate_test_ins,
    refuse_production,
)
from harness.fields.testdata import Person, TestData
from harness.validators.insi import Traits, normalise_trait

__all__ = [
    "CR01_FIRST_NAMES",
    "NIA_FIRST_NAME",
    "QUALIFICATION_IDENTITIES",
    "HistoryEntry",
    "Identity",
    "IdentityBase",
    "Match",
    "build_identity_base",
]

CR01_FIRST_NAMES = frozenset({"OLA", "PIERRE", "PAUL", "JACQUES", "PIERRE PAUL JACQUES"})
NIA_FIRST_NAME = "MATRICULE"
SOURCE_QUALIFICATION = "qualification"
SOURCE_FIXTURES = "fixtures"
SOURCE_HOMONYMS = "homonymes"
SOURCE_SYNTHETIC = "synthetique"


@dataclass(frozen=True)
class HistoryEntry:
    """An ``INSHISTO`` entry: a former (or the same) matricule with its OID and optional validity dates."""

    number: str
    key: str
    oid: str
    start: str | None = None
    end: str | None = None

    @property
    def value(self) -> str:
        return self.number + self.key


@dataclass(frozen=True)
class Identity:
    """One person of the simulated national base, as ``RESULTAT/INDIVIDU`` returns it."""

    birth_name: str
    first_names: str  # ListePrenom: the first names separated by spaces, as the base holds them
    sex: str
    birth_date: str  # lunar date YYYY-MM-DD
    birth_place: str | None  # COG
    number: str
    key: str
    oid: str
    history: tuple[HistoryEntry, ...] = ()
    tiq_first_name: bool = False  # TIQ also carries <Prenom> (as in some qualification responses)
    source: str = SOURCE_SYNTHETIC
    notes: tuple[str, ...] = ()  # facts worth showing in a report (corpus inconsistencies...)

    @property
    def value(self) -> str:
        return self.number + self.key

    @property
    def first_name(self) -> str:
        return self.first_names.split(" ")[0]

    @property
    def is_nia(self) -> bool:
        return self.oid == OID_INS_NIA

    @property
    def flags(self) -> tuple[str, ...]:
        """``CLE-NON-CONFORME`` for every matricule (active or historical) whose key fails ``97 - (N mod 97)``,
        then the notes."""
        found: list[str] = []
        for number, key in [(self.number, self.key), *((h.number, h.key) for h in self.history)]:
            try:
                expected = compute_key(number)
            except InsError:
                found.append(f"FORMAT-NON-CONFORME: {number}")
                continue
            if expected != key:
                found.append(f"CLE-NON-CONFORME: {number} {key} (la règle 97 - N mod 97 donne {expected})")
        return tuple(dict.fromkeys(found)) + self.notes

    def matches_first_names(self, requested: str) -> bool:
        listed = normalise_trait(self.first_names)
        return requested == listed or requested == listed.split(" ")[0]

    def summary(self) -> dict[str, Any]:
        return {
            "nom_naissance": self.birth_name,
            "prenoms": self.first_names,
            "sexe": self.sex,
            "date_naissance": self.birth_date,
            "lieu_naissance": self.birth_place,
            "ins": self.value,
            "oid": self.oid,
            "source": self.source,
            "flags": list(self.flags),
        }


def _ins(number: str, key: str, oid: str = OID_INS_NIR) -> dict[str, str]:
    return {"number": number, "key": key, "oid": oid}


#: The public qualification identities (facts from the public corpus; see the module docstring).
QUALIFICATION_IDENTITIES: tuple[Identity, ...] = (
    Identity(
        "ADRTROIS", "DOMINIQUE", "F", "1997-02-26", "2A020", **_ins("297022A020778", "78"), source=SOURCE_QUALIFICATION
    ),
    Identity(
        "ADRTROIS", "TOUSSAINT", "M", "1960-01-01", "2B020", **_ins("160012B020777", "13"), source=SOURCE_QUALIFICATION
    ),
    Identity(
        "TCHITCHI",
        "CATARINA BELLA",
        "F",
        "1936-06-21",
        "63220",
        **_ins("2360663220836", "56"),
        source=SOURCE_QUALIFICATION,
    ),
    Identity(
        "ECETINSI",
        "PIERRE-ALAIN MURIEL FLORIANT",
        "M",
        "2009-07-14",
        "63220",
        **_ins("1090763220834", "89"),
        history=(
            HistoryEntry("2090763220834", "39", OID_INS_NIR, "2019-03-01", "2019-02-28"),
            HistoryEntry("2090663220123", "55", OID_INS_NIR),
        ),
        source=SOURCE_QUALIFICATION,
        notes=(
            (
                "TABLE-CORPUS: la table du corpus donne la clé 39 pour 1090763220834 (clé de l'entrée d'historique "
                "2090763220834) ; la réponse TEST_2.04 du corpus et la règle de clé donnent 89, servie ici"
            ),
        ),
    ),
    Identity(
        "CORSE",
        "ANTHONY",
        "M",
        "1980-03-02",
        "2B020",
        **_ins("180032B020401", "23"),
        history=(HistoryEntry("180032B020401", "23", OID_INS_NIR),),
        tiq_first_name=True,
        source=SOURCE_QUALIFICATION,
    ),
    Identity(
        "HERMANN",
        "GATIEN",
        "M",
        "1981-03-24",
        "63220",
        **_ins("1810363220456", "60"),
        history=(HistoryEntry("1810363220456", "60", OID_INS_NIR), HistoryEntry("2810363220456", "10", OID_INS_NIR)),
        tiq_first_name=True,
        source=SOURCE_QUALIFICATION,
        notes=(
            (
                "TABLE-CORPUS: la table du corpus donne 1810363220456 10 (historique 2810363220456 60) ; la réponse "
                "TEST_2.08 cas 2 du corpus donne 1810363220456 60 (historique 2810363220456 10), servie telle quelle"
            ),
        ),
    ),
    Identity(
        "PROVISOIRE",
        NIA_FIRST_NAME,
        "M",
        "2009-07-01",
        "63220",
        **_ins("1090763220888", "35", OID_INS_NIA),
        tiq_first_name=True,
        source=SOURCE_QUALIFICATION,
    ),
)

#: Synthetic homonyms under the test OID: searching without the birth place gives CR 02.
HOMONYMS: tuple[Identity, ...] = (
    Identity(
        "DURAND", "CAMILLE", "F", "1948-05-10", "69123", "2480569123045", "81", OID_INS_NIR_TEST, source=SOURCE_HOMONYMS
    ),
    Identity(
        "DURAND", "CAMILLE", "F", "1948-05-10", "13055", "2480513055112", "74", OID_INS_NIR_TEST, source=SOURCE_HOMONYMS
    ),
)


@dataclass(frozen=True)
class Match:
    """The outcome of a search: CR code, the identity (CR 00), how many matched, and a qualification trigger."""

    code: str
    identity: Identity | None = None
    candidates: int = 0
    trigger: str | None = None


def _birth_place_from_ins(ins: INS) -> str | None:
    place = ins.number[5:10]
    return place if place[:2].isdigit() or place[:2] in ("2A", "2B") else None


def identity_from_person(person: Person) -> Identity:
    """The reference-base identity of a fixture person (traits upper-cased without diacritics)."""
    return Identity(
        birth_name=normalise_trait(person.family),
        first_names=normalise_trait(person.given),
        sex=person.sex,
        birth_date=person.birth_date.isoformat(),
        birth_place=_birth_place_from_ins(person.ins),
        number=person.ins.number,
        key=person.ins.key,
        oid=person.ins.oid,
        source=SOURCE_FIXTURES,
    )


def synthetic_identities(
    count: int, seed: int, *, taken_numbers: Iterable[str] = (), taken_traits: Iterable[tuple[str, str, str, str]] = ()
) -> list[Identity]:
    """``count`` French identities from Faker ``fr_FR`` (seeded), each with a valid test INS (OID .4.10).

    Traits and matricules never repeat those already ``taken``; first names that trigger qualification special
    cases are avoided, so that every synthetic identity answers CR 00 to its own traits.
    """
    from faker import (
        Faker,  # imported here: Faker costs ~0.1 s, paid on the first INSi request only
    )

    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    numbers = set(taken_numbers)
    traits = set(taken_traits)
    triggers = CR01_FIRST_NAMES | {NIA_FIRST_NAME}
    first_day = date(1920, 1, 1)
    span = (date(2015, 12, 31) - first_day).days
    out: list[Identity] = []
    attempts = 0
    while len(out) < count and attempts < count * 20:
        attempts += 1
        sex = rng.choice("MF")
        pick = fake.first_name_male if sex == "M" else fake.first_name_female
        names = [normalise_trait(pick())]
        if rng.random() < 0.4:
            names.append(normalise_trait(pick()))
        if any(n in triggers for n in names) or len(set(names)) != len(names):
            continue
        family = normalise_trait(fake.last_name())
        birth = first_day + timedelta(days=rng.randint(0, span))
        department, _name = fake.department()
        if len(department) == 3:  # overseas: department 97x -> "97" + commune "xNN"
            dept, commune = department[:2], department[2] + f"{rng.randint(1, 99):02d}"
        else:
            dept, commune = department, f"{rng.randint(1, 999):03d}"
        ins = generate_test_ins(rng, sex=sex, birth_date=birth, department=dept, commune=commune)
        key = (family, names[0], sex, birth.isoformat())
        if ins.number in numbers or key in traits:
            continue
        numbers.add(ins.number)
        traits.add(key)
        out.append(
            Identity(
                family,
                " ".join(names),
                sex,
                birth.isoformat(),
                dept + commune,
                ins.number,
                ins.key,
                ins.oid,
                source=SOURCE_SYNTHETIC,
            )
        )
    return out


@dataclass
class IdentityBase:
    """An immutable-after-build index of identities by (normalised birth name, sex, birth date)."""

    identities: tuple[Identity, ...]
    qualification: bool = True
    refused: tuple[str, ...] = ()  # why identities were left out (production OIDs)
    _index: dict[tuple[str, str, str], list[Identity]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for identity in self.identities:
            key = (normalise_trait(identity.birth_name), identity.sex, identity.birth_date)
            self._index.setdefault(key, []).append(identity)

    def search(self, traits: Traits) -> Match:
        first_names = normalise_trait(traits.first_names_text)
        trigger: str | None = None
        if self.qualification and first_names == NIA_FIRST_NAME:
            nia = next(i for i in self.identities if i.source == SOURCE_QUALIFICATION and i.is_nia)
            return Match("00", nia, 1, trigger=NIA_FIRST_NAME)
        if self.qualification and first_names in CR01_FIRST_NAMES:
            trigger = first_names  # no qualification identity answers these first names (the other sources still do)
        key = (normalise_trait(traits.birth_name), traits.sex, traits.birth_date)
        place = traits.birth_place.upper() if traits.birth_place else None
        found = [
            identity
            for identity in self._index.get(key, ())
            if identity.matches_first_names(first_names)
            and (place is None or identity.birth_place is None or identity.birth_place == place)
            and not (trigger and identity.source == SOURCE_QUALIFICATION)
        ]
        if len(found) == 1:
            return Match("00", found[0], 1, trigger=trigger)
        return Match("01" if not found else "02", None, len(found), trigger=trigger)

    def by_ins(self, value: str) -> Identity | None:
        for identity in self.identities:
            if identity.value == value:
                return identity
        return None

    def of_source(self, source: str) -> list[Identity]:
        return [i for i in self.identities if i.source == source]


def build_identity_base(
    testdata: TestData | None,
    *,
    qualification: bool = True,
    refuse_production_ins: bool = True,
    synthetic: int = 200,
    seed: int = 20240101,
) -> IdentityBase:
    """Assemble the base from the four sources (see the module docstring)."""
    identities: list[Identity] = list(QUALIFICATION_IDENTITIES) if qualification else []
    refused: list[str] = []
    for person in testdata.persons if testdata is not None else ():
        if refuse_production_ins:
            try:
                refuse_production(person.ins)
            except InsError as exc:
                refused.append(f"{person.id}: {exc.message}")
                continue
        identities.append(identity_from_person(person))
    identities.extend(HOMONYMS)
    taken_traits = {(normalise_trait(i.birth_name), i.first_name, i.sex, i.birth_date) for i in identities}
    identities.extend(
        synthetic_identities(synthetic, seed, taken_numbers={i.number for i in identities}, taken_traits=taken_traits)
    )
    return IdentityBase(tuple(identities), qualification=qualification, refused=tuple(refused))
