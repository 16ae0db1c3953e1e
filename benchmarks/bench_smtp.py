"""SMTP submission throughput: the MSSanté simulator vs a bare aiosmtpd sink, measured in the same run.

Both servers speak the same dialogue (STARTTLS required, AUTH required, same TLS certificate from the same
test PKI, same login) and receive the same pre-built MSSanté message bytes; the sink's ``handle_DATA`` returns
``250 OK`` without doing anything, so the ratio simulator/sink is the cost of what the simulator adds
(directory checks, message validation, journal commit, per-connection TLS context...).

Modes:
  a   one TLS + AUTH session, M messages in it (per-message cost);
  b   a new connection + STARTTLS + AUTH for every message (what the reference DUI does).

Goal: simulator >= 50 % of the sink's messages/s in each mode.

Run from the repository root:  python benchmarks/bench_smtp.py [--mode a|b|both] [--messages N] [--clients K]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import smtplib
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from harness.core.config import HarnessConfig, package_root
from harness.core.journal import JournalFilter, Outcome
from harness.fields.testdata import load_testdata
from harness.runtime.environment import SocleEnvironment
from harness.sut.documents import build_message

LOGIN = "dui@ehpad-tilleuls.mssante.fr"
PASSWORD = "dui-tilleuls-test"
RECIPIENT = "jean.dupont@medecin.mssante.fr"
GOAL = 0.50  # simulator >= 50 % of the sink
TIME_CAP = 20.0  # seconds: hard cap of one measurement (it stops early and reports what it managed)
DEFAULT_MESSAGES = {"a": 300, "b": 100}
WARMUP = {"a": 20, "b": 5}


# ------------------------------------------------------------------------------------------------ the sink


class _SinkHandler:
    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        return "250 OK"


def _sink_authenticator(server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    if (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == LOGIN.encode()
        and auth_data.password == PASSWORD.encode()
    ):
        return AuthResult(success=True, auth_data=LOGIN)
    return AuthResult(success=False, handled=False)


class LoopThread:
    """One asyncio loop in a daemon thread, hosting the sink."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-sink", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def start_sink(tls_context: ssl.SSLContext) -> asyncio.base_events.Server:
    """A bare aiosmtpd server on an ephemeral port (aiosmtpd's Controller(port=0) cannot do this)."""
    handler = _SinkHandler()

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="sink.test",
            tls_context=tls_context,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=_sink_authenticator,
            data_size_limit=20 * 1024 * 1024,
            enable_SMTPUTF8=False,
            timeout=60,
        )

    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host="127.0.0.1", port=0)


# ---------------------------------------------------------------------------------------------- the client


