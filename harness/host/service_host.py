"""The service host: runs any set of simulators in one process on one asyncio loop.

All HTTP simulators share one ASGI app (Starlette) on one HTTPS port, each mounted under ``/<name>``; TCP
protocols (SMTP, IMAP, MLLP) open their own listeners. Every port may be 0 (ephemeral) so that parallel runs
never collide; the real addresses come back as the endpoints map that ``serve --endpoints-file`` writes.
Nothing is global: two hosts in one process are independent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from harness.core.journal import Direction, Exchange, Journal, Outcome
from harness.core.messages import bilingual
from harness.core.sessions import SessionBook
from harness.core.state import SNAPSHOT_EVERY, LocalStateLog, StateHub, state_log_for
from harness.fields.pki import TestPKI
from harness.fields.testdata import TestData
from harness.host.admin import admin_refusal, new_admin_token
from harness.host.asgi_tls import bounded_protocol, handshake_journaling, handshake_refusal
from harness.host.connections import ConnectionLimits, RefusalJournal
from harness.host.limits import RequestLimitGuard, RequestLimits
from harness.host.simulator import (
    Fault,
    FaultBoard,
    RunState,
    ServiceRegistry,
    Simulator,
    SimulatorContext,
    aimed_session,
    available_simulators,
)

Endpoints = dict[str, dict[str, str]]
logger = logging.getLogger(__name__)
STATE_POLL_SECONDS = 0.5  # shared state: how often a process applies the others' changes without a request


class _QuietServer(uvicorn.Server):
    """uvicorn server that leaves signal handling to its owner (the CLI or a test) and stops as soon as told
    (:meth:`exit_now`). uvicorn 0.x looks at ``should_exit`` every 0.1 s, then always waits 0.1 s more for the open
    connections to finish: 0.1-0.2 s idle at the end of every ``socle-harness run`` (issue 18). Here the exit
    request wakes the loop at once, and with no connection or task left there is nothing to wait for; with some,
    uvicorn's own graceful shutdown runs unchanged (``timeout_graceful_shutdown``)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # type: ignore[override]
        yield

    def exit_now(self) -> None:
        """Ask the server to stop (from its event loop)."""
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        """uvicorn's loop (``on_tick`` every 0.1 s: the ``Date`` header, the exit checks), woken by :meth:`exit_now`."""
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


@dataclass
class HostOptions:
    bind_host: str = "127.0.0.1"
    public_host: str = ""  # published in every endpoint instead of bind_host (harness.core.config)
    http_port: int = 0
    tls: bool = True
    services: Sequence[str] = ()  # empty = all registered
    ports: dict[str, dict[str, int]] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    admin_token: str = ""  # empty: a random one is generated (harness.host.admin)
    common_settings: dict[str, Any] = field(default_factory=dict)  # every simulator's defaults (production_ins)
    limits: RequestLimits = field(default_factory=RequestLimits)  # request-head bounds (harness.host.limits)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)  # harness.host.connections
    # ``serve --workers N``: N processes listen on the same ports (SO_REUSEPORT, the kernel spreads the
    # connections) and the health answer names this process (its number and pid)
    reuse_port: bool = False
    worker: int | None = None
    state_snapshot_every: int = SNAPSHOT_EVERY  # shared state: operations of a stream between two snapshots
    # False: this host's simulators keep their state to themselves even on a PostgreSQL journal (``run`` starts
    # simulators of its own: another run, a ``serve`` or a second child on the same database must not take its
    # injected faults nor see its mailboxes); True: ``serve``, whose processes share one platform's state
    share_state: bool = True


