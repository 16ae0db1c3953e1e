"""Journal write cost per exchange: one writer thread vs concurrent writers (group commit), WAL pages and bytes.

``SQLiteJournal.record`` commits before it returns (a simulator acknowledges an exchange only after its commit).
When several threads record at once, the calls that arrive while a commit is under way are written together in the
next transaction (group commit). Measured on a fresh journal file per case, with rows shaped like the simulators':

  insi   an INSi ``rechercherInsAvecTraitsIdentite`` answer (request payload deduplicated, CR 00, the SOAP answer an
         attachment named by ``details["response_digest"]`` as the INSi simulator writes it since issue 18: one
         body per identity, 300 identities; before, a 2 KB copy in ``details["response"]`` of every row)
  fhir   a cahier de liaison ``cdl.create`` (a new payload each time, small details)

For each: microseconds per exchange, exchanges per transaction, WAL frames (pages) and WAL bytes per exchange (no
checkpoint during the measure), average ``details`` bytes per row. The baseline is the single writer thread of
the same run (one transaction per exchange): the ratio shows what group commit saves when writers overlap.

Run from the repository root:  python benchmarks/bench_journal.py [--exchanges N] [--threads K] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.journal import RESPONSE_DIGEST, Direction, Exchange, Outcome, SQLiteJournal, payload_digest

RESPONSE = "<soap:Envelope>" + "r" * 1800 + "</soap:Envelope>"  # about the size of a CR 00 answer


def insi(i: int) -> Exchange:
    ins = f"{i % 300:015d}"
    answer = (RESPONSE + ins).encode()
    return Exchange(
        service="insi",
        operation="soap.rechercherInsAvecTraitsIdentite",
        direction=Direction.FROM_DUI,
        outcome=Outcome.ACCEPTED,
        essms="990000016",
        person=ins,
        run_id="bench",
        actor="IDAM/instance",
        payload=b"<request>%d</request>" % (i % 50),
        payload_type="application/soap+xml",
        details={
            "cr": "00",
            "ins": {"value": ins, "oid": "1.2.250.1.213.1.4.8"},
            "request": {"nom_naissance": "MARTIN", "prenoms": ["JEANNE"]},
            "message_id": f"m{i}",
            "client_cn": "INSI-AUTO",
            RESPONSE_DIGEST: payload_digest(answer),
        },
        attachments=(answer,),
    )


def fhir(i: int) -> Exchange:
    return Exchange(
        service="eparcours",
        operation="cdl.create",
        direction=Direction.FROM_DUI,
        outcome=Outcome.ACCEPTED,
        essms="990000016",
        person=f"{i % 300:015d}",
        run_id="bench",
        payload=b'{"resourceType":"DocumentReference","n":%d}' % i,
        payload_type="application/fhir+json",
        details={"resource": "DocumentReference", "id": f"id{i}", "status": 201},
    )


def measure(make: Callable[[int], Exchange], threads: int, count: int, folder: Path) -> dict[str, float]:
    path = folder / f"{make.__name__}-{threads}.sqlite"
    journal = SQLiteJournal(path)
    db = journal._db  # the benchmark reads the WAL counters of the journal's own connection
    db.execute("PRAGMA wal_autocheckpoint=0")
    for i in range(200):  # warm-up: pages, statements
        journal.record(make(-i - 1))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    transactions = 0
    commit = journal._commit_pending

    def counted() -> None:
        nonlocal transactions
        transactions += 1
        commit()

    journal._commit_pending = counted  # type: ignore[method-assign]
    share = count // threads

    def work(t: int) -> None:
        for k in range(share):
            journal.record(make(t * share + k))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    done = share * threads
    wal_bytes = os.path.getsize(f"{path}-wal")
    frames = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    details = db.execute("SELECT AVG(LENGTH(details)) FROM exchanges").fetchone()[0]
    journal.close()
    return {
        "us_per_exchange": round(elapsed / done * 1e6, 1),
        "exchanges_per_transaction": round(done / max(transactions, 1), 2),
        "wal_frames_per_exchange": round(frames / done, 2),
        "wal_bytes_per_exchange": round(wal_bytes / done),
        "details_bytes_per_row": round(details),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=2000, help="exchanges per case (default 2000)")
    parser.add_argument("--threads", type=int, default=8, help="concurrent writer threads (default 8)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-journal-"))
    out: dict[str, Any] = {"benchmark": "journal", "cases": {}}
    try:
        print(f"Journal write cost — {args.exchanges} exchanges per case, 1 vs {args.threads} writer threads")
        for make in (insi, fhir):
            for threads in (1, args.threads):
                figures = measure(make, threads, args.exchanges, folder)
                out["cases"][f"{make.__name__}/{threads}"] = figures
                print(
                    f"  {make.__name__:5} {threads:2} thread(s): {figures['us_per_exchange']:8.1f} µs/exchange, "
                    f"{figures['exchanges_per_transaction']:5.2f} exchanges/transaction, "
                    f"{figures['wal_frames_per_exchange']:5.2f} WAL frames and "
                    f"{figures['wal_bytes_per_exchange']:6} WAL bytes/exchange, "
                    f"details {figures['details_bytes_per_row']} B/row"
                )
        out["load"] = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
        print(f"  load average: {out['load']}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
