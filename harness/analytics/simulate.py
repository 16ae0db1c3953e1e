"""``socle-harness simulate``: a synthetic grappe and months of its activity, driven through the real simulators.

The grappe (FINESS géographique in the fictitious department 99 with a valid Luhn key, persons from faker
``fr_FR`` with test INS from :func:`harness.fields.identity.generate_test_ins`, admissions and definitive exits) lives
in a fixtures folder of its own; the simulators are started on ephemeral ports with it; the DUI under test
(the reference DUI by default) sends the MSSanté messages, feeds the persons' DMP (TD0.2 + ITI-41, every
simulated person has an active DMP with a valid authorisation), imports the e-prescriptions the prescribers issued
on the e-Prescription service (retrieval + confirmation ``Task``), writes notes in the e-Parcours cahier de liaison
(FHIR transaction) and exports its records in the TDDUI format at the end of each month, with the run's clock set
to the simulated date. The indicators then come out of the exchanges the journal observed, like for a real grappe.
Same seed, same grappe, same indicators.

Adoption follows a logistic curve per ESSMS and service (see :data:`PROFILES`), and each ESSMS has its own
spread (:data:`SPREAD`: record updates, agenda use, projets personnalisés) and organisme gestionnaire
(:data:`OG_SIZES`): ``good`` (the default) gives a realistic grappe, most ESSMS meeting the targets once adopted and
a few under them; ``lagging`` gives a grappe that misses them.
"""

from __future__ import annotations

import json
import math
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from faker import Faker
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.analytics.forecast import Grappe, GrappeEssms, ProjectKind
from harness.analytics.indicators import (
    INDICATORS,
    IndicatorReport,
    Scope,
    add_months,
    campaign_periods,
    last_day,
)
from harness.analytics.indicators_pg import indicator_engine
from harness.core.config import HarnessConfig
from harness.core.messages import bilingual
from harness.fields.dui import AgendaEvent, DuiRecord, EventStatus, PersonalPlan, PlanStatus, Stay
from harness.fields.identity import generate_test_ins
from harness.fields.testdata import Establishment, Person
from harness.runtime.drivers import make_driver
from harness.runtime.environment import SocleEnvironment
from harness.sut.base import ActionStatus, CdlNotePost, DmpFeed, EprescriptionImport, MssanteSend, TdduiExport

