"""Durability (issue 15 item 10, bounded version): SMTP submissions under load, ``kill -9`` of the serving process,
restart on the same journal; every acknowledged message (250) is in the journal exactly once, nothing twice, and
the restarted service keeps accepting. The simulator commits each exchange before it answers (SQLite WAL)."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from email.utils import make_msgid
from pathlib import Path

from harness.core.config import package_root
from harness.core.journal import JournalFilter, Outcome, open_journal
from harness.fields.testdata import load_testdata
from harness.sut.documents import build_message

LOGIN = "dui@ehpad-tilleuls.mssante.fr"
PASSWORD = "dui-tilleuls-test"
RECIPIENT = "jean.dupont@medecin.mssante.fr"


def _serve(tmp: Path, journal: str) -> tuple[subprocess.Popen[bytes], dict]:
    endpoints = tmp / f"endpoints-{uuid.uuid4().hex[:6]}.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.front.cli", "serve", "--journal", journal, "--ephemeral", "-s", "mssante",
         "--endpoints-file", str(endpoints)],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not endpoints.exists():
        assert process.poll() is None, "serve stopped while starting"
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.1)
    return process, json.loads(endpoints.read_text())


def _messages() -> tuple[bytes, str]:
    testdata = load_testdata(package_root() / "fixtures")
    person = testdata.person("P001")
    built = build_message(person, testdata.establishment(person.essms), LOGIN, [RECIPIENT])
    message_id = make_msgid(domain="ehpad-tilleuls.mssante.fr")
    built.replace_header("Message-ID", message_id)
    return built.as_bytes(policy=built.policy.clone(linesep="\r\n")), message_id


def _load(port: int, ca: Path, acknowledged: list[str], stop: threading.Event) -> None:
    """Submit messages until the server goes away; note each one acknowledged with 250."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.starttls(context=context)
            smtp.login(LOGIN, PASSWORD)
            while not stop.is_set():
                data, message_id = _messages()
                if smtp.sendmail(LOGIN, [RECIPIENT], data) == {}:
                    acknowledged.append(message_id)
    except (smtplib.SMTPException, OSError, ssl.SSLError):
        return  # killed under our feet: what was not acknowledged may or may not be journaled


def test_acknowledged_messages_survive_kill_9_exactly_once(tmp_path: Path) -> None:
    journal = f"sqlite:///{tmp_path}/journal.sqlite"
    process, endpoints = _serve(tmp_path, journal)
    ca = tmp_path / ".socle" / "pki" / "ca-bundle.pem"
    port = int(endpoints["mssante"]["smtp"].rpartition(":")[2])
    acknowledged: list[str] = []
    stop = threading.Event()
    clients = [threading.Thread(target=_load, args=(port, ca, acknowledged, stop)) for _ in range(3)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)  # mid-load: transactions in flight are cut
    process.wait(10)
    stop.set()
    for client in clients:
        client.join(15)
    before = list(acknowledged)
    assert len(before) >= 30

    restarted, endpoints = _serve(tmp_path, journal)  # the same journal, reopened after a crash
    try:
        after: list[str] = []
        done = threading.Event()
        loader = threading.Thread(
            target=_load,
            args=(int(endpoints["mssante"]["smtp"].rpartition(":")[2]), ca, after, done),
        )
        loader.start()
        while len(after) < 5 and loader.is_alive():
            time.sleep(0.02)
        done.set()
        loader.join(15)
        assert len(after) >= 5
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(30)

    opened = open_journal(journal)
    try:
        rows = opened.query(JournalFilter(service="mssante", operation="smtp.submit", outcome=Outcome.ACCEPTED))
    finally:
        opened.close()
    counts = Counter(r.details.get("message_id") for r in rows)
    assert {m: counts[m] for m in before + after} == {m: 1 for m in before + after}  # each acknowledged one, once
    assert max(counts.values()) == 1  # and nothing journaled twice
    assert len({r.run_id for r in rows}) == 2  # two runs of serve on one journal
