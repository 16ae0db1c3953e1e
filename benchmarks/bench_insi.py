"""INSi searches/s: the INSi simulator vs a bare Starlette endpoint returning a fixed SOAP body, same run, same TLS.

Both endpoints run in the *same* service host (one uvicorn server, one HTTPS port, mutual TLS with the test PKI's
INSI-AUTO client certificate, the same TLS-aware httptools protocol): ``/insi/lps`` is the simulator, ``/bare/lps`` a
Starlette route that reads the request and answers a pre-built ``RESULTAT`` (CR 00 for Jeanne MARTIN). The client
posts the same pre-built ``rechercherInsAvecTraitsIdentite`` request to both. The ratio simulator/bare is the cost
of what the simulator adds: SOAP parsing and structural checks, mTLS/IDAM checks, the identity search, the
answer, and the journal commit before each answer.

Modes:
  a   keep-alive: one TLS connection per client thread, N requests on it (per-request cost);
  b   a new TLS connection (with client certificate) for every request (what the reference DUI does).

Goal: simulator >= 50 % of the bare endpoint's requests/s in each mode.

Run from the repository root:  python benchmarks/bench_insi.py [--mode a|b|both] [--requests N] [--clients K] [--rounds R]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sqlite3
import ssl
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from harness.core.config import package_root
from harness.core.journal import JournalFilter, Outcome, open_journal
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.host.asgi_tls import CN_KEY, PARSED_KEY, client_certificate, client_common_name
from harness.host.service_host import BackgroundHost, HostOptions, ServiceHost
from harness.host.simulator import RunState, Simulator
from harness.sut.base import InsiTraits
from harness.sut.insi_actions import REFERENCE_IDAM, build_request
from mock_services.insi import InsiSimulator
from mock_services.insi.identities import identity_from_person
from mock_services.insi.soap import CONTENT_TYPE, result_envelope

GOAL = 0.50
TIME_CAP = 20.0  # seconds: hard cap of one measurement
DEFAULT_REQUESTS = {"a": 600, "b": 200}
WARMUP = {"a": 30, "b": 10}
HEADERS = {
    "Content-Type": 'application/soap+xml; charset=utf-8; action="urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite"'
}


class BareEndpoint(Simulator):
    """The baseline: reads the request body, answers a fixed SOAP body. Nothing else."""

    name = "bare"
    title = "fixed SOAP body"
    fixed: bytes = b""

    def http_app(self) -> ASGIApp:
        body = self.fixed

        async def lps(request: Request) -> Response:
            await request.body()
            return Response(body, media_type=CONTENT_TYPE)

        return Starlette(routes=[Route("/lps", lps, methods=["POST"])])


@dataclass
class Measure:
    server: str
    mode: str
    requests: int
    seconds: float
    cpu: float = 0.0  # CPU seconds of this process (clients and servers) during the measure
    bad: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, each request as its client saw it

    def latency_ms(self, quantile: float) -> float:
        """The ``quantile`` (0.5, 0.99...) of the requests' wall times, in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000.0 if ordered else 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per answer (clients included: the same for both servers): steadier than the rate when
        other jobs share the machine."""
        return self.cpu * 1000.0 / self.requests if self.requests else 0.0


def _connection(port: int, context: ssl.SSLContext) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)


def _post(connection: http.client.HTTPSConnection, path: str, body: bytes) -> bool:
    connection.request("POST", path, body=body, headers=HEADERS)
    response = connection.getresponse()
    data = response.read()
    return response.status == 200 and b"<CodeCR>00</CodeCR>" in data


def _client(
    port: int,
    path: str,
    context: ssl.SSLContext,
    body: bytes,
    count: int,
    mode: str,
    deadline: float,
    latencies: list[float],
) -> tuple[int, int]:
    ok = bad = 0
    connection = _connection(port, context) if mode == "a" else None
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            if mode == "b":
                connection = _connection(port, context)
            assert connection is not None
            start = time.perf_counter()
            answered = _post(connection, path, body)
            latencies.append(time.perf_counter() - start)
            if answered:
                ok += 1
            else:
                bad += 1
            if mode == "b":
                connection.close()
    finally:
        if connection is not None:
            connection.close()
    return ok, bad


def measure(
    server: str, port: int, path: str, context: ssl.SSLContext, body: bytes, mode: str, count: int, clients: int
) -> Measure:
    shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    results: list[tuple[int, int]] = [(0, 0)] * clients
    errors: list[BaseException] = []
    latencies: list[list[float]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + TIME_CAP

    def work(i: int) -> None:
        try:
            results[i] = _client(port, path, context, body, shares[i], mode, deadline, latencies[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    start, cpu = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIME_CAP + 30)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if errors:
        raise RuntimeError(f"{server} mode {mode}: client error {errors[0]!r}") from errors[0]
    measured = Measure(server, mode, sum(r[0] for r in results), elapsed, cpu, sum(r[1] for r in results))
    measured.latencies = [t for times in latencies for t in times]
    return measured


def certificate_identity(pki: TestPKI, calls: int = 20000) -> dict[str, float]:
    """µs per request to get the caller's CN: parsing the connection's PEM on each request (before) against the
    scope keys filled once per connection (:data:`harness.host.asgi_tls.CN_KEY`; after), same process."""
    pem = pki.client("INSI-AUTO").cert_path.read_text(encoding="ascii")
    parsed = {"extensions": {"tls": {"client_cert_chain": [pem]}}}  # no cached keys: the PEM is parsed each time
    cached = {**parsed, CN_KEY: client_common_name(parsed), PARSED_KEY: client_certificate(parsed)}
    figures = {}
    for label, scope in (("parse_per_request_us", parsed), ("cached_per_connection_us", cached)):
        assert client_common_name(scope) == "INSI-AUTO"
        start = time.perf_counter()
        for _ in range(calls):
            client_common_name(scope)
        figures[label] = round((time.perf_counter() - start) / calls * 1e6, 2)
    print(
        f"client certificate CN per request: {figures['parse_per_request_us']} µs parsing the PEM (before), "
        f"{figures['cached_per_connection_us']} µs read from the connection's scope keys (after)"
    )
    return figures


def journal_bytes(path: Path) -> dict[str, float]:
    """What the journal holds per INSi exchange, after a WAL checkpoint: the row's ``details`` JSON (mean bytes),
    the whole file divided by the exchanges, and the evidence bodies (request and answer, stored once per digest)."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows, details = db.execute(
            "SELECT count(*), avg(length(details)) FROM exchanges WHERE service = 'insi'"
        ).fetchone()
        evidence, evidence_bytes = db.execute("SELECT count(*), COALESCE(sum(size), 0) FROM evidence").fetchone()
        file_bytes = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    figures = {
        "exchanges": rows,
        "details_bytes_per_exchange": round(details or 0.0, 1),
        "file_bytes_per_exchange": round(file_bytes / rows, 1) if rows else 0.0,
        "evidence_bodies": evidence,
        "evidence_bytes": evidence_bytes,
    }
    print(
        f"journal bytes per INSi exchange: details {figures['details_bytes_per_exchange']:.0f} B, whole file "
        f"{figures['file_bytes_per_exchange']:.0f} B ({rows} exchanges; {evidence} evidence bodies, {evidence_bytes} B)"
    )
    return figures