PARIS = ZoneInfo("Europe/Paris")
CATEGORIES = ("EHPAD", "EHPAD", "EHPAD", "SSIAD", "MAS", "FAM", "IME", "SESSAD", "ESAT")
BIRTH_YEARS = {
    "EHPAD": (1925, 1948),
    "SSIAD": (1930, 1955),
    "MAS": (1955, 1995),
    "FAM": (1955, 1995),
    "IME": (2006, 2016),
    "SESSAD": (2008, 2018),
    "ESAT": (1965, 2002),
}
PROFILES = {  # adoption ceiling range, curve midpoint range (months), monthly probabilities
    # DMP feeds, e-prescription imports and cahier de liaison notes: monthly probability per person at the curve's
    # ceiling. Once adopted, "good" feeds the DMP of 82-94 % of its persons each month (DMP rate ~80-85 %, target
    # 70 %), sends about one MSSanté message per person and month (the rate counts messages: ~100 %, target 70 %)
    # and keeps its records up to date (projet personnalisé and agenda above 90 %), from the first monthly measure
    # on (per-ESSMS spread in SPREAD: some ESSMS stay under a target); "lagging" misses these targets. The DMP feeds (TD0.2 + ITI-41, ~5,100 with the default options) and the
    # MSSanté sends (~6,400, each its own SMTP session) make most of the default run (~4-4.5 min on 2 cores), hence
    # a second message in the month for 10 % of the "good" persons only ("mss_extra").
    "good": {
        "mss_max": (0.6, 1.0),
        "mss_mid": (-1.0, 1.0),
        "mss_extra": 0.1,
        "event": 0.985,
        "pp_activate": 0.7,
        "pp_initial": 0.97,
        "dmp_max": (0.82, 0.94),
        "dmp_mid": (-0.5, 1.5),
        "ep_max": (0.04, 0.07),
        "ep_mid": (0.0, 2.0),
        "cdl_max": (0.08, 0.14),
        "cdl_mid": (-0.5, 1.5),
    },
    "lagging": {
        "mss_max": (0.35, 0.6),
        "mss_mid": (2.0, 4.0),
        "mss_extra": 0.3,
        "event": 0.55,
        "pp_activate": 0.2,
        "pp_initial": 0.6,
        "dmp_max": (0.2, 0.45),
        "dmp_mid": (2.5, 4.5),
        "ep_max": (0.01, 0.03),
        "ep_mid": (3.0, 5.0),
        "cdl_max": (0.02, 0.05),
        "cdl_mid": (2.5, 4.5),
    },
}
#: Per-ESSMS spread (drawn from a generator of its own, so the other draws of a seed stay the same): how often a
#: record is updated in a month, the share of persons whose record ever gets an agenda event, the share of persons
#: without a projet personnalisé. In "good" most ESSMS meet the DUI targets and a few do not (a realistic grappe).
SPREAD = {
    "good": {"update": (0.84, 0.99), "agenda_reach": (0.86, 1.0), "pp_none": (0.0, 0.12)},
    "lagging": {"update": (0.7, 0.7), "agenda_reach": (0.55, 0.55), "pp_none": (0.2, 0.2)},
}
#: Organismes gestionnaires: ESSMS of the grappe per OG (drawn in turn), and ESSMS the OG manages outside it.
OG_SIZES = (1, 1, 2, 2, 3, 4, 6, 8)
OG_OUTSIDE = (0, 14)
EXIT_RATE = 0.02  # definitive exits per person and month
SERVICES = ("mssante", "tddui", "dmp", "eprescription", "eparcours")
DMP_KINDS = ("DLU", "DLU", "VSM")
NOTE_TYPES = ("OBS", "OBS", "GEN", "INTERV", "DEM-AVIS")
NOTE_TEXTS = (
    "Nuit calme, pas de douleur signalée.",
    "Visite de l'infirmière : pansement refait.",
    "Appétit en baisse ce midi, à surveiller.",
    "Rendez-vous chez le kinésithérapeute confirmé.",
    "Famille informée du changement de traitement.",
    "Chute sans gravité dans la chambre, médecin prévenu.",
)


@dataclass(frozen=True)
class SimulationOptions:
    essms: int = 20
    persons: int = 60
    months: int = 6
    seed: int = 1
    profile: str = "good"
    start: str = "2025-01"
    out: Path = Path("simulation")
    sut: str = "reference"
    workers: int = 8
    journal: str | None = None


@dataclass
class PersonTimeline:
    person: Person
    local_id: str
    admission: date
    exit: date | None = None
    updates: list[datetime] = field(default_factory=list)
    plans: list[PersonalPlan] = field(default_factory=list)
    events: list[AgendaEvent] = field(default_factory=list)
    sends: list[datetime] = field(default_factory=list)
    dmp_feeds: list[tuple[date, str]] = field(default_factory=list)  # day, CDA document kind
    prescriptions: list[date] = field(default_factory=list)
    notes: list[tuple[date, str, str]] = field(default_factory=list)  # day, JDV_J23 note type, text

    def present_in(self, first: date, last: date) -> bool:
        return self.admission <= last and (self.exit is None or self.exit >= first)

    def record(self, events_from: date) -> DuiRecord:
        return DuiRecord(
            self.person,
            self.local_id,
            tuple(self.updates),
            (Stay("1", self.admission, self.exit),),
            tuple(self.plans),
            tuple(e for e in self.events if e.start.date() >= events_from),
        )


