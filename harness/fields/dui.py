"""What the harness knows of a DUI's own records, and how DUI facts are written in the journal.

Two halves, shared by the DUI side (the reference DUI exports its records) and the harness side (the TDDUI
simulator records what it receives, the indicator engine reads it):

- the **record model** (:class:`DuiRecord` and its stays, projets personnalisés and agenda events): what a DUI
  holds for one accompanied person in one ESSMS, with the producer's own dates;
- the **fact contract**: the TDDUI simulator journals one :class:`~harness.core.journal.Exchange` per FHIR entry the
  indicators use (operation :class:`FactKind`), with ``essms`` = FINESS géographique, ``person`` = INS (or the
  local identifier when the DUI sent no INS) and the producer's facts in ``details["fact"]`` (keys below), which
  the SQLite journal mirrors into indexed ``fact_*`` columns.

The format received is the ANS "Transfert de données DUI" FHIR guide (``ans.fhir.fr.tddui``, 2.x ballot):
TDDUIPatient/TDDUIPatientINS, TDDUIEncounterSejour, TDDUICarePlanProjetPersonnalise (statuses ENPREPARATION →
``draft``, ENCOURS → ``active``, ENPAUSE → ``on-hold``, TERMINE → ``completed``) and TDDUIEncounterEvenement.
The guide maps ``meta.lastUpdated`` to the producer's own dates (``dateModificationEvenement``,
``statutProjetPersonnalise.dateStatut``): the facts keep the date **as sent by the DUI**, never the time the
simulator received it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from harness.fields.testdata import Person

SERVICE = "tddui"
OP_TRANSACTION = "fhir.transaction"  # the whole transaction Bundle (payload = the Bundle, findings)


class FactKind(StrEnum):
    """Operation of a fact exchange: one per Bundle entry the indicators use."""

    USAGER = "fhir.create.usager"  # TDDUIPatient / TDDUIPatientINS
    SEJOUR = "fhir.create.sejour"  # TDDUIEncounterSejour
    PROJET = "fhir.create.projet-personnalise"  # TDDUICarePlanProjetPersonnalise
    EVENEMENT = "fhir.create.evenement"  # TDDUIEncounterEvenement


# ``details["fact"]`` of a fact exchange (dates are the producer's local calendar dates, YYYY-MM-DD).
FACT = "fact"
KEY = "key"  # business identifier of the resource, "system|value": versions of one resource share it
DATE = "date"  # producer's modification date (meta.lastUpdated as sent; fallbacks per kind): "record updated"
START = "start"  # séjour: admission (period.start); événement: period.start; projet: period.start
END = "end"  # séjour: definitive exit (period.end); événement: period.end; projet: period.end
STATUS = "status"  # FHIR status as sent (projet: draft/active/on-hold/completed...; événement: planned/finished...)
# Other ``details`` keys of a fact exchange.
BUNDLE = "bundle"  # id of the fhir.transaction exchange the entry came in
FULL_URL = "fullUrl"
PROFILE = "profile"

#: Projet personnalisé statuses the indicator counts ("en préparation ou actif").
PLAN_STATUSES_COUNTED = ("draft", "active")
#: CarePlan.status of a plan recorded in error (FHIR R4 request-status): retracted with all its versions.
PLAN_RETRACTED = "entered-in-error"
#: Événement statuses that are not agenda events (Encounter.status, FHIR R4).
EVENT_STATUSES_NOT_COUNTED = ("cancelled", "entered-in-error")


class PlanStatus(StrEnum):
    """Projet personnalisé statuses (TDDUICarePlanProjetPersonnalise.status)."""

    EN_PREPARATION = "draft"
    ENCOURS = "active"
    ENPAUSE = "on-hold"
    TERMINE = "completed"


class EventStatus(StrEnum):
    """Événement statuses (TDDUIEncounterEvenement.status): Planifié, Validé, Réalisé, Annulé."""

    PLANIFIE = "planned"
    VALIDE = "triaged"
    REALISE = "finished"
    ANNULE = "cancelled"


@dataclass(frozen=True)
class Stay:
    """A séjour (stay or follow-up) of the person in the ESSMS; ``exit`` set once the exit is definitive."""

    id: str
    admission: date
    exit: date | None = None
    exit_mode: str | None = None
    #: Encounter.status when the séjour is retracted (``cancelled``, ``entered-in-error``); ``None``: in progress,
    #: or finished once the exit is known
    status: str | None = None


@dataclass(frozen=True)
class PersonalPlan:
    """The projet personnalisé, with the date of its current status (statutProjetPersonnalise.dateStatut)."""

    id: str
    status: PlanStatus
    status_date: datetime
    title: str = "Projet personnalisé"


@dataclass(frozen=True)
class AgendaEvent:
    """An agenda event (intervention, appointment...), with its last modification date."""

    id: str
    start: datetime
    end: datetime
    modified: datetime
    status: EventStatus = EventStatus.REALISE
    label: str = "Intervention"


@dataclass(frozen=True)
class DuiRecord:
    """One accompanied person's record in one ESSMS's DUI, as of an export."""

    person: Person
    local_id: str  # identifiantLocalUsagerESSMS
    updates: tuple[datetime, ...] = ()  # when the record was modified (the producer's dates)
    stays: tuple[Stay, ...] = ()
    plans: tuple[PersonalPlan, ...] = ()
    events: tuple[AgendaEvent, ...] = field(default=())

    def last_update(self, until: datetime) -> datetime | None:
        """The last modification at or before ``until`` (what an export made then reports)."""
        past = [u for u in self.updates if u <= until]
        return max(past) if past else None

    @property
    def exited(self) -> bool:
        """All stays closed: the person left the ESSMS (a definitive exit)."""
        return bool(self.stays) and all(s.exit is not None for s in self.stays)
