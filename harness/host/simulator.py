"""What a socle-service simulator is, and how simulators are found.

A simulator is one sub-package of ``mock_services`` exposing a :class:`Simulator` subclass, named by its service's
plugin (:class:`harness.sut.plugins.ServicePlugin`, entry-point group ``socle_harness.services``, one line in
``pyproject.toml``). The service host gives
each simulator a :class:`SimulatorContext` (journal, test PKI, ports, faults, the current scenario) and
mounts its ASGI app under ``/<name>`` on the shared HTTPS port; TCP protocols (SMTP, IMAP, MLLP) start their
own listeners in :meth:`Simulator.start`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar

from starlette.types import ASGIApp

from harness.core.journal import Direction, Exchange, Journal, Outcome
from harness.core.sessions import SessionBook
from harness.core.state import StateHub
from harness.fields.pki import TestPKI
from harness.fields.testdata import TestData
from harness.host.admin import admin_refusal
from harness.host.connections import ConnectionLimits

ENTRY_POINT_GROUP = "socle_harness.services"  # one ServicePlugin per service; this layer reads its ``simulator``


@dataclass(frozen=True)
class FaultSpec:
    """One kind of fault of a service's fault catalogue (declared by its plugin): the ``kind`` a scenario injects
    (``Fault(kind, params)``), what the simulator then does (French), and the parameters it reads."""

    name: str
    description: str
    params: tuple[str, ...] = ()


def fault_specs(catalogue: Mapping[str, str]) -> tuple[FaultSpec, ...]:
    """A simulator's declared ``fault_catalogue`` (kind -> what it does) as the plugin's fault catalogue."""
    return tuple(FaultSpec(name, description) for name, description in catalogue.items())


def catalogue_of(specs: tuple[FaultSpec, ...]) -> dict[str, str]:
    """The ``Simulator.fault_catalogue`` (kind -> what it does) of faults declared with their parameters."""
    return {spec.name: spec.description for spec in specs}


@dataclass(frozen=True)
class Fault:
    """A fault a scenario asks a simulator to inject on its next matching exchange(s).

    ``kind`` is simulator-specific (``smtp.reply`` for MSSanté...); ``params`` gives its parameters.
    """

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    remaining: int = 1
    # the open test session whose exchanges it applies to (issue 19 item 4); ``None``: every exchange, as before
    session: str | None = None

    def matches(self, match: Mapping[str, str] | None) -> bool:
        """Whether the exchange described by ``match`` (parameter -> the exchange's value, e.g. ``{"address":
        recipient}``) is one this fault aims at: each of those parameters the fault sets (non-empty) equals the
        exchange's value, compared without case (mailbox addresses); a parameter the fault leaves out matches
        any exchange."""
        if not match:
            return True
        for key, value in match.items():
            wanted = self.params.get(key)
            if wanted not in (None, "") and str(wanted).casefold() != str(value).casefold():
                return False
        return True


FAULTS_STREAM = "harness.faults"  # the replicated state of the host's fault board (harness.core.state)


class FaultBoard:
    """Per-run queue of injected faults, keyed by service name, consumed by every simulator; thread-safe.

    A replicated state (stream :data:`FAULTS_STREAM` of the host's :class:`~harness.core.state.StateHub`): with a
    PostgreSQL journal a fault injected through one serving process applies on the others. :meth:`take` runs on
    every exchange, so it first looks at the (caught-up) local queue and only asks the log when a matching fault
    is pending; the operation checks again when it is applied, so that of two processes racing for the last
    occurrence exactly one gets it. ``guard`` (observe-only mode) stays local to the process.
    """

    def __init__(self, state: StateHub | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, deque[Fault]] = {}
        # called before every injection; raises to refuse it (observe-only mode: a past activity has no faults)
        self.guard: Callable[[str, Fault], None] | None = None
        hub = state if state is not None else StateHub()
        self._replica = hub.replica(FAULTS_STREAM, self._apply, self._reset, self.snapshot, self.restore)

    def inject(self, service: str, fault: Fault) -> None:
        if self.guard is not None:
            self.guard(service, fault)
        op = {"op": "inject", "service": service, "kind": fault.kind, "params": dict(fault.params)}
        if fault.session is not None:
            op["session"] = fault.session
        self._replica.do({**op, "remaining": fault.remaining})

    def take(
        self,
        service: str,
        kind: str,
        *,
        session: str | Callable[[], str | None] | None = None,
        match: Mapping[str, str] | None = None,
    ) -> Fault | None:
        """Consume one occurrence of the first pending fault of ``kind`` for ``service`` that applies to this
        exchange: not aimed at another session than ``session`` (the exchange's test session, or a function giving
        it, called only when a pending fault of ``kind`` is aimed at a session: without sessions nothing is looked
        up), and whose parameters :meth:`Fault.matches` ``match``. A fault that does not apply is left in place,
        untouched: no operation is written for it."""
        self._replica.sync()
        with self._lock:
            queue = self._faults.get(service)
            candidates = [f for f in queue if f.kind == kind and f.matches(match)] if queue else []
        if not candidates:
            return None
        asking: str | None = None
        if any(f.session is not None for f in candidates):
            asking = session() if callable(session) else session
            if all(f.session not in (None, asking) for f in candidates):
                return None
        op: dict[str, Any] = {"op": "take", "service": service, "kind": kind}
        if asking is not None:
            op["session"] = asking
        if match:
            op["match"] = dict(match)
        taken: Fault | None = self._replica.do(op)
        return taken

    def clear(self, service: str | None = None) -> None:
        self._replica.do({"op": "clear", "service": service})

    def _apply(self, op: Mapping[str, Any]) -> Fault | None:
        """Apply one operation of the board's stream; a ``take`` returns the fault it consumed (``None``: another
        process consumed the last occurrence first)."""
        action, service = op["op"], op["service"]
        with self._lock:
            if action == "inject":
                session = op.get("session")
                fault = Fault(str(op["kind"]), dict(op["params"]), int(op["remaining"]), session)
                self._faults.setdefault(service, deque()).append(fault)
            elif action == "take":
                return self._consume(self._faults.get(service), str(op["kind"]), op.get("session"), op.get("match"))
            elif action == "clear":
                if service is None:
                    self._faults.clear()
                else:
                    self._faults.pop(service, None)
            else:
                raise ValueError(f"opération inconnue du tableau des pannes / unknown fault-board operation: {action}")
        return None

    @staticmethod
    def _consume(
        queue: deque[Fault] | None, kind: str, session: str | None, match: Mapping[str, str] | None
    ) -> Fault | None:
        if not queue:
            return None
        for index, fault in enumerate(queue):
            if fault.kind == kind and fault.session in (None, session) and fault.matches(match):
                if fault.remaining <= 1:
                    del queue[index]
                else:
                    queue[index] = replace(fault, remaining=fault.remaining - 1)
                return fault
        return None

    def _reset(self) -> None:
        with self._lock:
            self._faults.clear()

    def snapshot(self) -> dict[str, Any]:
        """The pending faults as JSON (harness.core.state snapshot): ``{service: [[kind, params, remaining]]}``,
        a fault aimed at a test session with the session as a fourth item."""
        with self._lock:
            return {
                service: [[f.kind, dict(f.params), f.remaining, *([f.session] if f.session else [])] for f in queue]
                for service, queue in self._faults.items()
            }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the pending faults by a :meth:`snapshot`."""
        with self._lock:
            self._faults = {
                service: deque(
                    Fault(str(item[0]), dict(item[1]), int(item[2]), str(item[3]) if len(item) > 3 else None)
                    for item in queue
                )
                for service, queue in state.items()
            }