class ServiceHost:
    """Start and stop simulators; expose their endpoints."""

    def __init__(
        self,
        journal: Journal,
        pki: TestPKI,
        testdata: TestData,
        options: HostOptions,
        run: RunState,
        registry: Mapping[str, type[Simulator]] | None = None,
    ) -> None:
        self.journal = journal
        self.testdata = testdata
        self.registry = registry
        self.pki = pki
        self.options = options
        self.run = run
        # simulator state: applied locally, or ordered through the PostgreSQL journal's database (harness.core.state)
        log = state_log_for(journal) if options.share_state else LocalStateLog()
        self.state = StateHub(log, snapshot_every=options.state_snapshot_every)
        self.faults = FaultBoard(self.state)  # replicated: a fault injected here applies in every process
        self.admin_token = options.admin_token or new_admin_token()  # every /_admin endpoint requires it
        self.refusals = RefusalJournal(journal, run_id=lambda: run.run_id)  # refused connections, coalesced
        self.services = ServiceRegistry()  # capabilities simulators offer each other (PSC token check...)
        self.sessions = SessionBook(journal)  # the open test sessions, one cache for every simulator of the host
        self.simulators: dict[str, Simulator] = {}
        self.endpoints: Endpoints = {}
        self._http_server: _QuietServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._state_poll: asyncio.Task[None] | None = None

    def _select(self) -> dict[str, type[Simulator]]:
        registry = self.registry if self.registry is not None else available_simulators()
        wanted = list(self.options.services) or list(registry)
        unknown = [name for name in wanted if name not in registry]
        if unknown:
            raise ValueError(
                bilingual("simulateur inconnu", "unknown simulator")
                + f": {', '.join(unknown)} ("
                + bilingual("disponibles", "available")
                + f": {', '.join(registry) or 'none'})"
            )
        return {name: registry[name] for name in wanted}

    async def start(self) -> Endpoints:
        selected = self._select()
        opts = self.options
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto is IPPROTO_TCP, and without
        # it Nagle + delayed ACK add ~40 ms to every HTTPS answer written in two TLS records.
        family = socket.AF_INET6 if ":" in opts.bind_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if opts.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((opts.bind_host, opts.http_port))
        sock.listen(128)
        sock.setblocking(False)
        http_port = sock.getsockname()[1]
        scheme = "https" if opts.tls else "http"
        published = opts.public_host or opts.bind_host
        host_for_url = f"[{published}]" if ":" in published else published
        http_root = f"{scheme}://{host_for_url}:{http_port}"

        mounts: list[Mount | Route] = [
            Route("/_harness/health", self._health),
            Route("/_harness/endpoints", self._endpoints),
            Route("/_harness/faults", self._faults, methods=["GET", "POST"]),
            Route("/_harness/state/checkpoint", self._checkpoint, methods=["POST"]),
        ]
        try:
            for name, cls in selected.items():
                ctx = SimulatorContext(
                    name=name,
                    journal=self.journal,
                    pki=self.pki,
                    bind_host=opts.bind_host,
                    ports=opts.ports.get(name, {}),
                    http_base=f"{http_root}/{name}",
                    faults=self.faults,
                    services=self.services,
                    sessions=self.sessions,
                    state=self.state,
                    run=self.run,
                    testdata=self.testdata,
                    admin_token=self.admin_token,
                    connection_limits=opts.connections,
                    refused=self.refusals.refused,
                    settings={**opts.common_settings, **opts.settings.get(name, {})},
                    public_host=opts.public_host,
                    reuse_port=opts.reuse_port,
                )
                sim = cls(ctx)
                self.simulators[name] = sim
                app = sim.http_app()
                endpoints = await sim.start()
                if app is not None:
                    guarded = RequestLimitGuard(app, shape=sim.http_error_shape, limits=opts.limits, record=ctx.commit)
                    mounts.append(Mount(f"/{name}", app=guarded))
                    endpoints = {"base": ctx.http_base, **endpoints}
                    endpoints.update({k: ctx.http_base + v for k, v in sim.http_endpoints().items()})
                self.endpoints[name] = endpoints
            self.endpoints["harness"] = {"base": http_root, "health": f"{http_root}/_harness/health"}

            # Mutual TLS, optional: a client certificate of the test PKI is verified when presented and reaches the
            # apps as scope["extensions"]["tls"] (see harness.host.asgi_tls; INSi needs INSI-AUTO). The handshake is
            # done by harness.host.asgi_tls.handshake_journaling so that a refused one is journaled (peer, reason).
            # httptools (llhttp) parses HTTP/1.1, with the head bound of harness.host.limits: heads up to MAX_HEAD_BYTES
            # reach the simulators, whose guard answers an oversized one in the protocol's error shape, journaled.
            bounded = bounded_protocol(opts.connections, self.refusals.refused)  # per listener / peer, header time
            http: Any = bounded
            if opts.tls:
                context = uvicorn.config.create_ssl_context(
                    certfile=str(self.pki.server.chain_path),
                    keyfile=str(self.pki.server.key_path),
                    password=None,
                    ssl_version=ssl.PROTOCOL_TLS_SERVER,
                    cert_reqs=ssl.CERT_OPTIONAL,
                    ca_certs=str(self.pki.ca_bundle_path),
                    ciphers=None,
                )
                http = handshake_journaling(
                    bounded,
                    context,
                    self._record_handshake_refusal,
                    handshake_timeout=opts.connections.header_timeout,  # a client that never starts TLS is let go
                )
            config = uvicorn.Config(
                Starlette(routes=mounts),
                log_level="warning",
                access_log=False,
                lifespan="off",
                http=http,
                timeout_graceful_shutdown=5,  # an idle keep-alive TLS client must not block stop() forever
                timeout_keep_alive=max(1, int(opts.connections.idle_timeout)),
            )
            self._http_server = _QuietServer(config)
            self._http_task = asyncio.create_task(self._http_server.serve(sockets=[sock]))
            while not self._http_server.started:
                if self._http_task.done():
                    self._http_task.result()
                    raise RuntimeError("the HTTP server stopped while starting")
                await asyncio.sleep(0.005)
            for sim in self.simulators.values():  # every port answers: what may wait until then (PSC's keys)
                sim.serving()
            if self.state.shared:
                self._state_poll = asyncio.create_task(self._poll_state(STATE_POLL_SECONDS))
        except BaseException:
            sock.close()
            await self.stop()
            raise
        return self.endpoints

    def _record_handshake_refusal(self, peer: str, reason: str) -> None:
        """A TLS handshake the HTTPS listener refused: journaled (and logged) so that a grappe sees a DUI that cannot
        connect."""
        logger.warning("négociation TLS refusée (%s) : %s", peer, reason)
        refusal = handshake_refusal("tls", "tls.handshake", peer, reason, "https")
        self.journal.record(replace(refusal, run_id=self.run.run_id, scenario_id=self.run.scenario_id))

    async def _poll_state(self, interval: float) -> None:
        """Shared state only: apply what the other serving processes changed, so that listeners (IMAP IDLE) wake
        up without a request of their own here."""
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.state.sync_all)
            except Exception as exc:  # the database is briefly away: the next round or the next request catches up
                logger.warning("état partagé : rattrapage impossible (%s) / shared state: catch-up failed", exc)

    async def stop(self) -> None:
        if self._state_poll is not None:
            self._state_poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._state_poll
            self._state_poll = None
        if self._http_server is not None and self._http_task is not None:
            self._http_server.exit_now()
            with contextlib.suppress(Exception):
                await self._http_task
        for sim in reversed(list(self.simulators.values())):
            with contextlib.suppress(Exception):
                await sim.stop()
        self.simulators.clear()
        self.refusals.flush()  # the refusals still held back by the coalescing window

    async def _health(self, request: Request) -> JSONResponse:
        answer: dict[str, Any] = {"status": "ok", "services": sorted(self.simulators)}
        if self.options.worker is not None:  # which of serve's processes answered (serve --workers)
            answer["worker"] = {"number": self.options.worker, "pid": os.getpid()}
        return JSONResponse(answer)

    async def _endpoints(self, request: Request) -> JSONResponse:
        return JSONResponse(self.endpoints)

    async def _checkpoint(self, request: Request) -> JSONResponse:
        """``POST``: snapshot every shared state stream now and delete the operations before the snapshots
        (:meth:`harness.core.state.StateHub.checkpoint_all`); ``{stream: seq}`` of the snapshots written (none with
        one process, whose state is not in a log). The admin token always."""
        refused = admin_refusal(request.headers, self.admin_token)
        if refused is not None:
            return JSONResponse(
                {"error": refused[0], "error_description": "jeton d'administration absent ou invalide"},
                status_code=401,
                headers={"WWW-Authenticate": refused[1]},
            )
        written = await asyncio.to_thread(self.state.checkpoint_all)
        return JSONResponse({"snapshots": written})

    def _record_admin(
        self, outcome: Outcome, details: dict[str, Any], error: str | None = None, session: str | None = None
    ) -> None:
        """Journal one ``/_harness/faults`` call (a fault aimed at a test session is journaled in that session)."""
        self.journal.record(
            Exchange(
                service="harness",
                operation="admin.fault",
                direction=Direction.FROM_DUI,
                outcome=outcome,
                actor="admin",
                run_id=self.run.run_id,
                error_code=error,
                details=details,
                session_id=session,
            )
        )

    async def _faults(self, request: Request) -> JSONResponse:
        """``GET``: every simulator's declared fault catalogue; ``POST {"service", "kind", "count", "params",
        "session"}``: inject a declared fault, for the exchanges of one open test session when ``session`` is given
        (:meth:`_fault_session`). The admin token always (harness.host.admin); journaled (``harness`` /
        ``admin.fault``)."""
        refused = admin_refusal(request.headers, self.admin_token)
        if refused is not None:
            self._record_admin(Outcome.REJECTED, {"method": request.method}, refused[0])
            return JSONResponse(
                {"error": refused[0], "error_description": "jeton d'administration absent ou invalide"},
                status_code=401,
                headers={"WWW-Authenticate": refused[1]},
            )
        catalogues = {name: dict(type(sim).fault_catalogue) for name, sim in self.simulators.items()}
        if request.method == "GET":
            return JSONResponse(catalogues)
        try:
            declared = int(request.headers.get("content-length", "0"))
            if declared > 65536:
                raise ValueError("corps de plus de 65536 octets")
            raw = json.loads(await request.body() or b"{}")
            service, kind = str(raw["service"]), str(raw["kind"])
            count, params = int(raw.get("count", 1)), raw.get("params", {})
            if service not in catalogues or kind not in catalogues[service]:
                raise ValueError(
                    f"panne non déclarée par {service}: {kind} (catalogue : {sorted(catalogues.get(service, {}))})"
                )
            if not 1 <= count <= 10_000 or not isinstance(params, dict):
                raise ValueError("count entre 1 et 10000, params objet JSON")
            session = self._fault_session(service, kind, raw.get("session"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._record_admin(Outcome.REJECTED, {"erreur": str(exc)[:300]}, "400")
            return JSONResponse({"erreur": str(exc)[:300]}, status_code=400)
        self.faults.inject(service, Fault(kind, params, count, session))
        injected = {"service": service, "kind": kind, "count": count, **({"session": session} if session else {})}
        self._record_admin(Outcome.ACCEPTED, injected, session=session)
        return JSONResponse(injected, status_code=201)

    def _fault_session(self, service: str, kind: str, session: Any) -> str | None:
        """The test session a fault is aimed at (``session`` of the ``/_harness/faults`` body): see
        :func:`harness.host.simulator.aimed_session`."""
        return aimed_session(self.sessions, service, kind, type(self.simulators[service]).session_faults, session)


class BackgroundHost:
    """A :class:`ServiceHost` on its own loop in a daemon thread, for synchronous callers (pytest steps)."""

    def __init__(self, host: ServiceHost) -> None:
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="socle-host", daemon=True)

    def start(self, timeout: float = 30.0) -> Endpoints:
        self._thread.start()
        try:
            return asyncio.run_coroutine_threadsafe(self.host.start(), self._loop).result(timeout)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.host.stop(), self._loop).result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()

    def __enter__(self) -> Endpoints:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
