"""Per-request time as the data grows: SMTP submission, INSi search and FHIR search with a fixed number of matches,
with 1 k, 10 k (and, with ``--large``, 100 k) existing exchanges, against an empty journal measured in the same run.

Each size (and the empty baseline) has its own process, its own service host (one uvicorn server, mutual TLS with
the test PKI) running the MSSanté, INSi and e-Parcours simulators on its own SQLite journal, exactly as ``serve``
does. Each process loads its journal with exchanges of *the same run* (``record_many`` in chunks, shaped like a
run's traffic: ``smtp.submit`` of the measured establishment for a thousand persons, one in ten for the measured
person P001; INSi answers for other persons; cahier de liaison reads) and its cahier de liaison store with notes of
*another* person (as many as exchanges), then times, when the parent asks, one round of one client, one request at
a time on a keep-alive connection:

  smtp    a real MSSanté message (DLU of P001) submitted in one STARTTLS + AUTH session (the simulator journals it
          after judging the INS status of P001 for this establishment in this run: issue 18 item 1)
  insi    rechercherInsAvecTraitsIdentite for MARTIN JEANNE (INSI-AUTO certificate), CR 00
  search  GET DocumentReference?patient.identifier=<P001>&type=OBS&_count=10: always the same 10 notes of P001
  mdn     (with ``--mdn``) the MDN of the DUI for a message the simulator sent it (``smtp.inbound``), submitted in
          the SMTP session: the simulator finds the original by its Message-ID among the run's inbound exchanges,
          of which the journal then holds as many more (other messages) as exchanges
  epu     (with ``--eprescription``) GET MedicationRequest?group-identifier=<EPU>&_include=… x3: the e-Prescription
          of P001 (3 lines) fetched by its EPU, while the simulator holds as many more prescriptions (2 lines each)
          of persons of another establishment as exchanges (found by the FHIR store's identifier index)

Goal (issue 18): each per-request time within 20 % of its value at 1 k from 1 k to 100 k, judged on the CPU time
of the size's process per request (client and servers share it), which the other processes of a shared machine move
far less than the wall time (both are printed). The rounds alternate between the sizes, the order rotated from round
to round, and each round lasts at least ``--round-seconds``: the verdict is the median, over the rounds, of the
ratio of two rounds run side by side. Measuring one size after the other, in rounds of 50 requests (until
3 December), confused a machine whose speed drifts over minutes with growth: INSi x1.39 and x1.53 at 100 k in two
such runs, x0.57 to x1.23 in four more (rounds of 50 requests or of 1 s), while 15 s of INSi requests at 1 k and
at 100 k cost 2.46 and 2.41 ms of CPU each. The table gives each size's best round (on a loaded machine, the round
least disturbed).

Run from the repository root:
  python benchmarks/bench_scaling.py [--large] [--mdn] [--eprescription] [--rounds R] [--round-seconds S]
                                     [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import shutil
import smtplib
import ssl
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from harness.core.config import package_root
from harness.core.journal import Direction, Exchange, Outcome, open_journal
from harness.fhir.access import establishment_certificate
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.host.service_host import BackgroundHost, HostOptions, ServiceHost
from harness.host.simulator import RunState
from harness.sut.base import InsiTraits
from harness.sut.documents import build_message
from harness.sut.insi_actions import REFERENCE_IDAM, build_request
from harness.sut.mssante_messages import build_mdn
from harness.sut.mssante_messages import build_message as build_mail
from mock_services.eparcours import EparcoursSimulator
from mock_services.eprescription import EprescriptionSimulator
from mock_services.insi import InsiSimulator
from mock_services.mssante import MSSanteSimulator

LOGIN = "dui@ehpad-tilleuls.mssante.fr"
PASSWORD = "dui-tilleuls-test"
RECIPIENT = "jean.dupont@medecin.mssante.fr"
INSI_HEADERS = {
    "Content-Type": 'application/soap+xml; charset=utf-8; action="urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite"'
}
FHIR_HEADERS = {"Accept": "application/fhir+json"}
SIZES = (1_000, 10_000)
LARGE = 100_000
GOAL = 0.20  # within 20 % of the 1 k figure
REQUESTS = {"smtp": 20, "insi": 50, "search": 20, "mdn": 20, "epu": 20}
EPU_SYSTEM = "urn:oid:1.2.250.1.215.500.1.1"
EPU_LINES = 3
MATCHES = 10
CHUNK = 5_000
TIME_CAP = 20.0  # seconds per measured round
ROUND_SECONDS = 1.0  # each measured round lasts at least this long (see _timed)


def _fill_journal(journal: Any, run_id: str, essms: str, ins: str, start: int, stop: int) -> None:
    """Exchanges ``start``..``stop`` of the run: 8 in 10 SMTP submissions (one in ten of them for ``ins``), 1 INSi
    answer for another person, 1 cahier de liaison read."""
    now = time.time()
    for base in range(start, stop, CHUNK):
        rows = []
        for i in range(base, min(stop, base + CHUNK)):
            person = ins if i % 10 == 0 else f"2{i % 1000:014d}"
            kind = i % 10
            if kind == 8:
                rows.append(
                    Exchange(
                        service="insi",
                        operation="insi.rechercherInsAvecTraitsIdentite",
                        direction=Direction.FROM_DUI,
                        outcome=Outcome.ACCEPTED,
                        essms=essms,
                        person=f"1{i % 1000:014d}",
                        run_id=run_id,
                        details={"cr": "00", "ins": {"value": f"1{i % 1000:014d}", "oid": "1.2.250.1.213.1.4.8"}},
                    )
                )
            elif kind == 9:
                rows.append(
                    Exchange(
                        service="eparcours",
                        operation="cdl.read",
                        direction=Direction.FROM_DUI,
                        outcome=Outcome.ACCEPTED,
                        essms=essms,
                        person=person,
                        run_id=run_id,
                        details={"note": {"id": str(i)}},
                    )
                )
            else:
                rows.append(
                    Exchange(
                        service="mssante",
                        operation="smtp.submit",
                        direction=Direction.FROM_DUI,
                        outcome=Outcome.ACCEPTED,
                        essms=essms,
                        person=person,
                        run_id=run_id,
                        details={"message_id": f"<{i}.{now}@bench.test>", "person": person},
                    )
                )
        journal.record_many(rows)


def _fill_inbound(journal: Any, run_id: str, essms: str, start: int, stop: int) -> None:
    """Messages ``start``..``stop`` the simulator sent the DUI (``smtp.inbound`` exchanges of the run), for ``--mdn``."""
    for base in range(start, stop, CHUNK):
        journal.record_many(
            [
                Exchange(
                    service="mssante",
                    operation="smtp.inbound",
                    direction=Direction.TO_DUI,
                    outcome=Outcome.ACCEPTED,
                    essms=essms,
                    person=f"2{i % 1000:014d}",
                    run_id=run_id,
                    details={"message_id": f"<inbound.{i}@bench.test>", "to": LOGIN, "from": RECIPIENT},
                )
                for i in range(base, min(stop, base + CHUNK))
            ]
        )


def _fill_store(service: Any, template: dict[str, Any], count: int) -> None:
    """``count`` more notes of another person in the cahier de liaison store (one unit of work per chunk, committed)."""
    before = service.store.count("DocumentReference")
    for base in range(0, count, CHUNK):
        with service.store.exclusive() as uow:
            for _ in range(min(CHUNK, count - base)):
                note = dict(
                    template, masterIdentifier={"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}
                )
                uow.create("DocumentReference", note)
            uow.commit()
    if service.store.count("DocumentReference") != before + count:  # else the search figures measure an empty store
        raise RuntimeError("notes du cahier de liaison non chargées / cahier de liaison notes not loaded")


def _timed(count: int, one: Callable[[], bool], seconds: float = 0.0) -> tuple[float, float]:
    """Mean wall and CPU seconds per request over at least ``count`` requests and at least ``seconds`` (stops at
    TIME_CAP); raises on a wrong answer.

    CPU is this process's (client and servers share it): what the requests cost whatever the other processes of
    the machine do. A round of a few requests (50 INSi searches: 0.1 s) is decided by whether a WAL checkpoint or a
    collection of the heap falls in it; a round of ``seconds`` pays its share of them, as a day of traffic does."""
    start, cpu = time.perf_counter(), time.process_time()
    done = 0
    while True:
        if not one():
            raise RuntimeError("réponse inattendue / unexpected answer")
        done += 1
        elapsed = time.perf_counter() - start
        if (done >= count and elapsed >= seconds) or elapsed > TIME_CAP:
            break
    return (time.perf_counter() - start) / done, (time.process_time() - cpu) / done


class Clients:
    """The three clients, each on its own keep-alive connection."""

    def __init__(self, ports: dict[str, int], pki: TestPKI, message: bytes, insi_body: bytes, ins: str) -> None:
        self.message = message
        self.mdn = b""  # set with --mdn
        self.epu = ""  # set with --eprescription: the path of the search by EPU
        self.insi_body = insi_body
        self.search = (
            f"/eparcours/fhir/DocumentReference?patient.identifier=urn:oid:1.2.250.1.213.1.4.10%7C{ins}"
            f"&type=OBS&_count={MATCHES}"
        )
        self.smtp_port = ports["smtp"]
        self.smtp_context = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        self.smtp = self._session()
        self.insi = self._https(ports["insi"], pki, "INSI-AUTO")
        self.fhir = self._https(ports["fhir"], pki, establishment_certificate("990000016"))

    def _session(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30)
        smtp.ehlo("bench.test")
        smtp.starttls(context=self.smtp_context)
        smtp.ehlo("bench.test")
        smtp.login(LOGIN, PASSWORD)
        return smtp

    def reconnect(self, path: str) -> None:
        """A fresh connection for ``path`` before it is timed (the servers close idle connections)."""
        if path in ("smtp", "mdn"):
            self._quit()
            self.smtp = self._session()
        else:
            (self.insi if path == "insi" else self.fhir).close()  # http.client reconnects on the next request

    @staticmethod
    def _https(port: int, pki: TestPKI, certificate: str) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        client = pki.client(certificate)
        context.load_cert_chain(str(client.cert_path), str(client.key_path))
        return http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)

    def send_smtp(self) -> bool:
        return not self.smtp.sendmail(LOGIN, [RECIPIENT], self.message)

    def send_epu(self) -> bool:
        self.fhir.request("GET", self.epu, headers=FHIR_HEADERS)
        response = self.fhir.getresponse()
        entries = json.loads(response.read()).get("entry") or ()
        return response.status == 200 and sum(e["search"]["mode"] == "match" for e in entries) == EPU_LINES

    def send_mdn(self) -> bool:
        return not self.smtp.sendmail(LOGIN, [RECIPIENT], self.mdn)

    def send_insi(self) -> bool:
        self.insi.request("POST", "/insi/lps", body=self.insi_body, headers=INSI_HEADERS)
        response = self.insi.getresponse()
        return response.status == 200 and b"<CodeCR>00</CodeCR>" in response.read()

    def send_search(self) -> bool:
        self.fhir.request("GET", self.search, headers=FHIR_HEADERS)
        response = self.fhir.getresponse()
        data = response.read()
        return response.status == 200 and len(json.loads(data).get("entry") or ()) == MATCHES

    def _quit(self) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()

    def close(self) -> None:
        self._quit()
        self.insi.close()
        self.fhir.close()


def _fill_prescriptions(service: Any, essms: str, count: int) -> None:
    """``count`` more prescriptions (2 lines each) of persons of the establishment ``essms``, for ``--eprescription``."""
    for _ in range(count):
        service.issue(service.other_person(essms), lines=2)


class _Point:
    """One size: a service host on its own journal and stores, loaded with ``size`` exchanges (and notes,
    prescriptions...), and its clients. Built in the process that measures it (see :func:`_point_process`)."""

    def __init__(self, size: int, *, mdn: bool, eprescription: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
        testdata = load_testdata(package_root() / "fixtures")
        pki = TestPKI.ensure(self.tmp / "pki", organisation_clients=("INSI-AUTO",))
        pki.issue_client(establishment_certificate("990000016"), structure_id="1990000016")
        self.journal = open_journal(f"sqlite:///{self.tmp}/journal.sqlite")
        host = ServiceHost(
            self.journal,
            pki,
            testdata,
            HostOptions(),
            RunState(uuid.uuid4().hex[:12]),
            registry={
                "mssante": MSSanteSimulator,
                "insi": InsiSimulator,
                "eparcours": EparcoursSimulator,
                **({"eprescription": EprescriptionSimulator} if eprescription else {}),
            },
        )
        self.background = BackgroundHost(host)
        self.clients: Clients | None = None
        try:
            self._start_and_fill(host, pki, size, mdn=mdn, eprescription=eprescription)
        except BaseException:
            self.close()  # the host's server thread would keep the process alive
            raise

    def _start_and_fill(self, host: ServiceHost, pki: TestPKI, size: int, *, mdn: bool, eprescription: bool) -> None:
        """Start the host, build the clients and paths, warm them up, then load ``size`` exchanges and records."""
        testdata = host.testdata
        person, other = testdata.person("P001"), testdata.person("P002")
        establishment = testdata.establishment(person.essms)
        run_state = host.run
        endpoints = self.background.start()
        ports = {
            "smtp": int(endpoints["mssante"]["smtp"].rpartition(":")[2]),
            "insi": int(endpoints["insi"]["soap"].split(":")[2].split("/")[0]),
            "fhir": int(endpoints["eparcours"]["fhir"].split(":")[2].split("/")[0]),
        }
        cdl = host.simulators["eparcours"].service  # type: ignore[attr-defined]
        for n in range(MATCHES):
            cdl.publish_note(person, note_type="OBS", text=f"note {n} de P001")
        template = dict(cdl.publish_note(other, note_type="OBS", text="note d'un autre usager").resource)
        template["content"] = [
            {"attachment": {"contentType": "text/plain", "language": "fr", "data": base64.b64encode(b"x").decode()}}
        ]
        built = build_message(person, establishment, LOGIN, [RECIPIENT])
        message = built.as_bytes(policy=built.policy.clone(linesep="\r\n"))
        insi_body = build_request(
            InsiTraits("MARTIN", ("JEANNE",), "F", "1938-04-12"),
            emitter=person.essms,
            idam=REFERENCE_IDAM,
            instance=str(uuid.uuid4()),
            message_id=str(uuid.uuid4()),
        )
        clients = self.clients = Clients(ports, pki, message, insi_body, person.ins.value)
        self.paths: dict[str, Callable[[], bool]] = {
            "smtp": clients.send_smtp,
            "insi": clients.send_insi,
            "search": clients.send_search,
        }
        if mdn:  # a message the simulator sends the DUI, then the DUI's MDN for it, submitted again and again
            original = build_mail(person, establishment, RECIPIENT, [LOGIN], ("DLU",), read_receipt_to=RECIPIENT)
            flow = host.simulators["mssante"].flow  # type: ignore[attr-defined]
            inbound = flow.send_to_dui(original.as_bytes(), sender=RECIPIENT, mailbox=LOGIN, person=person.ins.value)
            report = build_mdn(inbound.message.data, reporter=LOGIN, reporter_name=establishment.name)
            clients.mdn = report.as_bytes(policy=report.policy.clone(linesep="\r\n"))
            self.paths["mdn"] = clients.send_mdn
        other_essms = next(e.finess for e in testdata.establishments if e.finess != person.essms)
        if eprescription:  # the same port serves /eprescription/fhir; the measured prescription is P001's
            prescriber = host.simulators["eprescription"].service  # type: ignore[attr-defined]
            epu = prescriber.issue(person, lines=EPU_LINES).epu
            clients.epu = f"/eprescription/fhir/MedicationRequest?group-identifier={EPU_SYSTEM}%7C{epu}" + "".join(
                f"&_include=MedicationRequest:{p}" for p in ("medication", "subject", "requester")
            )
            self.paths["epu"] = clients.send_epu
        for send in self.paths.values():  # warm-up: TLS, imports, the identity base, SQLite pages
            _timed(5, send)
        started = time.perf_counter()
        _fill_journal(self.journal, run_state.run_id, establishment.finess, person.ins.value, 0, size)
        if mdn:
            _fill_inbound(self.journal, run_state.run_id, establishment.finess, 0, size)
        _fill_store(cdl, template, size)
        if eprescription:
            _fill_prescriptions(prescriber, other_essms, size)
        self.fill_seconds = time.perf_counter() - started

    def round(self, path: str, seconds: float) -> tuple[float, float]:
        """One measured round of ``path`` on a fresh connection (the servers close idle ones; its TLS handshake and
        first requests untimed): mean wall and CPU seconds per request."""
        assert self.clients is not None
        send = self.paths[path]
        self.clients.reconnect(path)
        _timed(3, send)
        return _timed(REQUESTS[path], send, seconds)

    def close(self) -> None:
        if self.clients is not None:
            self.clients.close()
        self.background.stop()
        self.journal.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _point_process(size: int, mdn: bool, eprescription: bool, conn: Connection) -> None:
    """A child process: one :class:`_Point`, then the rounds the parent asks for, one at a time, until ``None``.
    Each size has its own process, so the heap a request's garbage collections walk is that size's alone."""
    try:
        point = _Point(size, mdn=mdn, eprescription=eprescription)
    except BaseException:  # noqa: BLE001 - reported to the parent, which stops
        conn.send(("error", traceback.format_exc()))
        return
    try:
        conn.send(("ready", point.fill_seconds, list(point.paths)))
        while (asked := conn.recv()) is not None:
            path, seconds = asked
            try:
                conn.send(("round", *point.round(path, seconds)))
            except BaseException:  # noqa: BLE001
                conn.send(("error", traceback.format_exc()))
                return
    finally:
        point.close()


def run(
    sizes: tuple[int, ...],
    rounds: int,
    *,
    mdn: bool = False,
    eprescription: bool = False,
    round_seconds: float = ROUND_SECONDS,
) -> dict[str, Any]:
    """Every size (and the empty baseline) loaded in its own process at once, then ``rounds`` rounds of each path
    on every size in turn, the order rotated from round to round: a machine whose speed drifts over minutes (seen
    here: x0.6 to x1.4 between two points measured a minute apart, whatever their size) slows the sizes alike, and
    the ratio of two sizes is taken between rounds run side by side."""
    context = multiprocessing.get_context("spawn")
    all_sizes = (0, *sizes)
    children: list[tuple[int, Any, Connection]] = []
    out: dict[str, Any] = {"benchmark": "scaling", "round_seconds": round_seconds, "points": []}
    try:
        for size in all_sizes:
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_point_process, args=(size, mdn, eprescription, child_end), daemon=True)
            process.start()
            child_end.close()
            children.append((size, process, parent_end))
        fills: dict[int, float] = {}
        paths: list[str] = []
        for size, _, conn in children:
            answer = conn.recv()
            if answer[0] != "ready":
                raise RuntimeError(f"taille {size} / size {size}:\n{answer[1]}")
            fills[size], paths = answer[1], answer[2]
        print(
            f"Per-request time as the data grows — one client, keep-alive, each size in its own process; {rounds} "
            f"round(s) of at least {round_seconds:g} s per size, the sizes alternated; goal within {GOAL:.0%} of the "
            "1 k figure"
        )
        timings: dict[tuple[int, str], list[tuple[float, float]]] = {(s, p): [] for s in all_sizes for p in paths}
        for r in range(rounds):
            for path in paths:
                turn = r % len(children)
                for size, _, conn in children[turn:] + children[:turn]:
                    conn.send((path, round_seconds))
                    answer = conn.recv()
                    if answer[0] != "round":
                        raise RuntimeError(f"taille {size} / size {size}, {path}:\n{answer[1]}")
                    timings[size, path].append((answer[1], answer[2]))
            print(f"  round {r + 1}/{rounds} done  (load {_load()})", flush=True)
        print(
            f"  {'exchanges':>10} "
            + " ".join(f"{p + ' ms':>10} {'cpu':>6}" for p in paths)
            + "   (ms per request: wall, best round / CPU of its process, best round)"
        )
        for size in all_sizes:
            point: dict[str, Any] = {"exchanges_loaded": size, "fill_seconds": round(fills[size], 1)}
            for path in paths:
                point[path] = round(min(t[0] for t in timings[size, path]) * 1000.0, 3)
                point[f"{path}_cpu"] = round(min(t[1] for t in timings[size, path]) * 1000.0, 3)
            out["points"].append(point)
            print(
                f"  {size:>10} "
                + " ".join(f"{point[p]:>10.2f} {point[p + '_cpu']:>6.2f}" for p in paths)
                + f"   (filled in {fills[size]:.1f} s)"
            )
        reference, largest = sizes[0], all_sizes[-1]

        def paired(path: str, index: int) -> list[float]:
            """The ratio largest / reference of each round (run side by side), sorted."""
            return sorted(
                a[index] / b[index] for a, b in zip(timings[largest, path], timings[reference, path], strict=True)
            )

        cpu_rounds = {p: paired(p, 1) for p in paths}
        out["reference"], out["largest"] = reference, largest
        out["ratios"] = {p: round(statistics.median(paired(p, 0)), 3) for p in paths}
        out["cpu_ratios"] = {p: round(statistics.median(cpu_rounds[p]), 3) for p in paths}
        out["cpu_ratios_per_round"] = {p: [round(x, 3) for x in cpu_rounds[p]] for p in paths}
        # no growth beyond 20 % in CPU time (the other processes of a shared machine move the wall time more)
        out["meets_goal"] = {p: out["cpu_ratios"][p] <= 1.0 + GOAL for p in paths}
        print(
            f"\n{largest} vs {reference} exchanges, median of the {rounds} paired rounds: "
            + ", ".join(
                f"{p} x{out['cpu_ratios'][p]:.2f} CPU (rounds {cpu_rounds[p][0]:.2f}-{cpu_rounds[p][-1]:.2f}), "
                f"x{out['ratios'][p]:.2f} wall ({'OK' if out['meets_goal'][p] else 'GROWS'})"
                for p in paths
            )
        )
        return out
    finally:
        for _, process, conn in children:
            try:
                conn.send(None)
            except OSError:
                pass
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true", help=f"add the {LARGE:,} point (a few minutes)")
    parser.add_argument("--mdn", action="store_true", help="add the MDN path (its own inbound exchanges, as many)")
    parser.add_argument(
        "--eprescription", action="store_true", help="add the e-Prescription fetch by EPU (as many prescriptions)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="measured rounds per size, alternated (default 5): the best in the table, the median paired ratio in the verdict",
    )
    parser.add_argument(
        "--round-seconds",
        type=float,
        default=ROUND_SECONDS,
        help=f"minimum length of a measured round, in seconds (default {ROUND_SECONDS}; 0: {REQUESTS['insi']} INSi "
        "searches, 20 of each other path, the rounds before 3 December)",
    )
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    out = run(
        (*SIZES, LARGE) if args.large else SIZES,
        args.rounds,
        mdn=args.mdn,
        eprescription=args.eprescription,
        round_seconds=args.round_seconds,
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
