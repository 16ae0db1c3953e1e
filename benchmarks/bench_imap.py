"""IMAP FETCH of 1,000 messages and SMTP -> IMAP delivery latency: the MSSanté simulator vs bare pymap, same run.

Two IMAP servers run side by side, both pymap 0.36, same TLS certificate (test PKI), STARTTLS then LOGIN:
* **simulator**: the MSSanté simulator's IMAP (pymap over the simulator's own mailbox store), started through
  ``SocleEnvironment`` as ``socle-harness serve`` starts it;
* **bare**: pymap's own in-memory ``dict`` backend, the library's reference backend.

Each mailbox holds the same N messages (real MSSanté messages: DLU as IHE_XDM.ZIP + PDF, ~6 KB). Figures:
* ``fetch_meta``: ``UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)`` of the N messages (what a client's list does);
* ``fetch_full``: ``UID FETCH 1:* (BODY.PEEK[])`` of the N messages (what a DUI integrating them does);
* ``round_trip``: one message made visible to an IMAP session that polls with ``NOOP`` — simulator: SMTP
  submission (validation, journal commit, delivery) then seen over IMAP; bare: IMAP ``APPEND`` (the library's
  own delivery path) then seen over IMAP. Median and p95 of R rounds.

Run from the repository root:  python benchmarks/bench_imap.py [--messages N] [--rounds R] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import json
import shutil
import smtplib
import ssl
import statistics
import tempfile
import threading
import time
from argparse import Namespace
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxyprotocol.reader import ProxyProtocolReader
from proxyprotocol.version import ProxyProtocolVersion
from pymap.backend.dict import Config as DictConfig
from pymap.backend.dict import DictBackend
from pymap.backend.dict import Login as DictLogin
from pymap.concurrent import Subsystem
from pymap.imap import IMAPServer
from pymap.parsing.message import AppendMessage
from pysasl.hashing import BuiltinHash

from harness.core.config import HarnessConfig
from harness.runtime.environment import SocleEnvironment
from harness.sut.documents import build_message

MAILBOX = "secretariat@ehpad-tilleuls.mssante.fr"
PASSWORD = "tilleuls-test"
SENDER = "dui@ehpad-tilleuls.mssante.fr"
SENDER_PASSWORD = "dui-tilleuls-test"
TIME_CAP = 20.0


class BareServer:
    """pymap with its dict backend on its own loop thread (same TLS context as the simulator)."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        args = Namespace(passlib_cfg=None, proxy_protocol=None, debug=False)
        self.config = DictConfig(
            args,
            host="127.0.0.1",
            port=0,
            demo_data=False,
            demo_user=MAILBOX,
            demo_password=PASSWORD,
            ssl_context=tls,
            tls_enabled=True,
            reject_dnsbl=False,
            hash_context=BuiltinHash(),
            cpu_subsystem=Subsystem.for_asyncio(),
            invalid_user_sleep=0.0,
            proxy_protocol=ProxyProtocolVersion.get(None),
            max_append_len=50_000_000,
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _start(self) -> int:
        self.login = DictLogin(self.config)
        await DictBackend._add_demo_user(self.config, self.login)  # noqa: SLF001 - the library's own set-up path
        callback = ProxyProtocolReader(self.config.proxy_protocol).get_callback(IMAPServer(self.login, self.config))
        self.server = await asyncio.start_server(callback, host="127.0.0.1", port=0)
        return int(self.server.sockets[0].getsockname()[1])

    def start(self) -> None:
        self.thread.start()
        self.port = self.run(self._start())

    async def _fill(self, data: bytes, count: int) -> None:
        async with self.login.demo_user_identity.new_session() as session:
            inbox = await session.mailbox_set.get_mailbox("INBOX")
            for _ in range(count):
                await inbox.append(AppendMessage(data, datetime.now(UTC), frozenset()), recent=False)

    def fill(self, data: bytes, count: int) -> None:
        self.run(self._fill(data, count))

    def stop(self) -> None:
        self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def client(port: int, cafile: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    imap.starttls(ssl_context=ssl.create_default_context(cafile=cafile))
    imap.login(MAILBOX, PASSWORD)
    imap.select("INBOX")
    return imap


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Best of ``repeat`` runs, in seconds (after one warm-up run)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def visible_after(imap: imaplib.IMAP4, deliver: Callable[[], None]) -> float:
    before = int(imap.select("INBOX")[1][0])
    start = time.perf_counter()
    deliver()
    while time.perf_counter() - start < TIME_CAP:
        imap.noop()
        if int(imap.select("INBOX")[1][0]) > before:
            return time.perf_counter() - start
    raise TimeoutError("message never became visible")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-imap-"))
    env = SocleEnvironment(HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/journal.sqlite", services=("mssante",)))
    env.start()
    bare = BareServer(env.pki.server_ssl_context())
    bare.start()
    figures: dict[str, Any] = {"messages": args.messages}
    try:
        person, establishment = env.testdata.person("P001"), env.testdata.establishment("990000016")
        data = build_message(person, establishment, SENDER, [MAILBOX], "DLU").as_bytes().replace(b"\n", b"\r\n")
        store = env.host.simulators["mssante"].store  # type: ignore[attr-defined]
        for _ in range(args.messages):
            store.deliver(MAILBOX, data)
        bare.fill(data, args.messages)
        cafile = str(env.pki.ca_bundle_path)
        sim_port = int(env.endpoints["mssante"]["imap"].rpartition(":")[2])
        for name, port in (("simulator", sim_port), ("bare", bare.port)):
            imap = client(port, cafile)
            figures[f"{name}_fetch_meta_s"] = timed(
                lambda imap=imap: imap.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)"), args.repeat
            )
            figures[f"{name}_fetch_full_s"] = timed(
                lambda imap=imap: imap.uid("FETCH", "1:*", "(BODY.PEEK[])"), args.repeat
            )
            imap.logout()

        smtp_host, _, smtp_port = env.endpoints["mssante"]["smtp"].rpartition(":")
        tls = ssl.create_default_context(cafile=cafile)

        def submit() -> None:
            with smtplib.SMTP(smtp_host, int(smtp_port), timeout=30) as smtp:
                smtp.starttls(context=tls)
                smtp.login(SENDER, SENDER_PASSWORD)
                smtp.sendmail(SENDER, [MAILBOX], data)

        appender = client(bare.port, cafile)

        def append() -> None:
            appender.append("INBOX", None, None, data)

        for name, port, deliver in (("simulator", sim_port, submit), ("bare", bare.port, append)):
            watcher = client(port, cafile)
            samples = sorted(visible_after(watcher, deliver) for _ in range(args.rounds))
            figures[f"{name}_round_trip_median_ms"] = statistics.median(samples) * 1000
            figures[f"{name}_round_trip_p95_ms"] = samples[int(0.95 * (len(samples) - 1))] * 1000
            watcher.logout()
        appender.logout()
    finally:
        bare.stop()
        env.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.messages
    print(f"IMAP, {n} messages of {len(data)} bytes, best of {args.repeat} (simulator vs bare pymap dict backend)")
    for what in ("fetch_meta", "fetch_full"):
        sim, base = figures[f"simulator_{what}_s"], figures[f"bare_{what}_s"]
        print(
            f"  {what:<11} simulator {sim * 1000:8.1f} ms ({n / sim:8.0f} msg/s)   bare {base * 1000:8.1f} ms ({n / base:8.0f} msg/s)"
            f"   ratio {base / sim:5.2f}"
        )
    print(f"SMTP -> IMAP visible, {args.rounds} rounds (bare: IMAP APPEND -> visible)")
    print(
        f"  simulator median {figures['simulator_round_trip_median_ms']:7.1f} ms  p95 {figures['simulator_round_trip_p95_ms']:7.1f} ms"
    )
    print(
        f"  bare      median {figures['bare_round_trip_median_ms']:7.1f} ms  p95 {figures['bare_round_trip_p95_ms']:7.1f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