def run(modes: list[str], requests: int | None, clients: int, rounds: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-insi-"))
    out: dict[str, Any] = {"benchmark": "insi", "modes": {}}
    testdata = load_testdata(package_root() / "fixtures")
    person = testdata.person("P001")
    BareEndpoint.fixed = result_envelope("00", identity_from_person(person))
    pki = TestPKI.ensure(tmp / "pki", organisation_clients=("INSI-AUTO",))
    journal = open_journal(f"sqlite:///{tmp}/journal.sqlite")
    run_state = RunState(uuid.uuid4().hex[:12])
    host = ServiceHost(
        journal, pki, testdata, HostOptions(), run_state, registry={"insi": InsiSimulator, "bare": BareEndpoint}
    )
    background = BackgroundHost(host)
    try:
        endpoints = background.start()
        port = int(endpoints["insi"]["soap"].split(":")[2].split("/")[0])
        context = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        client = pki.client("INSI-AUTO")
        context.load_cert_chain(str(client.cert_path), str(client.key_path))
        traits = InsiTraits("MARTIN", ("JEANNE",), "F", "1938-04-12")
        body = build_request(
            traits, emitter=person.essms, idam=REFERENCE_IDAM, instance=str(uuid.uuid4()), message_id=str(uuid.uuid4())
        )
        out["certificate_identity"] = certificate_identity(pki)
        out["request_bytes"] = len(body)
        out["response_bytes"] = len(BareEndpoint.fixed)
        print(
            f"INSi searches/s — request {len(body)} bytes (MARTIN JEANNE), answer {len(BareEndpoint.fixed)} bytes, "
            f"{clients} client thread(s), {rounds} round(s), goal simulator >= {GOAL:.0%} of the bare endpoint"
        )
        print(
            f"  one host, https://127.0.0.1:{port}: /insi/lps (simulator, journal {journal.url}) and /bare/lps (fixed body)"
        )
        targets = (("bare", "/bare/lps"), ("simulator", "/insi/lps"))
        sim_ok = 0
        for mode in modes:
            count = requests or DEFAULT_REQUESTS[mode]
            for name, path in targets:  # warm-up: TLS, imports, the identity base (Faker), SQLite pages
                w = measure(name, port, path, context, body, mode, WARMUP[mode], 1)
                if w.bad:
                    raise RuntimeError(f"{name}: {w.bad} bad warm-up answer(s)")
                sim_ok += w.requests if name == "simulator" else 0
            runs: dict[str, list[Measure]] = {"bare": [], "simulator": []}
            for _ in range(rounds):
                for name, path in targets:
                    m = measure(name, port, path, context, body, mode, count, clients)
                    if m.bad:
                        raise RuntimeError(f"{name}: {m.bad} bad answer(s) in mode {mode}")
                    runs[name].append(m)
                    sim_ok += m.requests if name == "simulator" else 0
            sim = statistics.median(m.rate for m in runs["simulator"])
            bare = statistics.median(m.rate for m in runs["bare"])
            ratio = sim / bare if bare else 0.0
            label = "keep-alive" if mode == "a" else "new TLS connection per request"
            print(f"\nmode {mode} ({label}): {count} requests x {rounds} round(s)")
            for name in ("bare", "simulator"):
                rates = ", ".join(f"{m.rate:.0f}" for m in runs[name])
                median = statistics.median(m.rate for m in runs[name])
                p50 = statistics.median(m.latency_ms(0.5) for m in runs[name])
                p99 = statistics.median(m.latency_ms(0.99) for m in runs[name])
                worst = max(m.latency_ms(1.0) for m in runs[name])
                print(
                    f"  {name:<9} {median:8.1f} req/s  ({1000.0 / median:.2f} ms/req; rounds: {rates}); "
                    f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms (medians of the rounds), max {worst:.1f} ms"
                )
            print(
                f"  ratio simulator/bare = {ratio:.1%}  (goal >= {GOAL:.0%}: {'OK' if ratio >= GOAL else 'BELOW GOAL'})"
            )
            cpu_sim = statistics.median(m.cpu_ms for m in runs["simulator"])
            cpu_base = statistics.median(m.cpu_ms for m in runs["bare"])
            cpu_ratio = cpu_base / cpu_sim if cpu_sim else 0.0
            print(
                f"  CPU per answer (this process: clients + servers): bare {cpu_base:.2f} ms, simulator "
                f"{cpu_sim:.2f} ms -> ratio {cpu_ratio:.1%} (the steadier figure on a shared machine)"
            )
            out["modes"][mode] = {
                "requests": count,
                "rounds": rounds,
                "clients": clients,
                "simulator_req_per_s": round(sim, 1),
                "bare_req_per_s": round(bare, 1),
                "ratio": round(ratio, 4),
                "cpu_ms_per_answer": {"simulator": round(cpu_sim, 3), "bare": round(cpu_base, 3)},
                "cpu_ratio": round(cpu_ratio, 4),
                "latency_ms": {
                    name: {
                        "p50": round(statistics.median(m.latency_ms(0.5) for m in runs[name]), 3),
                        "p99": round(statistics.median(m.latency_ms(0.99) for m in runs[name]), 3),
                        "max": round(max(m.latency_ms(1.0) for m in runs[name]), 3),
                    }
                    for name in ("bare", "simulator")
                },
                "goal": GOAL,
                "meets_goal": ratio >= GOAL,
            }
        recorded = journal.count(JournalFilter(service="insi", run_id=run_state.run_id, outcome=Outcome.ACCEPTED))
        rejected = journal.count(JournalFilter(service="insi", run_id=run_state.run_id, outcome=Outcome.REJECTED))
        consistent = recorded == sim_ok and rejected == 0
        print(
            f"\njournal check: {recorded} accepted INSi exchange(s) recorded, {sim_ok} CR 00 answer(s) received, "
            f"{rejected} rejected -> {'OK' if consistent else 'MISMATCH'}"
        )
        out["journal_bytes"] = journal_bytes(tmp / "journal.sqlite")
        out["journal"] = {
            "accepted_recorded": recorded,
            "answers_received": sim_ok,
            "rejected_recorded": rejected,
            "consistent": consistent,
        }
        return out
    finally:
        background.stop()
        journal.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["a", "b", "both"], default="both")
    parser.add_argument(
        "--requests", type=int, default=None, help="requests per measured round (default: a=600, b=200)"
    )
    parser.add_argument("--clients", type=int, default=4, help="client threads sharing the requests (default 4)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="measured rounds per endpoint, median reported (default 3)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.requests is not None and not 1 <= args.requests <= 20000:
        parser.error("--requests must be within 1..20000")
    if not 1 <= args.clients <= 32 or not 1 <= args.rounds <= 10:
        parser.error("--clients must be within 1..32 and --rounds within 1..10")
    out = run(["a", "b"] if args.mode == "both" else [args.mode], args.requests, args.clients, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0 if out["journal"]["consistent"] else 1


if __name__ == "__main__":
    sys.exit(main())
