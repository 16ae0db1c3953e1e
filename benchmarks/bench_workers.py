"""``serve --workers N`` on a PostgreSQL journal: throughput with 1 and 3 processes, and one killed mid-load.

Each serve has a fresh PostgreSQL database (random name, dropped at the end; the simulators' shared state
starts empty) on ``SOCLE_TEST_POSTGRES`` (default ``postgresql://127.0.0.1:5432/postgres``). ``socle-harness serve --workers N --service mssante --service tddui``
runs as a child process; the clients (``--clients``, default 32) run as threads in 4 client processes:

  smtp   SMTP submission: STARTTLS, AUTH PLAIN with the DUI mailbox of P001's establishment, a DLU message with
         its own Message-ID; a session sends 10 messages, then a new connection (the kernel picks a worker per
         connection). Acknowledged = ``sendmail`` returned (250).
  fhir   TDDUI ``POST /tddui/`` of a transaction Bundle (one record, new fullUrls each time), mutual TLS with the
         establishment's certificate, keep-alive for 10 requests. Acknowledged = 200 ``transaction-response``
         (every entry ``201 Created``).

Each measure follows a warm-up of the same load (4 s, not counted, a new connection per exchange so that every
worker is reached): a worker loads its validators and FHIR models on its first request.
Figures: acknowledged exchanges per second for 1 worker (``--workers 1``: today's single process, the baseline)
and 3 workers, in ``--rounds`` alternating rounds (median), the ratio, and the serving processes' CPU
milliseconds per exchange (steadier than the rates on a shared machine, where more processes also take a larger
share of the cores from the neighbours). Then the kill figure: 3 workers,
half the clients SMTP and half FHIR, ``kill -9`` of worker 2 a third into the run; every acknowledged exchange
must be in the journal exactly once (Message-ID for SMTP, the Bundle's SHA-256 digest for TDDUI), the other
workers must acknowledge exchanges while worker 2 is down, and worker 2 must be restarted (its « prêt » line, a
new pid answering ``/_harness/health``). The machine's cores bound the ratio: clients, workers and PostgreSQL
share them.

Run from the repository root:  nice -n 10 python benchmarks/bench_workers.py [--seconds S] [--clients K] [--json F]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import http.client
import json
import multiprocessing
import os
import re
import signal
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg

CLI = [sys.executable, "-m", "harness.front.cli"]
ADMIN = os.environ.get("SOCLE_TEST_POSTGRES", "postgresql://127.0.0.1:5432/postgres")
CLIENT_PROCESSES = 4
PER_CONNECTION = 10  # exchanges per connection before a new one
RECIPIENT = "jean.dupont@medecin.mssante.fr"
WARM_UP = 4.0  # seconds of load before each measure (validators and models load on a worker's first request)


@contextmanager
def database() -> Iterator[str]:
    """A PostgreSQL database of the benchmark's own (random name), dropped at the end."""
    name = f"socle_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------------------------------ the server