class ServiceRegistry:
    """What simulators of one host offer each other in-process, by name (thread-safe).

    A simulator ``provide``s a capability when it is built (PSC: ``"psc.access_token"``, a callable that
    introspects an access token) and another looks it up when it needs it (MSSanté XOAUTH2), so that no
    simulator imports another's internals and nothing is global: each host has its own registry.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Any] = {}

    def provide(self, name: str, value: Any) -> None:
        with self._lock:
            self._items[name] = value

    def get(self, name: str) -> Any | None:
        with self._lock:
            return self._items.get(name)


class RunState:
    """Which run and scenario the exchanges seen now belong to (set by the scenario runtime)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._scenario_id: str | None = None
        self._clock: Callable[[], datetime] | None = None
        self._lock = threading.Lock()

    @property
    def clock(self) -> Callable[[], datetime] | None:
        """Simulated time (``None`` = real time): the indicator scenarios and ``socle-harness simulate`` replay
        months of activity in seconds, so the exchanges they cause are stamped with the simulated date."""
        with self._lock:
            return self._clock

    @clock.setter
    def clock(self, value: Callable[[], datetime] | None) -> None:
        with self._lock:
            self._clock = value

    def now(self) -> datetime | None:
        """The simulated time, or ``None`` when the run follows the real clock."""
        clock = self.clock
        return clock() if clock is not None else None

    @property
    def scenario_id(self) -> str | None:
        with self._lock:
            return self._scenario_id

    @scenario_id.setter
    def scenario_id(self, value: str | None) -> None:
        with self._lock:
            self._scenario_id = value


