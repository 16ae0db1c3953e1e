"""Per-request time as the data grows: SMTP submission, INSi search and FHIR search with a fixed number of matches,
with 1 k, 10 k (and, with ``--large``, 100 k) existing exchanges, against an empty journal measured in the same run.

One service host (one uvicorn server, mutual TLS with the test PKI) runs the MSSanté, INSi and e-Parcours simulators
on one SQLite journal, exactly as ``serve`` does. Before each point the benchmark loads the journal with exchanges of
*the same run* (``record_many`` in chunks, shaped like a run's traffic: ``smtp.submit`` of the measured establishment
for a thousand persons, one in ten for the measured person P001; INSi answers for other persons; cahier de liaison
reads) and the cahier de liaison store with notes of *another* person (as many as exchanges), then times, one client,
one request at a time on a keep-alive connection:

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
of this process per request (client and servers share it), which the other processes of a shared machine move
far less than the wall time (both are printed). The baseline column is
the empty journal (and store) of the same run, measured first. Each figure is the best mean of ``--rounds`` rounds:
on a shared, loaded machine the best round is the one least disturbed by the other processes.

Run from the repository root:
  python benchmarks/bench_scaling.py [--large] [--mdn] [--eprescription] [--rounds R] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import shutil
import smtplib
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
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


def _timed(count: int, one: Callable[[], bool]) -> tuple[float, float]:
    """Mean wall and CPU seconds per request over ``count`` requests (stops at TIME_CAP); raises on a wrong answer.

    CPU is this process's (client and servers share it): what the requests cost whatever the other processes of
    the machine do."""
    start, cpu = time.perf_counter(), time.process_time()
    done = 0
    for _ in range(count):
        if not one():
            raise RuntimeError("réponse inattendue / unexpected answer")
        done += 1
        if time.perf_counter() - start > TIME_CAP:
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


def run(sizes: tuple[int, ...], rounds: int, *, mdn: bool = False, eprescription: bool = False) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    testdata = load_testdata(package_root() / "fixtures")
    person, other = testdata.person("P001"), testdata.person("P002")
    establishment = testdata.establishment(person.essms)
    pki = TestPKI.ensure(tmp / "pki", organisation_clients=("INSI-AUTO",))
    pki.issue_client(establishment_certificate("990000016"), structure_id="1990000016")
    journal = open_journal(f"sqlite:///{tmp}/journal.sqlite")
    run_state = RunState(uuid.uuid4().hex[:12])
    host = ServiceHost(
        journal,
        pki,
        testdata,
        HostOptions(),
        run_state,
        registry={
            "mssante": MSSanteSimulator,
            "insi": InsiSimulator,
            "eparcours": EparcoursSimulator,
            **({"eprescription": EprescriptionSimulator} if eprescription else {}),
        },
    )
    background = BackgroundHost(host)
    out: dict[str, Any] = {"benchmark": "scaling", "points": []}
    clients: Clients | None = None
    try:
        endpoints = background.start()
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
        clients = Clients(ports, pki, message, insi_body, person.ins.value)
        paths: dict[str, Callable[[], bool]] = {
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
            paths["mdn"] = clients.send_mdn
        other_essms = next(e.finess for e in testdata.establishments if e.finess != person.essms)
        if eprescription:  # the same port serves /eprescription/fhir; the measured prescription is P001's
            prescriber = host.simulators["eprescription"].service  # type: ignore[attr-defined]
            epu = prescriber.issue(person, lines=EPU_LINES).epu
            clients.epu = f"/eprescription/fhir/MedicationRequest?group-identifier={EPU_SYSTEM}%7C{epu}" + "".join(
                f"&_include=MedicationRequest:{p}" for p in ("medication", "subject", "requester")
            )
            paths["epu"] = clients.send_epu
        for send in paths.values():  # warm-up: TLS, imports, the identity base, SQLite pages
            _timed(5, send)
        print(
            f"Per-request time as the data grows — one client, keep-alive; best of {rounds} round(s); "
            f"goal within {GOAL:.0%} of the 1 k figure"
        )
        print(
            f"  {'exchanges':>10} "
            + " ".join(f"{p + ' ms':>10} {'cpu':>6}" for p in paths)
            + "   (ms per request: wall, best round / CPU of this process, best round)   load"
        )
        filled = 0
        for size in (0, *sizes):
            started = time.perf_counter()
            _fill_journal(journal, run_state.run_id, establishment.finess, person.ins.value, filled, size)
            if mdn:
                _fill_inbound(journal, run_state.run_id, establishment.finess, filled, size)
            _fill_store(cdl, template, size - filled)
            if eprescription:
                _fill_prescriptions(prescriber, other_essms, size - filled)
            fill_s = time.perf_counter() - started
            filled = size
            point: dict[str, Any] = {"exchanges_loaded": size, "fill_seconds": round(fill_s, 1)}
            for path, send in paths.items():
                clients.reconnect(path)
                _timed(3, send)  # the new connection's TLS handshake, untimed
                timings = [_timed(REQUESTS[path], send) for _ in range(rounds)]
                point[path] = round(min(t[0] for t in timings) * 1000.0, 3)
                point[f"{path}_cpu"] = round(min(t[1] for t in timings) * 1000.0, 3)
            point["load"] = _load()
            out["points"].append(point)
            print(
                f"  {size:>10} "
                + " ".join(f"{point[p]:>10.2f} {point[p + '_cpu']:>6.2f}" for p in paths)
                + f"   {point['load']}  (filled in {fill_s:.1f} s)"
            )
        reference = next(p for p in out["points"] if p["exchanges_loaded"] == sizes[0])
        largest = out["points"][-1]
        out["ratios"] = {p: round(largest[p] / reference[p], 3) for p in paths}
        out["cpu_ratios"] = {p: round(largest[f"{p}_cpu"] / reference[f"{p}_cpu"], 3) for p in paths}
        # no growth beyond 20 % in CPU time (the other processes of a shared machine move the wall time more)
        out["meets_goal"] = {p: out["cpu_ratios"][p] <= 1.0 + GOAL for p in paths}
        print(
            f"\n{largest['exchanges_loaded']} vs {sizes[0]} exchanges: "
            + ", ".join(
                f"{p} x{out['cpu_ratios'][p]:.2f} CPU, x{out['ratios'][p]:.2f} wall "
                f"({'OK' if out['meets_goal'][p] else 'GROWS'})"
                for p in paths
            )
        )
        return out
    finally:
        if clients is not None:
            clients.close()
        background.stop()
        journal.close()
        shutil.rmtree(tmp, ignore_errors=True)


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
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per point, the best kept (default 5)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    out = run((*SIZES, LARGE) if args.large else SIZES, args.rounds, mdn=args.mdn, eprescription=args.eprescription)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
