"""``socle-harness serve --workers N``: N serving processes on the same ports of one machine, supervised.

The parent prepares what every process must share — the journal schema (PostgreSQL, applied once), the test PKI
and the organisation certificates, the admin token, the run id and the listening ports (an ephemeral port is
chosen once, then held by a bound, non-listening reservation socket for the parent's lifetime) — and starts the
workers, forked from a ``multiprocessing`` fork server that imported the service host and the simulators once
(a restarted worker does not import them again). Each worker runs the whole service host with ``SO_REUSEPORT`` on every
listener (HTTPS, SMTP, IMAP, MLLP): Linux spreads the incoming connections over the listening sockets of the
group (``socket(7)``, SO_REUSEPORT). Worker 1 starts first (it issues the missing organisation certificates),
the others after it; the parent then writes the endpoints file once and supervises: a worker that dies (``kill
-9``, a crash) is restarted and logged, SIGINT / SIGTERM of the parent stops every worker (SIGTERM, then SIGKILL
after a delay). A worker whose supervisor disappears (``kill -9``) stops by itself.

Several machines serve one platform with the same command pointed at one PostgreSQL database: they share the
journal (its schema applied under an advisory lock, its ``seq`` given in commit order) and the state the
simulators keep through :mod:`harness.core.state` (faults, mailboxes, DMP registry, FHIR stores, e-Prescription,
PSC: ``docs/ARCHITECTURE.md`` « État partagé »); anything else is each process's own. A worker that starts or
restarts takes that state from each stream's latest snapshot and the operations after it, not from the whole
history (``socle_state_snapshot``, written every 1,000 operations of a stream).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import Any

from harness.core.config import HarnessConfig
from harness.host.simulator import ENTRY_POINT_GROUP

#: How long a worker may take to start (imports, PKI, listeners) before the parent gives up on it.
START_TIMEOUT = 120.0
#: A worker that dies again sooner than this after its restart is restarted after a growing delay (1, 2, 4… 30 s);
#: the first death is restarted at once.
QUICK_DEATH = 10.0
MAX_BACKOFF = 30.0
#: What the fork server imports before forking workers (with every service plugin's module: its simulator).
PRELOAD = ("harness.front.workers", "harness.runtime.environment")
#: After SIGTERM, how long a worker has to close its listeners and journal before SIGKILL.
STOP_GRACE = 15.0


class WorkersError(Exception):
    """``serve --workers`` cannot start: one French line (and the English after « / »), exit code 2."""


def can_share_ports() -> bool:
    """Whether this system lets several processes listen on one port (``SO_REUSEPORT``)."""
    return hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, non-listening ``SO_REUSEPORT`` socket holding ``port`` (0: one the system chooses) for the
    workers, who bind it with ``SO_REUSEPORT`` too. A given port is first bound alone (``SO_REUSEADDR`` only):
    that fails when anything listens there already — another ``serve --workers`` of this user included, whose
    group the workers would otherwise join. Raises :class:`OSError` (EADDRINUSE) then. The reservation never
    sets ``SO_REUSEADDR``: with it, Linux refuses the workers' bind (``inet_csk_bind_conflict``)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        if port:
            with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"{host}:{port} : {exc.strerror}") from exc
    return sock


def reserve_ports(config: HarnessConfig) -> tuple[HarnessConfig, list[socket.socket]]:
    """The configuration with every listening port fixed (ephemeral ones chosen now), and the reservations
    holding them. Only the TCP ports of the services that will start are reserved."""
    held: list[socket.socket] = []
    try:
        https = reserve_port(config.bind_host, config.http_port)
        held.append(https)
        ports: dict[str, dict[str, int]] = {}
        for service, named in config.ports.items():
            if config.services and service not in config.services:
                ports[service] = dict(named)
                continue
            ports[service] = {}
            for name, port in named.items():
                sock = reserve_port(config.bind_host, int(port))
                held.append(sock)
                ports[service][name] = sock.getsockname()[1]
    except OSError:
        for sock in held:
            sock.close()
        raise
    return replace(config, http_port=https.getsockname()[1], ports=ports), held


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process is given (pickled to the forked process)."""

    config: HarnessConfig
    number: int
    run_id: str
    admin_token: str = field(repr=False)