class Serve:
    """``socle-harness serve --workers N`` in a folder of its own; its output is kept, line by line, timed."""

    def __init__(self, url: str, workers: int, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.endpoints_file = folder / "endpoints.json"
        command = [*CLI, "serve", "--workers", str(workers), "--ephemeral", "--journal", url]
        command += ["--service", "mssante", "--service", "tddui", "--endpoints-file", str(self.endpoints_file)]
        self.proc = subprocess.Popen(
            command,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "300"},
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 180
        while not self.endpoints_file.exists() or not self.when(r"Prêt / ready"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve did not start:\n" + self.output())
            time.sleep(0.1)
        self.endpoints = json.loads(self.endpoints_file.read_text())
        found = re.findall(r"Processus de service n°(\d+) : pid (\d+)", self.output())
        self.pids = {int(n): int(p) for n, p in found} or {1: self.proc.pid}

    def _read(self) -> None:
        for line in self.proc.stdout or []:
            self.lines.append((time.time(), line))

    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def when(self, pattern: str) -> float | None:
        """When the first output line matching ``pattern`` was read."""
        return next((t for t, line in self.lines if re.search(pattern, line)), None)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the serving processes (the parent and its live children)."""
        pids = {self.proc.pid, *self.pids.values()}
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(60)
        finally:
            self._reader.join(5)


# ----------------------------------------------------------------------------------------------- the clients


_PLACEHOLDER = "<message-id-placeholder@bench.test>"


def _smtp_template(testdata: Any) -> bytes:
    """P001's DLU to the attending doctor, CRLF line ends, with a Message-ID each message replaces."""
    from harness.sut.documents import build_message

    person = testdata.person("P001")
    establishment = testdata.establishment(person.essms)
    built = build_message(person, establishment, establishment.dui_mailbox, [RECIPIENT])
    del built["Message-ID"]
    built["Message-ID"] = _PLACEHOLDER
    return built.as_bytes(policy=built.policy.clone(linesep="\r\n"))


def _tddui_template(testdata: Any) -> tuple[bytes, bytes]:
    """A TDDUI transaction Bundle of one record, and the uuid of its first fullUrl (replaced in each copy, so that
    every Bundle has its own digest and stays consistent)."""
    from harness.fields.dui import DuiRecord, Stay
    from harness.sut.base import TdduiExport
    from harness.sut.tddui_actions import build_tddui_bundle

    person = testdata.person("P001")
    establishment = testdata.establishment(person.essms)
    record = DuiRecord(person, "B1", (datetime(2025, 4, 3, 10, tzinfo=UTC),), (Stay("1", date(2024, 6, 1)),))
    bundle = build_tddui_bundle(TdduiExport(establishment, (record,), datetime(2025, 4, 30, 20, tzinfo=UTC)))
    return json.dumps(bundle, ensure_ascii=False).encode(), bundle["entry"][0]["fullUrl"].removeprefix(
        "urn:uuid:"
    ).encode()


def _smtp_client(conf: dict[str, Any], testdata: Any, stop_at: float, acked: list, failed: list) -> None:
    host, _, port = conf["smtp"].rpartition(":")
    context = ssl.create_default_context(cafile=conf["ca"])
    login, password = conf["login"], conf["password"]
    template = _smtp_template(testdata)
    while time.time() < stop_at:
        try:
            with smtplib.SMTP(host, int(port), timeout=30) as smtp:
                smtp.starttls(context=context)
                smtp.login(login, password)
                for _ in range(conf["per_connection"]):
                    if time.time() >= stop_at:
                        break
                    message_id = f"<{uuid.uuid4().hex}@{conf['marker']}.bench.test>"
                    message = template.replace(_PLACEHOLDER.encode(), message_id.encode())
                    if not smtp.sendmail(login, [RECIPIENT], message):
                        acked.append((time.time(), message_id))
        except (OSError, smtplib.SMTPException) as exc:
            failed.append(repr(exc)[:120])
            time.sleep(0.05)


def _fhir_client(conf: dict[str, Any], testdata: Any, stop_at: float, acked: list, failed: list) -> None:
    host, _, port = conf["https"].removeprefix("https://").partition("/")[0].rpartition(":")
    context = ssl.create_default_context(cafile=conf["ca"])
    context.load_cert_chain(conf["cert"], conf["key"])
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", "User-Agent": conf["marker"]}
    template, first = _tddui_template(testdata)
    while time.time() < stop_at:
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
        try:
            for _ in range(conf["per_connection"]):
                if time.time() >= stop_at:
                    break
                body = template.replace(first, str(uuid.uuid4()).encode())
                connection.request("POST", "/tddui/", body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                if response.status == 200 and b'"transaction-response"' in answer:
                    acked.append((time.time(), hashlib.sha256(body).hexdigest()))
                else:
                    failed.append(f"HTTP {response.status} {answer[:200]!r}")
        except (OSError, http.client.HTTPException) as exc:
            failed.append(repr(exc)[:120])
            time.sleep(0.05)
        finally:
            connection.close()


def client_process(kinds: list[str], conf: dict[str, Any], start_at: float, stop_at: float) -> dict[str, Any]:
    """One client process: one thread per entry of ``kinds`` (``smtp`` / ``fhir``) from ``start_at`` to
    ``stop_at`` (wall clock); what each kind had acknowledged (time, id) and its failures."""
    from harness.core.config import package_root
    from harness.fields.testdata import load_testdata

    testdata = load_testdata(package_root() / "fixtures")
    acked: dict[str, list] = {"smtp": [], "fhir": []}
    failed: dict[str, list] = {"smtp": [], "fhir": []}
    run = {"smtp": _smtp_client, "fhir": _fhir_client}
    time.sleep(max(0.0, start_at - time.time()))
    threads = [
        threading.Thread(target=run[kind], args=(conf, testdata, stop_at, acked[kind], failed[kind])) for kind in kinds
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"acked": acked, "failed": failed}


def load(serve: Serve, kinds: list[str], seconds: float, marker: str, per_connection: int = PER_CONNECTION) -> dict:
    """``kinds`` (one per client) spread over the client processes for ``seconds``; merged results."""
    folder = serve.folder / ".socle" / "pki"
    endpoints = serve.endpoints
    finess = "990000016"
    conf = {
        "smtp": endpoints["mssante"]["smtp"],
        "https": endpoints["harness"]["base"],
        "ca": str(folder / "ca-bundle.pem"),
        "cert": str(folder / f"client-ESSMS-{finess}.pem"),
        "key": str(folder / f"client-ESSMS-{finess}.key"),
        "login": "dui@ehpad-tilleuls.mssante.fr",
        "password": "dui-tilleuls-test",
        "marker": marker,
        "per_connection": per_connection,
    }
    shares = [kinds[i::CLIENT_PROCESSES] for i in range(CLIENT_PROCESSES)]
    start_at = time.time() + 3.0  # the client processes import and load the fixtures meanwhile
    stop_at = start_at + seconds
    with multiprocessing.get_context("spawn").Pool(CLIENT_PROCESSES) as pool:
        pending = pool.starmap_async(client_process, [(share, conf, start_at, stop_at) for share in shares])
        cpu_before = None
        while cpu_before is None:
            if time.time() >= start_at:
                cpu_before = serve.cpu_seconds()
            time.sleep(0.01)
        results = pending.get(seconds + 120)
        cpu = serve.cpu_seconds() - cpu_before
    merged: dict[str, Any] = {"start": start_at, "stop": stop_at, "cpu": cpu, "acked": {}, "failed": {}}
    for kind in ("smtp", "fhir"):
        merged["acked"][kind] = sorted(a for r in results for a in r["acked"][kind])
        merged["failed"][kind] = [f for r in results for f in r["failed"][kind]]
    return merged


# ---------------------------------------------------------------------------------------------- the journal


def journal_check(url: str, acked: dict[str, list], marker: str) -> dict[str, Any]:
    """How many times each acknowledged exchange is in the journal, and the accepted rows no client saw
    acknowledged (committed, but the answer was lost with the killed worker's connection)."""
    smtp_ids = [i for _, i in acked["smtp"]]
    fhir_ids = [i for _, i in acked["fhir"]]
    with psycopg.connect(url) as conn:
        smtp_rows = dict(
            conn.execute(
                "SELECT message_id, count(*) FROM exchanges WHERE service = 'mssante' AND operation = 'smtp.submit' "
                "AND outcome = 'accepted' AND message_id LIKE %s GROUP BY message_id",
                (f"%@{marker}.bench.test>",),
            ).fetchall()
        )
        fhir_rows = dict(
            conn.execute(
                "SELECT digest, count(*) FROM exchanges WHERE service = 'tddui' AND operation = 'fhir.transaction' "
                "AND outcome = 'accepted' AND actor = %s GROUP BY digest",
                (marker,),
            ).fetchall()
        )
    out: dict[str, Any] = {}
    for kind, ids, rows in (("smtp", smtp_ids, smtp_rows), ("fhir", fhir_ids, fhir_rows)):
        counts = collections.Counter(rows.get(i, 0) for i in ids)
        out[kind] = {
            "acknowledged": len(ids),
            "distinct_acknowledged": len(set(ids)),
            "exactly_once": counts.get(1, 0),
            "missing": counts.get(0, 0),
            "duplicated": sum(n for c, n in counts.items() if c > 1),
            "committed_not_acknowledged": len(set(rows) - set(ids)),
        }
        out[kind]["ok"] = out[kind]["exactly_once"] == len(ids) == len(set(ids))
    return out


def _health_pids(serve: Serve, tries: int = 30) -> collections.Counter:
    host, _, port = serve.endpoints["harness"]["base"].removeprefix("https://").rpartition(":")
    context = ssl.create_default_context(cafile=str(serve.folder / ".socle" / "pki" / "ca-bundle.pem"))
    seen: collections.Counter = collections.Counter()
    for _ in range(tries):
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        try:
            connection.request("GET", "/_harness/health")
            worker = json.loads(connection.getresponse().read()).get("worker", {})
            seen[(worker.get("number"), worker.get("pid"))] += 1
        finally:
            connection.close()
    return seen


# ------------------------------------------------------------------------------------------------------ main


def throughput(
    url: str, workers: int, seconds: float, clients: int, folder: Path, tag: str
) -> tuple[dict[str, Any], Serve]:
    serve = Serve(url, workers, folder)
    figures: dict[str, Any] = {"pids": serve.pids}
    for kind in ("smtp", "fhir"):
        marker = f"{tag}{kind}"
        # not counted: a new connection per exchange, so that every worker serves its first (slow) requests here
        load(serve, [kind] * clients, WARM_UP, f"w{marker}", per_connection=1)
        result = load(serve, [kind] * clients, seconds, marker)
        acked = len(result["acked"][kind])
        check = journal_check(url, result["acked"], marker)[kind]
        figures[kind] = {
            "per_second": round(acked / seconds, 1),
            "acknowledged": acked,
            "failed": len(result["failed"][kind]),
            "cpu_ms_per_exchange": round(1000 * result["cpu"] / acked, 1) if acked else None,
            "journal_exactly_once": check["ok"],
            "load_average": round(os.getloadavg()[0], 1),
        }
        first = result["failed"][kind][:1]
        print(
            f"  {workers} worker(s) {kind:<4}: {acked / seconds:7.1f}/s ({acked} acknowledged in {seconds:.0f} s, "
            f"{len(result['failed'][kind])} failed{' e.g. ' + first[0] if first else ''}), serving CPU "
            f"{figures[kind]['cpu_ms_per_exchange']} ms/exchange, journal exactly once: {check['ok']}, load average "
            f"{figures[kind]['load_average']}"
        )
    return figures, serve


def kill_run(url: str, serve: Serve, seconds: float, clients: int) -> dict[str, Any]:
    victim = serve.pids[2]
    marker = "kill"
    kinds = ["smtp", "fhir"] * (clients // 2)
    box: dict[str, Any] = {}
    loader = threading.Thread(target=lambda: box.update(load(serve, kinds, seconds, marker)))
    loader.start()
    time.sleep(3.0 + seconds / 3)  # the load's start delay, then a third of the run
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)
    loader.join()
    result = box
    deadline = time.monotonic() + 90  # on a loaded machine the restart may end after the load
    while not serve.when(r"Processus de service n°2 prêt : pid") and time.monotonic() < deadline:
        time.sleep(0.2)
    ready_at = serve.when(r"Processus de service n°2 prêt : pid")
    new_pid = re.search(r"Processus de service n°2 prêt : pid (\d+)", serve.output())
    downtime = (ready_at - killed_at) if ready_at else None
    window_end = ready_at or result["stop"]
    during = {k: sum(1 for t, _ in result["acked"][k] if killed_at <= t < window_end) for k in ("smtp", "fhir")}
    after = _health_pids(serve)
    check = journal_check(url, result["acked"], marker)
    print(
        f"\nkill -9 of worker 2 (pid {victim}) {killed_at - result['start']:.1f} s into a {seconds:.0f} s run, "
        f"{clients} clients (half SMTP, half FHIR), 3 workers"
    )
    for kind in ("smtp", "fhir"):
        c = check[kind]
        print(
            f"  {kind:<4}: {c['acknowledged']} acknowledged, {c['exactly_once']} exactly once in the journal, "
            f"{c['missing']} missing, {c['duplicated']} duplicated; {c['committed_not_acknowledged']} committed "
            f"but never acknowledged (answer lost with the connection); {len(result['failed'][kind])} client "
            f"errors (connections reset by the kill); {during[kind]} acknowledged while worker 2 was down"
        )
    restarted = new_pid is not None and any(pid == int(new_pid.group(1)) for (_, pid) in after)
    print(
        f"  worker 2 restarted: {'yes' if restarted else 'NO'}"
        + (f" (new pid {new_pid.group(1)}, ready {downtime:.1f} s after the kill)" if new_pid and downtime else "")
        + f"; /_harness/health over 30 new connections: {dict(collections.Counter(n for n, _ in after.elements()))}"
    )
    return {
        "victim_pid": victim,
        "restarted_pid": int(new_pid.group(1)) if new_pid else None,
        "restart_seconds": round(downtime, 2) if downtime else None,
        "acknowledged_while_down": during,
        "journal": check,
        "client_errors": {k: len(v) for k, v in result["failed"].items()},
        "restarted": restarted,
        "ok": restarted and all(check[k]["ok"] for k in check) and sum(during.values()) > 0,
    }


def run(seconds: float, clients: int, kill_seconds: float, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"benchmark": "workers", "cores": os.cpu_count(), "clients": clients, "rounds": []}
    print(
        f"serve --workers on PostgreSQL: {clients} clients (threads in {CLIENT_PROCESSES} processes), {seconds:.0f} s "
        f"per measure, {rounds} round(s) alternating 1 and 3 workers, each serve on a fresh database, "
        f"{os.cpu_count()} core(s) shared by clients, workers and PostgreSQL; load average {os.getloadavg()[0]:.1f} "
        "at start"
    )
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        tmp = Path(folder)
        for n in range(1, rounds + 1):
            print(f"round {n}")
            with database() as url:
                one, serve = throughput(url, 1, seconds, clients, tmp / f"r{n}w1", f"r{n}w1")
                serve.stop()
            with database() as url:
                three, serve = throughput(url, 3, seconds, clients, tmp / f"r{n}w3", f"r{n}w3")
                out["rounds"].append({"1": one, "3": three})
                if n == rounds:  # the last 3-worker serve, warm: the kill run
                    try:
                        out["kill"] = kill_run(url, serve, kill_seconds, clients)
                    finally:
                        code = serve.stop()
                    out["kill"]["clean_stop"] = code == 0
                else:
                    serve.stop()
        print("\nscaling (3 workers / 1 worker), median of the rounds (rates per round):")
        for kind in ("smtp", "fhir"):
            rates = {w: [r[w][kind]["per_second"] for r in out["rounds"]] for w in ("1", "3")}
            cpu = {w: [r[w][kind]["cpu_ms_per_exchange"] for r in out["rounds"]] for w in ("1", "3")}
            one, three = statistics.median(rates["1"]), statistics.median(rates["3"])
            ratio = three / one if one else 0.0
            out[f"ratio_{kind}"] = round(ratio, 2)
            print(
                f"  {kind:<4}: {one:.1f}/s {rates['1']} -> {three:.1f}/s {rates['3']} = x{ratio:.2f}; serving CPU "
                f"ms/exchange {cpu['1']} -> {cpu['3']}"
            )
        print(f"  supervisor stopped cleanly on SIGINT: {code == 0}; load average at the end {os.getloadavg()[0]:.1f}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds per throughput measure (default 12)")
    parser.add_argument("--kill-seconds", type=float, default=24.0, help="seconds of the kill run (default 24)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32, even)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of 1 then 3 workers, median (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if not 2 <= args.clients <= 128 or args.clients % 2 or not 3 <= args.seconds <= 120 or not 1 <= args.rounds <= 5:
        parser.error("--clients: an even number within 2..128; --seconds within 3..120; --rounds within 1..5")
    out = run(args.seconds, args.clients, args.kill_seconds, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
    return 0 if out["kill"]["ok"] and out["kill"]["clean_stop"] else 1


if __name__ == "__main__":
    sys.exit(main())
