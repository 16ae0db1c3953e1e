"""A TLS handshake a harness listener (HTTPS, SMTP STARTTLS, IMAP STARTTLS) refuses is journaled with the peer address and the reason (issue 20
item 8): a DUI whose certificate comes from another CA, or that speaks plain HTTP, is seen by a grappe."""

from __future__ import annotations

import http.client
import imaplib
import smtplib
import socket
import ssl
import time
from pathlib import Path

import pytest

from harness.core.config import HarnessConfig, package_root
from harness.core.journal import JournalFilter, open_journal
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.host.service_host import BackgroundHost, HostOptions, ServiceHost
from harness.host.simulator import RunState
from harness.runtime.environment import SocleEnvironment
from tests.test_asgi_tls import Echo


def test_refused_handshakes_are_journaled_and_the_listener_keeps_serving(tmp_path: Path) -> None:
    pki = TestPKI.ensure(tmp_path / "pki", organisation_clients=("INSI-AUTO",))
    journal = open_journal(f"sqlite:///{tmp_path}/journal.sqlite")
    host = ServiceHost(
        journal, pki, load_testdata(package_root() / "fixtures"), HostOptions(), RunState("r"), registry={"echo": Echo}
    )
    background = BackgroundHost(host)
    port = int(background.start()["echo"]["base"].rsplit(":", 1)[1].split("/")[0])
    try:
        other = TestPKI.create(tmp_path / "other", organisation_clients=("INSI-AUTO",))
        context = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        context.load_cert_chain(str(other.client("INSI-AUTO").cert_path), str(other.client("INSI-AUTO").key_path))
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            connection.request("GET", "/echo/")
            connection.getresponse().read()
        connection.close()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:  # HTTP on the HTTPS port
            plain.sendall(b"GET /echo/ HTTP/1.1\r\nHost: x\r\n\r\n")
            plain.recv(100)
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # connected and closed before any TLS record: not a refused handshake
        good = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        good.load_cert_chain(str(pki.client("INSI-AUTO").cert_path), str(pki.client("INSI-AUTO").key_path))
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=good, timeout=10)
        connection.request("GET", "/echo/")
        assert connection.getresponse().status == 200  # still serving, mutual TLS as before
        connection.close()
        refused = journal.query(JournalFilter(service="tls"))
        assert [(e.operation, e.outcome.value, e.error_code, e.details["reason"], e.run_id) for e in refused] == [
            ("tls.handshake", "rejected", "TLS-HANDSHAKE", "CERTIFICATE_VERIFY_FAILED", "r"),
            ("tls.handshake", "rejected", "TLS-HANDSHAKE", "HTTP_REQUEST", "r"),
        ]
        for exchange in refused:
            host_part, _, peer_port = exchange.details["peer"].rpartition(":")
            assert host_part == "127.0.0.1" and peer_port.isdigit() and exchange.actor == exchange.details["peer"]
            assert exchange.error_message.startswith(f"négociation TLS refusée ({exchange.details['peer']}) : ")
    finally:
        background.stop()
        journal.close()


def test_refused_starttls_handshakes_are_journaled_on_smtp_and_imap(tmp_path: Path) -> None:
    config = HarnessConfig(run_dir=tmp_path, journal=f"sqlite:///{tmp_path}/journal.sqlite", services=("mssante",))
    env = SocleEnvironment(config)
    env.start()
    try:
        other = TestPKI.create(tmp_path / "other", organisation_clients=("MSS-990000016",))
        context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
        issued = other.client("MSS-990000016")
        context.load_cert_chain(str(issued.chain_path), str(issued.key_path))
        host, _, smtp_port = env.endpoints["mssante"]["smtp"].rpartition(":")
        with pytest.raises((ssl.SSLError, smtplib.SMTPException, OSError)):
            with smtplib.SMTP(host, int(smtp_port), timeout=15) as smtp:
                smtp.starttls(context=context)
                smtp.noop()
        host, _, imap_port = env.endpoints["mssante"]["imap"].rpartition(":")
        client = imaplib.IMAP4(host.strip("[]"), int(imap_port), timeout=15)
        with pytest.raises((ssl.SSLError, OSError, imaplib.IMAP4.abort)):
            client.starttls(ssl_context=context)
            client.noop()
        # OpenSSL sends its alert during the handshake, before the listener can journal the refusal: wait for the
        # two rows (bounded), as a grappe reading the journal a moment later would see them
        deadline = time.monotonic() + 10.0
        while True:
            refused = [
                e
                for e in env.journal.query(JournalFilter(service="mssante", run_id=env.run_id))
                if e.error_code == "TLS-HANDSHAKE"
            ]
            if len(refused) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        refused.sort(key=lambda e: e.operation, reverse=True)  # smtp.starttls, then imap.starttls
        assert [(e.operation, e.outcome.value, e.details["reason"], e.details["listener"]) for e in refused] == [
            ("smtp.starttls", "rejected", "CERTIFICATE_VERIFY_FAILED", "smtp"),
            ("imap.starttls", "rejected", "CERTIFICATE_VERIFY_FAILED", "imap"),
        ]
        assert all(e.details["peer"].startswith("127.0.0.1:") for e in refused)
    finally:
        env.stop()