@dataclass
class Measure:
    server: str
    mode: str
    clients: int
    messages: int  # accepted during the measured window
    seconds: float
    cpu: float = 0.0  # CPU seconds of this process (clients and servers) during the measure
    refused: int = 0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per answer (clients included: the same for both servers): steadier than the rate when
        other jobs share the machine."""
        return self.cpu * 1000.0 / self.messages if self.messages else 0.0


def _session(port: int, context: ssl.SSLContext) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=30)
    smtp.ehlo("bench.test")
    smtp.starttls(context=context)
    smtp.ehlo("bench.test")
    smtp.login(LOGIN, PASSWORD)
    return smtp


def _send(smtp: smtplib.SMTP, message: bytes) -> bool:
    try:
        refused = smtp.sendmail(LOGIN, [RECIPIENT], message)
    except smtplib.SMTPResponseException:
        return False
    return not refused


def _client_mode_a(port: int, context: ssl.SSLContext, message: bytes, count: int, deadline: float) -> tuple[int, int]:
    ok = bad = 0
    with _session(port, context) as smtp:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            if _send(smtp, message):
                ok += 1
            else:
                bad += 1
    return ok, bad


def _client_mode_b(port: int, context: ssl.SSLContext, message: bytes, count: int, deadline: float) -> tuple[int, int]:
    ok = bad = 0
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        with _session(port, context) as smtp:
            if _send(smtp, message):
                ok += 1
            else:
                bad += 1
    return ok, bad


CLIENTS: dict[str, Callable[..., tuple[int, int]]] = {"a": _client_mode_a, "b": _client_mode_b}


def measure(
    server: str, port: int, mode: str, context: ssl.SSLContext, message: bytes, count: int, clients: int
) -> Measure:
    """Send ``count`` messages split over ``clients`` threads; wall time of the whole batch."""
    client = CLIENTS[mode]
    shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    results: list[tuple[int, int]] = [(0, 0)] * clients
    errors: list[BaseException] = []
    deadline = time.monotonic() + TIME_CAP

    def work(i: int) -> None:
        try:
            results[i] = client(port, context, message, shares[i], deadline)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    start, cpu = time.perf_counter(), time.process_time()
    if clients == 1:
        work(0)
    else:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIME_CAP + 30)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if errors:
        raise RuntimeError(f"{server} mode {mode}: client error {errors[0]!r}") from errors[0]
    return Measure(server, mode, clients, sum(r[0] for r in results), elapsed, cpu, sum(r[1] for r in results))


# ------------------------------------------------------------------------------------------------- main


def run(modes: list[str], messages: int | None, clients: int, rounds: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-smtp-"))
    sink_host = LoopThread()
    env: SocleEnvironment | None = None
    sink_server = None
    out: dict[str, Any] = {"benchmark": "smtp", "modes": {}}
    try:
        config = HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/j.sqlite", services=("mssante",))
        env = SocleEnvironment(config)
        sim_port = int(env.start()["mssante"]["smtp"].rpartition(":")[2])
        sink_server = sink_host.run(start_sink(env.pki.server_ssl_context()))
        sink_port = sink_server.sockets[0].getsockname()[1]
        client_context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
        client_context.minimum_version = ssl.TLSVersion.TLSv1_2

        testdata = load_testdata(package_root() / "fixtures")
        person = testdata.person("P001")
        establishment = testdata.establishment(person.essms)
        assert establishment.dui_mailbox == LOGIN, establishment.dui_mailbox
        built = build_message(person, establishment, LOGIN, [RECIPIENT])
        # SMTP DATA needs CRLF line ends (smtplib sends bytes as they are): serialise as send_message() would.
        message = built.as_bytes(policy=built.policy.clone(linesep="\r\n"))
        out["message_bytes"] = len(message)
        print(
            f"SMTP submission throughput — message {len(message)} bytes (P001, DLU to {RECIPIENT}), "
            f"{clients} client thread(s), {rounds} round(s), goal simulator >= {GOAL:.0%} of the sink"
        )
        print(f"  simulator 127.0.0.1:{sim_port} (SocleEnvironment, journal {env.journal.url})")
        print(f"  sink      127.0.0.1:{sink_port} (bare aiosmtpd, handle_DATA -> 250 OK)")

        sim_accepted = 0
        for mode in modes:
            count = messages or DEFAULT_MESSAGES[mode]
            # Warm-up both servers (TLS, imports, lxml parsers, SQLite pages).
            for name, port in (("simulator", sim_port), ("sink", sink_port)):
                w = measure(name, port, mode, client_context, message, WARMUP[mode], 1)
                if w.refused:
                    raise RuntimeError(f"{name} refused {w.refused} warm-up message(s)")
                if name == "simulator":
                    sim_accepted += w.messages
            # Alternate the servers round by round so that drifts (CPU frequency, neighbours) hit both.
            runs: dict[str, list[Measure]] = {"simulator": [], "sink": []}
            for _ in range(rounds):
                for name, port in (("sink", sink_port), ("simulator", sim_port)):
                    m = measure(name, port, mode, client_context, message, count, clients)
                    if m.refused:
                        raise RuntimeError(f"{name} refused {m.refused} message(s) in mode {mode}")
                    runs[name].append(m)
                    if name == "simulator":
                        sim_accepted += m.messages
            sim = statistics.median(m.rate for m in runs["simulator"])
            sink = statistics.median(m.rate for m in runs["sink"])
            ratio = sim / sink if sink else 0.0
            label = "one session, M messages" if mode == "a" else "connection+STARTTLS+AUTH per message"
            print(f"\nmode {mode} ({label}): {count} messages x {rounds} round(s)")
            for name in ("sink", "simulator"):
                rates = ", ".join(f"{m.rate:.0f}" for m in runs[name])
                per = 1000.0 / statistics.median(m.rate for m in runs[name])
                print(
                    f"  {name:<9} {statistics.median(m.rate for m in runs[name]):8.1f} msg/s  "
                    f"({per:.2f} ms/msg; rounds: {rates})"
                )
            verdict = "OK" if ratio >= GOAL else "BELOW GOAL"
            print(f"  ratio simulator/sink = {ratio:.1%}  (goal >= {GOAL:.0%}: {verdict})")
            cpu_sim = statistics.median(m.cpu_ms for m in runs["simulator"])
            cpu_base = statistics.median(m.cpu_ms for m in runs["sink"])
            cpu_ratio = cpu_base / cpu_sim if cpu_sim else 0.0
            print(
                f"  CPU per answer (this process: clients + servers): sink {cpu_base:.2f} ms, simulator "
                f"{cpu_sim:.2f} ms -> ratio {cpu_ratio:.1%} (the steadier figure on a shared machine)"
            )
            out["modes"][mode] = {
                "messages": count,
                "rounds": rounds,
                "clients": clients,
                "simulator_msgs_per_s": round(sim, 1),
                "sink_msgs_per_s": round(sink, 1),
                "ratio": round(ratio, 4),
                "cpu_ms_per_answer": {"simulator": round(cpu_sim, 3), "sink": round(cpu_base, 3)},
                "cpu_ratio": round(cpu_ratio, 4),
                "goal": GOAL,
                "meets_goal": ratio >= GOAL,
            }

        # The simulator commits before it replies: the journal must hold exactly the accepted messages.
        flt = JournalFilter(service="mssante", operation="smtp.submit", run_id=env.run_id)
        journal_accepted = env.journal.count(replace(flt, outcome=Outcome.ACCEPTED))
        journal_rejected = env.journal.count(replace(flt, outcome=Outcome.REJECTED))
        consistent = journal_accepted == sim_accepted and journal_rejected == 0
        print(
            f"\njournal check: {journal_accepted} accepted smtp.submit exchange(s) recorded, "
            f"{sim_accepted} message(s) accepted by the simulator (250), {journal_rejected} rejected -> "
            f"{'OK' if consistent else 'MISMATCH'}"
        )
        out["journal"] = {
            "accepted_recorded": journal_accepted,
            "accepted_replied": sim_accepted,
            "rejected_recorded": journal_rejected,
            "consistent": consistent,
        }
        return out
    finally:
        if sink_server is not None:
            sink_server.close()
            try:
                sink_host.run(sink_server.wait_closed(), timeout=5)
            except Exception:  # noqa: BLE001 - best effort
                pass
        sink_host.close()
        if env is not None:
            env.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["a", "b", "both"], default="both")
    parser.add_argument(
        "--messages", type=int, default=None, help="messages per measured round (default: a=300, b=100)"
    )
    parser.add_argument("--clients", type=int, default=1, help="client threads sharing the messages (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per server, median reported (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.messages is not None and not 1 <= args.messages <= 5000:
        parser.error("--messages must be within 1..5000")
    if not 1 <= args.clients <= 16 or not 1 <= args.rounds <= 10:
        parser.error("--clients must be within 1..16 and --rounds within 1..10")
    modes = ["a", "b"] if args.mode == "both" else [args.mode]
    out = run(modes, args.messages, args.clients, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0 if out["journal"]["consistent"] else 1


if __name__ == "__main__":
    sys.exit(main())
