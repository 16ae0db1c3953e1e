"""Durability under load (issue 15 item 10, the full version of ``tests/test_durability.py``): SMTP submissions and
INSi searches from K client threads against ``socle-harness serve``, ``kill -9`` of the serving process N times
mid-load, a restart on the same journal after each; at the end every acknowledged exchange (SMTP ``250`` after DATA,
INSi HTTP 200 with ``CodeCR`` 00) is in the journal exactly once, nothing is journaled twice, and SQLite's
``PRAGMA integrity_check`` says ``ok``.

The simulators commit each exchange before they answer (SQLite WAL): an acknowledgement the client saw is durable;
what was cut in flight may or may not be journaled, but never twice.

Run from the repository root:  python benchmarks/bench_durability.py [--clients 8] [--kills 8] [--per-phase 150]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import smtplib
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from harness.core.config import package_root
from harness.core.journal import JournalFilter, Outcome, open_journal
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.sut.base import InsiTraits
from harness.sut.documents import build_message
from harness.sut.insi_actions import REFERENCE_IDAM, build_request

LOGIN = "dui@ehpad-tilleuls.mssante.fr"
PASSWORD = "dui-tilleuls-test"
RECIPIENT = "jean.dupont@medecin.mssante.fr"
INSI_HEADERS = {
    "Content-Type": 'application/soap+xml; charset=utf-8; action="urn:ServiceIdentiteCertifiee:1.0.0:'
    'rechercherInsAvecTraitsIdentite"'
}
PHASE_CAP = 60.0  # seconds: a phase ends after this even if fewer exchanges were acknowledged


def serve(tmp: Path, journal: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    endpoints = tmp / f"endpoints-{uuid.uuid4().hex[:6]}.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.front.cli", "serve", "--journal", journal, "--ephemeral",
         "-s", "mssante", "-s", "insi", "--endpoints-file", str(endpoints)],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not endpoints.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("serve did not start")
        time.sleep(0.1)
    time.sleep(0.2)  # the file is written whole, but let the writer close it
    return process, json.loads(endpoints.read_text())


class Load:
    """The client threads of one phase and what the server acknowledged to them."""

    def __init__(self, endpoints: dict[str, Any], pki: TestPKI, clients: int) -> None:
        self.stop = threading.Event()
        self.smtp_acks: list[str] = []
        self.insi_acks: list[str] = []
        self.smtp_port = int(endpoints["mssante"]["smtp"].rpartition(":")[2])
        self.insi_port = int(endpoints["insi"]["soap"].split(":")[2].split("/")[0])
        self.pki = pki
        testdata = load_testdata(package_root() / "fixtures")
        self.person = testdata.person("P001")
        self.establishment = testdata.establishment(self.person.essms)
        self.threads = [
            threading.Thread(target=self._smtp if i % 2 == 0 else self._insi, daemon=True) for i in range(clients)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def acknowledged(self) -> int:
        return len(self.smtp_acks) + len(self.insi_acks)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(20)

    def _smtp(self) -> None:
        context = ssl.create_default_context(cafile=str(self.pki.ca_bundle_path))
        try:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=15) as smtp:
                smtp.starttls(context=context)
                smtp.login(LOGIN, PASSWORD)
                while not self.stop.is_set():
                    built = build_message(self.person, self.establishment, LOGIN, [RECIPIENT])
                    message_id = make_msgid(domain="ehpad-tilleuls.mssante.fr")
                    built.replace_header("Message-ID", message_id)
                    if (
                        smtp.sendmail(LOGIN, [RECIPIENT], built.as_bytes(policy=built.policy.clone(linesep="\r\n")))
                        == {}
                    ):
                        self.smtp_acks.append(message_id)
        except (smtplib.SMTPException, OSError, ssl.SSLError):
            return  # killed under our feet

    def _insi(self) -> None:
        context = ssl.create_default_context(cafile=str(self.pki.ca_bundle_path))
        client = self.pki.client("INSI-AUTO")
        context.load_cert_chain(str(client.cert_path), str(client.key_path))
        traits = InsiTraits("MARTIN", ("JEANNE",), "F", "1938-04-12")
        try:
            connection = http.client.HTTPSConnection("127.0.0.1", self.insi_port, context=context, timeout=15)
            while not self.stop.is_set():
                message_id = str(uuid.uuid4())
                body = build_request(
                    traits, emitter=self.person.essms, idam=REFERENCE_IDAM, instance="bench", message_id=message_id
                )
                connection.request("POST", "/insi/lps", body=body, headers=INSI_HEADERS)
                response = connection.getresponse()
                data = response.read()
                if response.status == 200 and b"<CodeCR>00</CodeCR>" in data:
                    self.insi_acks.append(f"uuid:{message_id}")
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return


def run(clients: int, kills: int, per_phase: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    journal = f"sqlite:///{tmp}/journal.sqlite"
    smtp_acks: list[str] = []
    insi_acks: list[str] = []
    started = time.perf_counter()
    try:
        for phase in range(kills + 1):
            process, endpoints = serve(tmp, journal)
            pki = TestPKI.ensure(tmp / ".socle" / "pki")
            load = Load(endpoints, pki, clients)
            load.start()
            deadline = time.monotonic() + PHASE_CAP
            while load.acknowledged() < per_phase and time.monotonic() < deadline:
                time.sleep(0.02)
            if phase < kills:
                os.kill(process.pid, signal.SIGKILL)  # mid-load: exchanges in flight are cut
            else:
                process.send_signal(signal.SIGTERM)
            process.wait(30)
            load.finish()
            smtp_acks += load.smtp_acks
            insi_acks += load.insi_acks
            print(
                f"  phase {phase + 1}/{kills + 1}: {len(load.smtp_acks)} SMTP + {len(load.insi_acks)} INSi "
                f"acknowledged, then {'kill -9' if phase < kills else 'SIGTERM'}"
            )
        elapsed = time.perf_counter() - started
        opened = open_journal(journal)
        try:
            smtp_rows = opened.query(
                JournalFilter(service="mssante", operation="smtp.submit", outcome=Outcome.ACCEPTED)
            )
            insi_rows = opened.query(JournalFilter(service="insi", outcome=Outcome.ACCEPTED))
        finally:
            opened.close()
        with sqlite3.connect(tmp / "journal.sqlite") as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        smtp_counts = Counter(r.details.get("message_id") for r in smtp_rows)
        insi_counts = Counter(r.details.get("message_id") for r in insi_rows)
        lost = [m for m in smtp_acks if smtp_counts[m] == 0] + [m for m in insi_acks if insi_counts[m] == 0]
        twice = [m for m, n in (smtp_counts + insi_counts).items() if n > 1]
        out = {
            "benchmark": "durability",
            "clients": clients,
            "kills": kills,
            "acknowledged_smtp": len(smtp_acks),
            "acknowledged_insi": len(insi_acks),
            "journaled_smtp": len(smtp_rows),
            "journaled_insi": len(insi_rows),
            "lost": len(lost),
            "journaled_twice": len(twice),
            "integrity_check": integrity,
            "runs": len({r.run_id for r in smtp_rows + insi_rows}),
            "seconds": round(elapsed, 1),
        }
        print(
            f"{clients} clients, {kills} x kill -9: {len(smtp_acks) + len(insi_acks)} acknowledged exchanges "
            f"({len(smtp_acks)} SMTP, {len(insi_acks)} INSi), {len(smtp_rows) + len(insi_rows)} journaled, "
            f"{len(lost)} lost, {len(twice)} journaled twice, integrity {integrity}, {out['runs']} runs, "
            f"{elapsed:.0f} s"
        )
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="client threads, half SMTP, half INSi (default 8)")
    parser.add_argument("--kills", type=int, default=8, help="kill -9 of the server mid-load (default 8)")
    parser.add_argument("--per-phase", type=int, default=150, help="acknowledged exchanges before each kill")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 2 <= args.clients <= 64 or not 1 <= args.kills <= 50:
        parser.error("--clients must be within 2..64 and --kills within 1..50")
    out = run(args.clients, args.kills, args.per_phase)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    ok = out["lost"] == 0 and out["journaled_twice"] == 0 and out["integrity_check"] == "ok"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
