"""The SUT driver interface: how the harness tells the DUI under test to act.

A driver asks the DUI to perform one business action ("send this document of this person to this address by
MSSanté") and returns what the DUI *reports* about it. The conformance verdict never rests on that report
alone: steps judge the exchange the simulators recorded in the journal. Drivers:

- ``reference``: the built-in reference DUI, an in-process client that performs every exchange correctly;
- ``faulty:<defect>[,<defect>...]``: the reference DUI with named, switchable defects (self-test of the catalogue);
- next (issue "Testing a real DUI"): ``http`` (the DUI's control API, for editors' CI) and ``manual`` (a recette
  operator at the DUI, guided step by step). Both fit this interface: a manual driver returns
  :attr:`ActionStatus.DELEGATED` and the step then waits for the exchange in the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from harness.testdata import Establishment, Person


@dataclass(frozen=True)
class Defect:
    """A named, switchable defect of the faulty reference DUI."""

    name: str
    description: str  # French: what the faulty DUI does wrong


class ActionStatus(StrEnum):
    DONE = "done"  # the DUI reports success
    FAILED = "failed"  # the DUI reports that the action failed (and shows it to its user)
    DELEGATED = "delegated"  # a human or an external system will act; judge from the journal only
    UNREACHABLE = "unreachable"  # the driver could not reach the DUI: no conformance verdict possible
    ERROR = "error"  # the DUI's control interface answered nonsense: no conformance verdict possible


@dataclass(frozen=True)
class ActionResult:
    status: ActionStatus
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def reported_success(self) -> bool:
        return self.status is ActionStatus.DONE


@dataclass(frozen=True)
class SutEnvironment:
    """What a DUI needs to reach the simulators: endpoints, trust anchors, its credentials."""

    endpoints: dict[str, dict[str, str]]
    ca_bundle: Path
    client_certificates: dict[str, tuple[Path, Path]]  # name -> (cert, key)
    credentials: dict[str, str]  # MSSanté mailbox address -> password


@dataclass(frozen=True)
class MssanteSend:
    """Send the person's document of ``document_kind`` from the establishment to ``recipients``."""

    person: Person
    establishment: Establishment
    document_kind: str  # a key of harness.validators.cda.DOCUMENT_TYPES ("DLU"...)
    recipients: tuple[str, ...]
    end_of_exchange: bool = False  # X-MSS-MES: FIN (no reply expected)


class SutDriver(Protocol):
    """What every SUT driver implements. Unknown actions raise NotImplementedError with a clear message."""

    name: str

    def setup(self, env: SutEnvironment) -> None: ...

    def send_mssante(self, action: MssanteSend) -> ActionResult: ...

    def close(self) -> None: ...