def serve_worker(
    spec: WorkerSpec, conn: multiprocessing.connection.Connection, lifeline: multiprocessing.connection.Connection
) -> None:
    """A worker process: the service host with shared ports until SIGINT / SIGTERM or the supervisor's end. Sends
    ``("ready", pid, endpoints)`` on ``conn`` once listening, or ``("failed", reason)``. ``lifeline`` is the read
    end of a pipe only the supervisor writes to: it reads as closed when the supervisor is gone, however it ended
    (the parent pid cannot tell: a fork server's child keeps the fork server as its parent)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    from harness.runtime.environment import SocleEnvironment

    try:
        env = SocleEnvironment(spec.config, spec.run_id, admin_token=spec.admin_token, worker=spec.number)
    except Exception as exc:  # noqa: BLE001 - told to the parent, which decides
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(2) from exc
    try:
        try:
            endpoints = env.start()
        except Exception as exc:  # noqa: BLE001 - idem
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
            raise SystemExit(2) from exc
        conn.send(("ready", os.getpid(), endpoints))
        conn.close()
        while not stop.is_set():
            if lifeline.poll(0.5):  # end of file: the supervisor is gone, nobody would stop us
                break
    finally:
        env.stop()


@dataclass
class Worker:
    """One supervised process (replaced by a new one at each restart)."""

    number: int
    process: Any  # multiprocessing.context.ForkServerProcess
    conn: multiprocessing.connection.Connection
    lifeline: multiprocessing.connection.Connection  # the write end, closed when the worker is given up
    started: float
    pid: int | None = None  # once ready
    ready: bool = False


def describe_end(exitcode: int | None) -> str:
    """How a process ended, in French: « le signal SIGKILL », « le code de sortie 1 »."""
    if exitcode is None:
        return "une cause inconnue"
    if exitcode < 0:
        try:
            return f"le signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"le signal {-exitcode}"
    return f"le code de sortie {exitcode}"


class Supervisor:
    """Starts, watches and restarts the N worker processes of ``serve --workers N``."""

    def __init__(
        self, config: HarnessConfig, count: int, run_id: str, admin_token: str, log: Callable[[str], None]
    ) -> None:
        self.config = config
        self.count = count
        self.run_id = run_id
        self.admin_token = admin_token
        self.log = log
        self.workers: dict[int, Worker] = {}
        self.restarts = 0
        # Workers are forked from a fork server that imported the service host once (a restart does not import it
        # again); it is single-threaded, unlike this process, and ends when this process ends.
        self._context = multiprocessing.get_context("forkserver")
        plugins = [entry.module for entry in entry_points(group=ENTRY_POINT_GROUP)]
        self._context.set_forkserver_preload([*PRELOAD, *plugins])
        self._failures: dict[int, int] = {}  # quick deaths in a row, per worker number (restart delay)
        self._due: dict[int, float] = {}  # worker number -> when to restart it

    def _spawn(self, number: int) -> Worker:
        receiver, sender = self._context.Pipe(duplex=False)
        life_r, life_w = self._context.Pipe(duplex=False)
        spec = WorkerSpec(self.config, number, self.run_id, self.admin_token)
        process = self._context.Process(target=serve_worker, args=(spec, sender, life_r), name=f"socle-serve-{number}")
        process.start()
        sender.close()
        life_r.close()
        worker = Worker(number, process, receiver, life_w, time.monotonic())
        self.workers[number] = worker
        return worker

    def _ready(self, worker: Worker) -> tuple[bool, Any]:
        """Read the worker's message: ``(True, endpoints)`` or ``(False, reason)``."""
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(5)
            return False, f"arrêté au démarrage par {describe_end(worker.process.exitcode)}"
        finally:
            worker.conn.close()
        if message[0] == "ready":
            worker.pid, worker.ready = message[1], True
            return True, message[2]
        worker.process.join(5)
        return False, message[1]

    def _await_start(self, workers: Sequence[Worker], stop: threading.Event) -> dict[str, dict[str, str]] | None:
        """Wait until ``workers`` are listening; their endpoints (``None`` when stopped meanwhile). Raises
        :class:`WorkersError` when one cannot start (a port taken, an unknown service...)."""
        deadline = time.monotonic() + START_TIMEOUT
        waiting = {w.conn: w for w in workers}
        endpoints: dict[str, dict[str, str]] | None = None
        while waiting:
            if stop.is_set():
                return None
            if time.monotonic() > deadline:
                raise WorkersError(
                    f"processus de service n°{next(iter(waiting.values())).number} pas prêt après "
                    f"{START_TIMEOUT:.0f} s / worker not ready"
                )
            for conn in multiprocessing.connection.wait(list(waiting), timeout=0.5):
                worker = waiting.pop(conn)  # type: ignore[call-overload]
                ok, value = self._ready(worker)
                if not ok:
                    raise WorkersError(
                        f"le processus de service n°{worker.number} n'a pas démarré : {value} / worker failed to start"
                    )
                endpoints = endpoints or value
        return endpoints

    def start(self, stop: threading.Event) -> dict[str, dict[str, str]] | None:
        """Start worker 1, then the others (worker 1 has issued the missing certificates); the endpoints, or
        ``None`` when ``stop`` was set meanwhile."""
        endpoints = self._await_start([self._spawn(1)], stop)
        if endpoints is None:
            return None
        others = [self._spawn(number) for number in range(2, self.count + 1)]
        if self._await_start(others, stop) is None:
            return None
        return endpoints

    def supervise(self, stop: threading.Event) -> None:
        """Until ``stop``: restart every worker that dies (at once, or after a growing delay when it died soon
        after its start), log each death and each restart."""
        while not stop.is_set():
            now = time.monotonic()
            for number, due in list(self._due.items()):
                if due <= now:
                    del self._due[number]
                    worker = self._spawn(number)
                    self.log(f"Processus de service n°{number} relancé (pid {worker.process.pid})…")
            watched: list[Any] = []
            for worker in self.workers.values():
                if worker.number in self._due:
                    continue
                watched.append(worker.process.sentinel)
                if not worker.ready and not worker.conn.closed:
                    watched.append(worker.conn)
            for item in multiprocessing.connection.wait(watched, timeout=0.5):
                if stop.is_set():
                    return
                self._event(item)

    def _event(self, item: Any) -> None:
        for worker in list(self.workers.values()):
            if item is worker.conn:
                ok, value = self._ready(worker)
                if ok:
                    self.log(f"Processus de service n°{worker.number} prêt : pid {worker.pid} / worker restarted")
                else:
                    self.log(f"Processus de service n°{worker.number} : échec du redémarrage ({value})")
                return
            if item == worker.process.sentinel:
                worker.process.join(1)
                quick = time.monotonic() - worker.started < QUICK_DEATH
                failures = self._failures.get(worker.number, 0) + 1 if quick else 0
                self._failures[worker.number] = failures
                delay = min(MAX_BACKOFF, 2.0 ** (failures - 2)) if failures > 1 else 0.0
                self.restarts += 1
                when = f"dans {delay:.0f} s" if delay else "maintenant"
                self.log(
                    f"Processus de service n°{worker.number} (pid {worker.process.pid}) arrêté par "
                    f"{describe_end(worker.process.exitcode)} : redémarrage {when} / worker died, restarting"
                )
                for end in (worker.conn, worker.lifeline):
                    if not end.closed:
                        end.close()
                self._due[worker.number] = time.monotonic() + delay
                return

    def stop(self) -> None:
        """SIGTERM to every worker, then SIGKILL to those still there after :data:`STOP_GRACE`."""
        self._due.clear()
        alive = [w.process for w in self.workers.values() if w.process.is_alive()]
        for process in alive:
            process.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in alive:
            if process.is_alive():
                process.kill()
                process.join(5)
        for worker in self.workers.values():
            for end in (worker.conn, worker.lifeline):
                if not end.closed:
                    end.close()