@dataclass
class EssmsTimeline:
    establishment: Establishment
    project: ProjectKind
    referenced: bool
    mss_max: float
    mss_mid: float
    people: list[PersonTimeline] = field(default_factory=list)
    update: float = 0.96  # monthly probability that a record is updated
    agenda_reach: float = 1.0  # share of persons whose record gets agenda events
    pp_none: float = 0.0  # share of persons without a projet personnalisé
    og_size: int = 0  # ESSMS its organisme gestionnaire manages (in the grappe and outside)
    curves: dict[str, tuple[float, float]] = field(default_factory=dict)  # service -> (ceiling, midpoint)

    def adoption(self, service: str, month_index: int) -> float:
        ceiling, midpoint = self.curves[service]
        return ceiling / (1 + math.exp(-1.6 * (month_index - midpoint)))


@dataclass(frozen=True)
class SimulationResult:
    grappe: Grappe
    grappe_path: Path
    report: IndicatorReport
    journal_url: str
    html_path: Path
    run_id: str
    unobserved: list[str]  # indicators without any exchange observed (none when every service was driven)
    messages: int
    exports: int
    failed_actions: int
    dmp_feeds: int = 0
    prescriptions: int = 0
    notes: int = 0


def _luhn(payload: str) -> str:
    total = 0
    for i, char in enumerate(reversed(payload)):
        digit = int(char) * (2 if i % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return str((10 - total % 10) % 10)


def _month_days(month: str) -> tuple[date, date]:
    return date(int(month[:4]), int(month[5:7]), 1), last_day(month)


def _random_day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


class GrappeBuilder:
    """Everything random comes from one seeded generator (and a seeded faker): same seed, same grappe."""

    def __init__(self, options: SimulationOptions) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.fake = Faker("fr_FR")
        self.fake.seed_instance(options.seed)
        self.profile = PROFILES[options.profile]
        self.ins_seen: set[str] = set()
        self.counter = 0
        # DMP, e-Prescription and e-Parcours activity: one generator per service, apart from the MSSanté / TDDUI one,
        # so that tuning one service's probabilities leaves the other services' draws for the same persons unchanged
        self.services_rng = {key: random.Random(f"{options.seed}-services-{key}") for key in ("dmp", "ep", "cdl")}
        self.spread_rng = random.Random(f"{options.seed}-spread")  # per-ESSMS spread, organismes gestionnaires
        self.agenda_users: set[str] = set()  # person ids whose record gets agenda events

    def person(self, essms: Establishment) -> Person:
        rng = self.rng
        sex = rng.choice("FM")
        low, high = BIRTH_YEARS.get(essms.category, (1930, 1990))
        birth = date(rng.randint(low, high), rng.randint(1, 12), rng.randint(1, 28))
        department = rng.choice([f"{d:02d}" for d in range(1, 96) if d != 20])
        while True:
            ins = generate_test_ins(
                rng, sex=sex, birth_date=birth, department=department, commune=f"{rng.randint(1, 999):03d}"
            )
            if ins.value not in self.ins_seen:
                self.ins_seen.add(ins.value)
                break
        self.counter += 1
        given = self.fake.first_name_female() if sex == "F" else self.fake.first_name_male()
        return Person(
            id=f"SIM{self.counter:05d}",
            family=self.fake.last_name().upper(),
            given=given,
            sex=sex,
            birth_date=birth,
            ins=ins,
            essms=essms.finess,
            patient_mailbox=False,
        )

    def establishments(self) -> list[EssmsTimeline]:
        rng = self.rng
        serials = rng.sample(range(1, 999_999), self.options.essms)
        out, names = [], set()
        for serial in serials:
            payload = f"99{serial:06d}"
            finess = payload + _luhn(payload)
            category = rng.choice(CATEGORIES)
            name = f"{category} {self.fake.city()}"
            while name in names:
                name += " bis"
            names.add(name)
            slug = f"{category.lower()}-{finess}"
            establishment = Establishment(
                finess=finess,
                finess_juridique="990000008",
                name=name,
                category=category,
                mailbox=f"secretariat@{slug}.mssante.fr",
                dui_mailbox=f"dui@{slug}.mssante.fr",
            )
            out.append(
                EssmsTimeline(
                    establishment,
                    ProjectKind.ACQUISITION if rng.random() < 0.7 else ProjectKind.CONFORMITE,
                    rng.random() < 0.85,
                    rng.uniform(*self.profile["mss_max"]),
                    rng.uniform(*self.profile["mss_mid"]),
                )
            )
        for item in out:
            item.curves = {
                key: (other.uniform(*self.profile[f"{key}_max"]), other.uniform(*self.profile[f"{key}_mid"]))
                for key, other in self.services_rng.items()
            }
        spread, rng2 = SPREAD[self.options.profile], self.spread_rng
        for item in out:
            item.update = rng2.uniform(*spread["update"])
            item.agenda_reach = rng2.uniform(*spread["agenda_reach"])
            item.pp_none = rng2.uniform(*spread["pp_none"])
        index = 0
        while index < len(out):  # consecutive ESSMS of the grappe share an organisme gestionnaire
            members = out[index : index + rng2.choice(OG_SIZES)]
            payload = f"99{rng2.randrange(1, 999_999):06d}"
            juridique = payload + _luhn(payload)
            size = len(members) + rng2.randint(*OG_OUTSIDE)
            for item in members:
                item.establishment = replace(item.establishment, finess_juridique=juridique)
                item.og_size = size
            index += len(members)
        return out

    def timeline(self, grappe: list[EssmsTimeline]) -> None:
        """Admissions, exits and the DUI activity of every person, month by month."""
        rng, profile, options = self.rng, self.profile, self.options
        start_day = _month_days(options.start)[0]
        for item in grappe:
            est = item.establishment
            for index in range(options.persons):
                admission = start_day - timedelta(days=rng.randint(30, 6 * 365))
                person = PersonTimeline(self.person(est), f"U{index + 1:05d}", admission)
                person.updates.append(datetime.combine(admission, time(9), tzinfo=PARIS))
                if self.spread_rng.random() < item.agenda_reach:
                    self.agenda_users.add(person.person.id)
                if rng.random() >= item.pp_none:
                    active = rng.random() < profile["pp_initial"]
                    person.plans.append(
                        PersonalPlan(
                            "1",
                            PlanStatus.EN_PREPARATION,
                            datetime.combine(admission + timedelta(days=10), time(14), tzinfo=PARIS),
                        )
                    )
                    if active:
                        person.plans.append(
                            PersonalPlan(
                                "1",
                                PlanStatus.ENCOURS,
                                datetime.combine(admission + timedelta(days=60), time(14), tzinfo=PARIS),
                            )
                        )
                item.people.append(person)
            for i in range(options.months):
                month = add_months(options.start, i)
                first, last = _month_days(month)
                adoption = item.mss_max / (1 + math.exp(-1.6 * (i - item.mss_mid)))
                index = 0
                while index < len(item.people):  # newcomers admitted this month are appended and live it too
                    person = item.people[index]
                    index += 1
                    if not person.present_in(first, last) or person.admission > last:
                        continue
                    window_start = max(first, person.admission)
                    window_end = min(last, person.exit) if person.exit else last
                    if person.exit is None and rng.random() < EXIT_RATE:
                        person.exit = _random_day(rng, window_start, last)
                        window_end = person.exit
                        newcomer = PersonTimeline(
                            self.person(est), f"U{len(item.people) + 1:05d}", _random_day(rng, person.exit, last)
                        )
                        newcomer.updates.append(datetime.combine(newcomer.admission, time(9), tzinfo=PARIS))
                        if self.spread_rng.random() < item.agenda_reach:
                            self.agenda_users.add(newcomer.person.id)
                        if rng.random() >= item.pp_none:
                            newcomer.plans.append(
                                PersonalPlan(
                                    "1",
                                    PlanStatus.EN_PREPARATION,
                                    datetime.combine(newcomer.admission, time(15), tzinfo=PARIS),
                                )
                            )
                        item.people.append(newcomer)
                    self._activity(person, window_start, window_end, adoption, item)
                    self._services(person, window_start, window_end, item, i)
                    plan = person.plans[-1] if person.plans else None
                    if (
                        plan is not None
                        and plan.status is PlanStatus.EN_PREPARATION
                        and rng.random() < profile["pp_activate"]
                    ):
                        day = _random_day(rng, window_start, window_end)
                        person.plans.append(
                            PersonalPlan("1", PlanStatus.ENCOURS, datetime.combine(day, time(16), tzinfo=PARIS))
                        )

    def _services(self, person: PersonTimeline, first: date, last: date, item: EssmsTimeline, month_index: int) -> None:
        """DMP feeds, e-prescriptions to import and cahier de liaison notes of one person in one month."""
        rng = self.services_rng["dmp"]
        if rng.random() < item.adoption("dmp", month_index):
            person.dmp_feeds.append((_random_day(rng, first, last), rng.choice(DMP_KINDS)))
        rng = self.services_rng["ep"]
        if rng.random() < item.adoption("ep", month_index):
            person.prescriptions.append(_random_day(rng, first, last))
        rng = self.services_rng["cdl"]
        if rng.random() < item.adoption("cdl", month_index):
            for _ in range(1 + (rng.random() < 0.25)):
                person.notes.append((_random_day(rng, first, last), rng.choice(NOTE_TYPES), rng.choice(NOTE_TEXTS)))

    def _activity(self, person: PersonTimeline, first: date, last: date, adoption: float, item: EssmsTimeline) -> None:
        """MSSanté sends, record updates and agenda events of one person in one month. The draws are the same
        whatever the ESSMS's spread (a record without agenda draws its events and drops them)."""
        rng, profile = self.rng, self.profile
        if rng.random() < adoption:
            for _ in range(1 + (rng.random() < profile["mss_extra"])):
                person.sends.append(
                    datetime.combine(_random_day(rng, first, last), time(rng.randint(8, 18)), tzinfo=PARIS)
                )
        if rng.random() < item.update:
            for _ in range(rng.randint(1, 3)):
                person.updates.append(
                    datetime.combine(_random_day(rng, first, last), time(rng.randint(8, 19)), tzinfo=PARIS)
                )
        if rng.random() < profile["event"]:
            for _ in range(rng.randint(1, 3)):
                start = datetime.combine(_random_day(rng, first, last), time(rng.randint(8, 17)), tzinfo=PARIS)
                status = EventStatus.ANNULE if rng.random() < 0.03 else EventStatus.REALISE
                if person.person.id not in self.agenda_users:
                    continue
                person.events.append(
                    AgendaEvent(
                        f"{len(person.events) + 1}",
                        start,
                        start + timedelta(minutes=45),
                        start + timedelta(minutes=50),
                        status,
                    )
                )


def write_fixtures(folder: Path, grappe: list[EssmsTimeline], base_fixtures: Path, name: str) -> None:
    """The synthetic grappe as a fixtures folder the simulators load (persons, ESSMS, MSSanté directory)."""
    (folder / "mssante").mkdir(parents=True, exist_ok=True)
    persons = [
        {
            "id": p.person.id,
            "family": p.person.family,
            "given": p.person.given,
            "sex": p.person.sex,
            "birth_date": p.person.birth_date.isoformat(),
            "ins": p.person.ins.value,
            "ins_oid": p.person.ins.oid,
            "essms": p.person.essms,
            "patient_mailbox": False,
        }
        for item in grappe
        for p in item.people
    ]
    (folder / "persons.json").write_text(json.dumps(persons, ensure_ascii=False, indent=1), encoding="utf-8")
    essms = [
        {
            "finess": i.establishment.finess,
            "finess_juridique": i.establishment.finess_juridique,
            "name": i.establishment.name,
            "category": i.establishment.category,
            "mailbox": i.establishment.mailbox,
            "dui_mailbox": i.establishment.dui_mailbox,
        }
        for i in grappe
    ]
    (folder / "essms.json").write_text(
        json.dumps({"grappe": {"id": "GRAPPE-SIMULEE", "name": name}, "essms": essms}, ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    professionals = [
        m
        for m in json.loads((base_fixtures / "mssante" / "annuaire.json").read_text(encoding="utf-8"))
        if m.get("type") in {"PER", "CAB"}
    ]
    directory = professionals + [
        entry
        for i in grappe
        for entry in (
            {
                "address": i.establishment.mailbox,
                "type": "ORG",
                "name": f"Secrétariat {i.establishment.name}",
                "finess": i.establishment.finess,
                "password": f"org-{i.establishment.finess}",
            },
            {
                "address": i.establishment.dui_mailbox,
                "type": "APP",
                "name": f"DUI {i.establishment.name}",
                "finess": i.establishment.finess,
                "password": f"dui-{i.establishment.finess}",
            },
        )
    ]
    (folder / "mssante" / "annuaire.json").write_text(
        json.dumps(directory, ensure_ascii=False, indent=1), encoding="utf-8"
    )


class _MonthClock:
    """The run's simulated time during one month: strictly increasing instants inside it."""

    def __init__(self, month: str) -> None:
        first, _ = _month_days(month)
        self.base = datetime.combine(first, time(0), tzinfo=PARIS) + timedelta(days=14)
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            self.count += 1
            return self.base + timedelta(seconds=self.count)


def run_simulation(base: HarnessConfig, options: SimulationOptions, console: Console) -> SimulationResult:
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    builder = GrappeBuilder(options)
    grappe_items = builder.establishments()
    builder.timeline(grappe_items)
    name = f"Grappe simulée (graine {options.seed}, profil {options.profile})"
    fixtures = out / "fixtures"
    write_fixtures(fixtures, grappe_items, Path(base.fixtures_dir), name)
    journal_url = options.journal or f"sqlite:///{out / 'journal.sqlite'}"
    config = replace(
        base,
        run_dir=out / ".socle",
        journal=journal_url,
        fixtures_dir=fixtures,
        services=SERVICES,
        http_port=0,
        ports={"mssante": {"smtp": 0}},
    )
    run_id = f"sim-{options.seed}-{uuid.uuid4().hex[:6]}"
    env = SocleEnvironment(config, run_id=run_id)
    env.start()
    sut = make_driver(options.sut)
    missing = [
        name for name in ("export_tddui", "dmp_feed", "import_eprescription", "cdl_post_note") if not hasattr(sut, name)
    ]
    if missing:
        env.stop()
        raise ValueError(
            f"le DUI piloté ({options.sut}) ne sait pas faire {', '.join(missing)} / cannot do {', '.join(missing)}"
        )
    sut.setup(env.sut_environment())
    prescriber = env.host.simulators["eprescription"].service
    months = [add_months(options.start, i) for i in range(options.months)]
    people = [(i.establishment, p) for i in grappe_items for p in i.people]
    total_sends = sum(len(p.sends) for _, p in people)
    failures = sends = exports = feeds = imports = notes = 0
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            t_months = progress.add_task(bilingual("Mois simulés", "months"), total=len(months))
            t_sends = progress.add_task("Messages MSSanté", total=total_sends)
            t_dmp = progress.add_task("Documents versés au DMP", total=sum(len(p.dmp_feeds) for _, p in people))
            t_ep = progress.add_task(
                "Ordonnances électroniques importées", total=sum(len(p.prescriptions) for _, p in people)
            )
            t_cdl = progress.add_task("Notes du cahier de liaison", total=sum(len(p.notes) for _, p in people))
            t_exports = progress.add_task("Exports TDDUI", total=len(months) * len(grappe_items))
            with ThreadPoolExecutor(max_workers=options.workers) as pool:
                for month in months:
                    first, last = _month_days(month)
                    env.run.clock = _MonthClock(month)
                    jobs = [
                        MssanteSend(
                            person=p.person,
                            establishment=i.establishment,
                            document_kind="DLU",
                            recipients=("jean.dupont@medecin.mssante.fr",),
                        )
                        for i in grappe_items
                        for p in i.people
                        for s in p.sends
                        if first <= s.date() <= last
                    ]
                    for result in pool.map(sut.send_mssante, jobs):
                        sends += 1
                        failures += result.status is not ActionStatus.DONE
                        progress.advance(t_sends)
                    feed_jobs = [
                        DmpFeed(p.person, est, kind)
                        for est, p in people
                        for day, kind in p.dmp_feeds
                        if first <= day <= last
                    ]
                    for result in pool.map(sut.dmp_feed, feed_jobs):
                        feeds += 1
                        failures += result.status is not ActionStatus.DONE
                        progress.advance(t_dmp)
                    # the prescribers issue the prescriptions (in a fixed order: same seed, same EPU), then the
                    # ESSMS professionals scan them and the DUI imports them
                    import_jobs = [
                        EprescriptionImport(
                            p.person,
                            est,
                            prescriber.issue(
                                p.person, lines=1 + k % 3, authored=datetime.combine(day, time(10), tzinfo=PARIS)
                            ).epu,
                        )
                        for est, p in people
                        for k, day in enumerate(p.prescriptions)
                        if first <= day <= last
                    ]
                    for result in pool.map(sut.import_eprescription, import_jobs):
                        imports += 1
                        failures += result.status is not ActionStatus.DONE
                        progress.advance(t_ep)
                    note_jobs = [
                        CdlNotePost(p.person, est, kind, text, urgent=kind == "DEM-AVIS")
                        for est, p in people
                        for day, kind, text in p.notes
                        if first <= day <= last
                    ]
                    for result in pool.map(sut.cdl_post_note, note_jobs):
                        notes += 1
                        failures += result.status is not ActionStatus.DONE
                        progress.advance(t_cdl)
                    exported_at = datetime.combine(last, time(20), tzinfo=PARIS)
                    env.run.clock = lambda at=exported_at: at
                    actions = [
                        TdduiExport(
                            i.establishment,
                            tuple(p.record(first) for p in i.people if p.present_in(first, last)),
                            exported_at,
                        )
                        for i in grappe_items
                    ]
                    for result in pool.map(sut.export_tddui, actions):
                        exports += 1
                        failures += result.status is not ActionStatus.DONE
                        progress.advance(t_exports)
                    progress.advance(t_months)
    finally:
        env.run.clock = None
        sut.close()
        env.stop()
    grappe = Grappe(
        name=name,
        essms=tuple(
            GrappeEssms(
                i.establishment.finess,
                i.establishment.name,
                i.establishment.category,
                i.project,
                i.referenced,
                og=i.establishment.finess_juridique,
            )
            for i in grappe_items
        ),
        organismes={i.establishment.finess_juridique: i.og_size for i in grappe_items},
        campaign_start=options.start,
        run_id=run_id,
        extra={
            "seed": options.seed,
            "profile": options.profile,
            "persons_per_essms": options.persons,
            "months": options.months,
            "sut": options.sut,
        },
    )
    grappe_path = out / "grappe.json"
    grappe_path.write_text(json.dumps(grappe.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    from harness.analytics.forecast import forecast
    from harness.core.journal import open_journal
    from harness.reports.indicators_html import render_indicators_html

    store = open_journal(journal_url)
    try:
        engine = indicator_engine(store, base.indicator_targets, base.mssante_counting)
        report = engine.compute(
            campaign_periods(options.start, months[-1]),
            Scope(run_id=run_id),
            grappe=tuple(e.finess for e in grappe.essms),
            campaign_start=options.start,
        )
    finally:
        store.close()
    html_path = out / "indicateurs.html"
    html_path.write_bytes(
        render_indicators_html(
            report,
            names=grappe.names,
            journal_url=journal_url,
            forecast=forecast(grappe, report),
            title=f"Indicateurs d'usage — {name}",
        )
    )
    unobserved = [d.label for d in INDICATORS if not report.observed.get(d.key)]
    return SimulationResult(
        grappe,
        grappe_path,
        report,
        journal_url,
        html_path,
        run_id,
        unobserved,
        sends,
        exports,
        failures,
        feeds,
        imports,
        notes,
    )