@dataclass
class SimulatorContext:
    """Everything a simulator gets from the host. One per simulator per run: nothing is shared globally."""

    name: str
    journal: Journal
    pki: TestPKI
    bind_host: str
    ports: Mapping[str, int]  # named TCP ports this simulator should bind (0 = ephemeral)
    http_base: str  # public base URL of this simulator's ASGI mount, e.g. https://127.0.0.1:8443/mssante
    faults: FaultBoard
    run: RunState
    testdata: TestData  # synthetic persons, establishments and directories shared by all simulators
    settings: Mapping[str, Any] = field(default_factory=dict)
    services: ServiceRegistry = field(default_factory=ServiceRegistry)  # shared by the simulators of one host
    # the open test sessions of the journal (harness.core.sessions), shared by the simulators of one host; None:
    # a book of its own over ``journal``
    sessions: SessionBook | None = None
    admin_token: str = field(default="", repr=False)  # what the /_admin endpoints require (harness.host.admin)
    # bounds of the listeners a simulator opens itself (SMTP, IMAP, MLLP) and where to report what they refuse:
    # refused(listener, peer, reason) journals it, coalesced (harness.host.connections)
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    refused: Callable[[str, str, str], None] | None = None
    public_host: str = ""  # the name published to the DUI (config public_host); empty = bind_host
    # where the simulator's state changes are ordered: local, or shared by the serving processes of one
    # PostgreSQL database (harness.core.state: ctx.state.replica(stream, apply, reset))
    state: StateHub = field(default_factory=StateHub)
    # several processes listen on the same ports (``serve --workers N``): every TCP listener sets SO_REUSEPORT
    reuse_port: bool = False

    def __post_init__(self) -> None:
        if self.sessions is None:
            self.sessions = SessionBook(self.journal)

    @property
    def session_book(self) -> SessionBook:
        assert self.sessions is not None  # set by __post_init__
        return self.sessions

    def session_of(self, kind: str, value: str | None) -> str | None:
        """The open test session holding the member ``(kind, value)`` (``essms``, ``mailbox``, ``patient``,
        ``client``), or ``None``."""
        return self.session_book.session_of(kind, value)

    def cross_session(self, caller: tuple[str, str | None], owner: tuple[str, str | None]) -> str | None:
        """The refusal (French / English) when the authenticated ``caller`` and the ``owner`` of the data asked
        for belong to two different open sessions; ``None`` when the read is allowed (issue 19 item 4)."""
        return self.session_book.cross_session(caller, owner)

    def address(self, port: int) -> str:
        """``host:port`` of a TCP listener as the DUI must write it (the public name, IPv6 in brackets)."""
        host = self.public_host or self.bind_host
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def admin_refusal(self, headers: Mapping[str, str]) -> tuple[str, str] | None:
        """``None`` when a request to an admin endpoint carries the host's admin token, else ``(error,
        WWW-Authenticate)`` for its 401 (:func:`harness.host.admin.admin_refusal`)."""
        return admin_refusal(headers, self.admin_token)

    def exchange(
        self,
        operation: str,
        outcome: Outcome,
        *,
        direction: Direction = Direction.FROM_DUI,
        actor: str | None = None,
        essms: str | None = None,
        person: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        payload: bytes | None = None,
        payload_type: str | None = None,
        details: dict[str, Any] | None = None,
        digest: str | None = None,
        attachments: tuple[bytes, ...] = (),
        session: str | None = None,
    ) -> Exchange:
        """One exchange of this service, built but not yet journaled (for :meth:`record_many`): the service name
        is this simulator's, the direction ``from_dui`` unless told; :meth:`commit` stamps run and time. ``digest``
        points a row without payload at evidence another row of the same commit carries (a TDDUI fact's Bundle);
        ``attachments`` are further evidence bodies committed with it (the answer sent, named in ``details`` by its
        :func:`harness.core.journal.payload_digest`); ``session``: the test session to journal it in when it is not
        the one its identities name (the refusal of a caller asking for another session's data is the caller's)."""
        return Exchange(
            service=self.name,
            operation=operation,
            direction=direction,
            outcome=outcome,
            actor=actor,
            essms=essms,
            person=person,
            error_code=error_code,
            error_message=error_message,
            payload=payload,
            payload_type=payload_type,
            details=details if details is not None else {},
            digest=digest,
            attachments=attachments,
            session_id=session,
        )

    def record(
        self,
        operation: str,
        outcome: Outcome,
        *,
        direction: Direction = Direction.FROM_DUI,
        actor: str | None = None,
        essms: str | None = None,
        person: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        payload: bytes | None = None,
        payload_type: str | None = None,
        details: dict[str, Any] | None = None,
        attachments: tuple[bytes, ...] = (),
        session: str | None = None,
    ) -> Exchange:
        """Journal one exchange of this service (built by :meth:`exchange`, stamped by :meth:`commit`); returns it
        with its payload digest set. Every simulator journals through here, so every row has the same shape."""
        built = self.exchange(
            operation,
            outcome,
            direction=direction,
            actor=actor,
            essms=essms,
            person=person,
            error_code=error_code,
            error_message=error_message,
            payload=payload,
            payload_type=payload_type,
            details=details,
            attachments=attachments,
            session=session,
        )
        return self.commit(built)

    def commit(self, exchange: Exchange) -> Exchange:
        """Commit an already built exchange (a FHIR interaction, a refused handshake, an oversized request),
        stamped with the service, run, scenario, the test session of its identities (simulated time)."""
        return self.journal.record(self.stamp(exchange))

    def record_many(self, exchanges: list[Exchange]) -> list[Exchange]:
        """Commit several exchanges atomically (a FHIR transaction and its entries), stamped like :meth:`commit`."""
        return self.journal.record_many([self.stamp(e) for e in exchanges])

    def stamp(self, exchange: Exchange) -> Exchange:
        """``exchange`` with this service, the run, the scenario, the test session of its identities and the
        simulated time, as :meth:`commit` journals it: a handler that must act on the session before journaling
        (the DMP registers an ITI-41 first) stamps it, then commits the stamped exchange."""
        session = exchange.session_id or self.session_book.attribute(
            actor=exchange.actor,
            essms=exchange.essms,
            person=exchange.person,
            client_id=exchange.details.get("client_id"),
        )
        stamped = replace(
            exchange,
            service=self.name,
            run_id=self.run.run_id,
            scenario_id=self.run.scenario_id,
            session_id=session,
        )
        simulated = self.run.now()
        return replace(stamped, ts=simulated) if simulated is not None else stamped

    def port(self, name: str) -> int:
        return int(self.ports.get(name, 0))

    def take_fault(
        self,
        kind: str,
        *,
        match: Mapping[str, str] | None = None,
        actor: str | None = None,
        essms: str | None = None,
        person: str | None = None,
        client_id: str | None = None,
    ) -> Fault | None:
        """Take one occurrence of a pending fault of ``kind`` that applies to the exchange in progress: its
        identities (those known so far: ``actor``, ``essms``, ``person``, ``client_id``) give its test session as
        :meth:`commit` will stamp it, and a fault aimed at another session is left alone; ``match``: the
        exchange's values of the fault's parameters (:meth:`Fault.matches`). A simulator that passes identities
        for a kind lists it in :attr:`Simulator.session_faults`."""

        def session() -> str | None:
            return self.session_book.attribute(actor=actor, essms=essms, person=person, client_id=client_id)

        return self.faults.take(self.name, kind, session=session, match=match)


