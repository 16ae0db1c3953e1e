"""Resident memory of the MSSanté simulator under an SMTP load of large messages (issue 15 item 4).

K client threads each submit M messages of about S MB (a valid MSSanté message — the reference DUI's DLU with
its IHE_XDM.ZIP — plus an attachment that brings it to the size) over STARTTLS + AUTH to the simulator, which
journals each message, delivers it to the recipient's INBOX and keeps a copy in the sender's Sent. The process's
resident memory (``VmRSS``, peak ``VmHWM`` from /proc/self/status) is read before and after the load; the journal
must hold exactly the accepted messages.

The issue's figure: 3,200 messages of 1 MB took the process to 6.96 GB when every copy stayed in the heap.
Since the mail store keeps bodies once, on disk (:class:`mock_services.mssante.store.BodyStore`), the resident
memory should not grow with the number of messages.

Throughput is reported too (accepted messages and MB per second, all clients together). ``--full`` is the issue's
load: 32 clients x 100 messages x 1 MB (several minutes on a loaded 2-core machine).

Run from the repository root:  python benchmarks/bench_mail_memory.py [--clients 8] [--messages 40] [--size-mb 1]
                               python benchmarks/bench_mail_memory.py --full
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import smtplib
import ssl
import sys
import tempfile
import threading
import time
from email.mime.application import MIMEApplication
from pathlib import Path
from typing import Any

from harness.core.config import HarnessConfig, package_root
from harness.core.journal import JournalFilter, Outcome
from harness.fields.testdata import load_testdata
from harness.runtime.environment import SocleEnvironment
from harness.sut.documents import build_message

LOGIN = "dui@ehpad-tilleuls.mssante.fr"
PASSWORD = "dui-tilleuls-test"
RECIPIENT = "jean.dupont@medecin.mssante.fr"


def memory() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of this process, in MB."""
    values: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) // 1024
    return values


def big_message(size_mb: float) -> bytes:
    testdata = load_testdata(package_root() / "fixtures")
    person = testdata.person("P001")
    built = build_message(person, testdata.establishment(person.essms), LOGIN, [RECIPIENT])
    filler = os.urandom(max(0, int(size_mb * 1024 * 1024 * 3 / 4) - 40_000))  # base64 grows it by 4/3
    built.attach(MIMEApplication(filler, "octet-stream", Name="annexe.bin"))
    return built.as_bytes(policy=built.policy.clone(linesep="\r\n"))


def client(port: int, context: ssl.SSLContext, message: bytes, count: int, out: list[int]) -> None:
    accepted = 0
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        smtp.starttls(context=context)
        smtp.login(LOGIN, PASSWORD)
        for _ in range(count):
            try:
                if not smtp.sendmail(LOGIN, [RECIPIENT], message):
                    accepted += 1
            except smtplib.SMTPException:
                pass
    out.append(accepted)


def run(clients: int, messages: int, size_mb: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-mail-memory-"))
    env = SocleEnvironment(HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/j.sqlite", services=("mssante",)))
    try:
        port = int(env.start()["mssante"]["smtp"].rpartition(":")[2])
        context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
        message = big_message(size_mb)
        gc.collect()
        before = memory()
        started = time.perf_counter()
        results: list[int] = []
        threads = [
            threading.Thread(target=client, args=(port, context, message, messages, results)) for _ in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        gc.collect()
        after = memory()
        accepted = sum(results)
        flt = JournalFilter(service="mssante", operation="smtp.submit", run_id=env.run_id, outcome=Outcome.ACCEPTED)
        journaled = env.journal.count(flt)
        out = {
            "benchmark": "mail_memory",
            "clients": clients,
            "messages_per_client": messages,
            "message_bytes": len(message),
            "accepted": accepted,
            "journaled": journaled,
            "seconds": round(elapsed, 1),
            "rss_mb_before": before["VmRSS"],
            "rss_mb_after": after["VmRSS"],
            "peak_rss_mb": after["VmHWM"],
            "messages_per_s": round(accepted / elapsed, 1) if elapsed else 0.0,
            "mb_per_s": round(accepted * len(message) / 1048576 / elapsed, 1) if elapsed else 0.0,
        }
        print(
            f"{clients} clients x {messages} messages of {len(message) / 1048576:.2f} MB: {accepted} accepted, "
            f"{journaled} journaled, {elapsed:.1f} s; RSS {before['VmRSS']} MB -> {after['VmRSS']} MB "
            f"(peak {after['VmHWM']} MB); {out['messages_per_s']} messages/s, {out['mb_per_s']} MB/s"
        )
        return out
    finally:
        env.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--messages", type=int, default=40, help="messages per client")
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--full", action="store_true", help="the issue's load: 32 clients x 100 messages x 1 MB")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.full:
        args.clients, args.messages, args.size_mb = 32, 100, 1.0
    out = run(args.clients, args.messages, args.size_mb)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0 if out["accepted"] == out["journaled"] == args.clients * args.messages else 1


if __name__ == "__main__":
    sys.exit(main())
