"""What a SUT driver is given and what it reports (:mod:`harness.sut.base` re-exports them): the scenario runtime
needs these types without the action request dataclasses of :mod:`harness.sut.base`, which ``socle-harness serve``
never imports (issue 18, cold start)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.core.sessions import Members, SessionBook


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
    psc_client: dict[str, str] = field(default_factory=dict)  # the DUI's registration at Pro Santé Connect
    # the run's test identities (ESSMS, mailboxes, patients, PSC client) and the registry where a driver opens the
    # DUI's test session with them (harness.core.sessions; None: no session is opened)
    members: Members = field(default_factory=Members)
    sessions: SessionBook | None = None