def aimed_session(sessions: SessionBook, service: str, kind: str, scoped: frozenset[str], session: Any) -> str | None:
    """The test session a fault injection is aimed at (its ``session`` field, issue 19 item 4), for the host's
    ``/_harness/faults`` and a simulator's own fault endpoint alike: absent, ``None`` (every exchange, as before);
    else an open session and a kind of ``scoped`` (:attr:`Simulator.session_faults`), the kinds taken with the
    exchange's identities — one taken before the DUI names itself could never be told apart, so it is refused
    rather than never applied. :class:`ValueError` (French, the answer's 400 text) otherwise."""
    if session is None:
        return None
    if not isinstance(session, str) or session not in {s.id for s in sessions.open_sessions()}:
        raise ValueError(
            f"session « {session} » : aucune session de test ouverte de ce nom (socle-harness session list)"
        )
    if kind not in scoped:
        raise ValueError(
            f"la panne {kind} survient avant que le DUI ne s'identifie : elle ne peut viser une session "
            f"(pannes de {service} qui le peuvent : {sorted(scoped)})"
        )
    return session


class Simulator:
    """Base class of every socle-service simulator.

    Subclasses set ``name`` (the registry key and URL prefix) and ``title``, and override what they need:
    :meth:`http_app` for HTTP services, :meth:`start` / :meth:`stop` for TCP listeners. ``start`` returns
    the simulator's named endpoints (``{"smtp": "127.0.0.1:2587"}``); the host adds ``base`` for HTTP ones.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    tcp_ports: ClassVar[tuple[str, ...]] = ()  # names of the TCP ports it binds
    #: The faults it understands, ``<service>.<fault>`` -> what it does (the host's ``/_harness/faults`` injects
    #: only these; issue 13 item 2)
    fault_catalogue: ClassVar[Mapping[str, str]] = {}
    #: The kinds of its catalogue it takes with the identities of the exchange in progress
    #: (:meth:`SimulatorContext.take_fault`), so that ``/_harness/faults`` may aim them at one test session; the
    #: others come before the DUI names itself (a TLS handshake, a greeting) and apply to every session.
    session_faults: ClassVar[frozenset[str]] = frozenset()
    #: How its protocol answers an oversized request (:func:`harness.host.limits.error_response`): ``oauth``,
    #: ``fhir``, ``soap12`` or ``text``.
    http_error_shape: ClassVar[str] = "text"

    def __init__(self, ctx: SimulatorContext) -> None:
        self.ctx = ctx

    def http_app(self) -> ASGIApp | None:
        return None

    def http_endpoints(self) -> dict[str, str]:
        """Named HTTP endpoints relative to the mount (``{"registry": "/registry"}``)."""
        return {}

    async def start(self) -> dict[str, str]:
        return {}

    def serving(self) -> None:
        """Called once every listener of the host answers: preparation a first request would otherwise do (and
        that must then still be correct without it), started here so that it does not delay the ports answering
        (issue 18, cold start). Must return at once: start a thread for anything long."""
        return None

    async def stop(self) -> None:
        return None


def simulator_names() -> list[str]:
    """Names of the registered services, without importing them."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def available_simulators() -> dict[str, type[Simulator]]:
    """The registered simulators, keyed by name: the ``simulator`` part of each service plugin (entry-point group
    ``socle_harness.services``; the plugins themselves are validated by :func:`harness.sut.plugins.services`)."""
    found: dict[str, type[Simulator]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = getattr(ep.load(), "simulator", None)
        if not (isinstance(cls, type) and issubclass(cls, Simulator)):
            raise TypeError(f"service plugin {ep.name!r} ({ep.value}) names no Simulator subclass as its simulator")
        found[ep.name] = cls
    return dict(sorted(found.items()))
