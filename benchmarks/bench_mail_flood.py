"""Connections held under an idle flood of the MSSanté SMTP and IMAP listeners (issue 15 item 5).

N TCP connections are opened from 127.0.0.1 to each listener and left idle after the greeting; meanwhile a normal
client from another address (127.0.0.2) opens a session every second (SMTP: greeting + ``NOOP`` -> 250; IMAP:
greeting + ``CAPABILITY`` -> OK). Reported per listener: the connections the server still holds 1 s after the
flood, at the idle timeout and 3 s after it, the probe's answers and worst latency, and the refusal rows journaled.

Two configurations in the same run: **bounded** (the defaults, 64 connections per peer and 512 per listener, with
``smtp_idle_timeout`` / ``imap_idle_timeout`` shortened to ``--idle`` seconds so the run is short) and
**unbounded** (limits and timeouts out of reach: what the listeners did before issue 15).

Run from the repository root:  python benchmarks/bench_mail_flood.py [--connections 1000] [--idle 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter
from harness.runtime.environment import SocleEnvironment

FLOOD = "127.0.0.1"
PROBE = "127.0.0.2"  # Linux routes all of 127/8 to loopback
ASK = {"smtp": (b"NOOP\r\n", b"250 "), "imap": (b"p1 CAPABILITY\r\n", b"p1 OK")}


def still_open(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the server has not closed (a non-blocking peek sees EOF on closed ones)."""
    count = 0
    for sock in sockets:
        try:
            sock.setblocking(False)
            while True:  # drain what the server said (greeting, 421 / BYE) until EOF or nothing more
                data = sock.recv(65536)
                if not data:
                    break
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def probe_once(host: str, port: int, listener: str) -> float | None:
    """Seconds for a greeting and one answered command from the probe's address; ``None`` when refused."""
    command, expected = ASK[listener]
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=10, source_address=(PROBE, 0)) as sock:
            reader = sock.makefile("rb")
            if not reader.readline().startswith(b"220 " if listener == "smtp" else b"* OK"):
                return None
            sock.sendall(command)
            line = reader.readline()
            while line.startswith(b"* "):
                line = reader.readline()
            return time.perf_counter() - started if line.startswith(expected) else None
    except OSError:
        return None


def flood_one(env: SocleEnvironment, listener: str, connections: int, idle: float) -> dict[str, Any]:
    host, _, port_text = env.endpoints["mssante"][listener].rpartition(":")
    port = int(port_text)
    latencies: list[float | None] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            latencies.append(probe_once(host, port, listener))
            stop.wait(1.0)

    flood: list[socket.socket] = []
    started = time.monotonic()
    for _ in range(connections):
        try:
            flood.append(socket.create_connection((host, port), timeout=10, source_address=(FLOOD, 0)))
        except OSError:
            continue
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    time.sleep(1.0)
    held_1s = still_open(flood)
    time.sleep(max(0.0, idle + started - time.monotonic()))
    held_timeout = still_open(flood)
    time.sleep(3.0)
    held_after = still_open(flood)
    stop.set()
    prober.join()
    for sock in flood:
        sock.close()
    answered = [x for x in latencies if x is not None]
    return {
        "opened": len(flood),
        "held_after_1s": held_1s,
        "held_at_idle_timeout": held_timeout,
        "held_3s_after": held_after,
        "probes": len(latencies),
        "probes_refused": len(latencies) - len(answered),
        "probe_max_ms": round(max(answered) * 1000, 1) if answered else None,
    }


def run(connections: int, idle: float) -> dict[str, Any]:
    out: dict[str, Any] = {"benchmark": "mail_flood", "connections": connections, "idle_s": idle}
    configurations = {
        "bounded": {"mssante": {"smtp_idle_timeout": idle, "imap_idle_timeout": idle}},
        "unbounded": {
            "host": {"max_connections": 1_000_000, "max_per_peer": 1_000_000},
            "mssante": {"smtp_idle_timeout": 100_000, "imap_idle_timeout": 100_000},
        },
    }
    for name, settings in configurations.items():
        tmp = Path(tempfile.mkdtemp(prefix="bench-mail-flood-"))
        env = SocleEnvironment(
            HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/j.sqlite", services=("mssante",), settings=settings)
        )
        try:
            env.start()
            figures: dict[str, Any] = {}
            for listener in ("smtp", "imap"):
                figures[listener] = flood_one(env, listener, connections, idle)
            time.sleep(0.5)  # the last refusals are journaled off the event loop
            rows = env.journal.query(JournalFilter(service="harness", operation="connection.refused"))
            figures["refusal_rows"] = len(rows)
            figures["refused_or_timed_out"] = sum(int(r.details.get("count", 1)) for r in rows)
            out[name] = figures
            print(f"{name}: {json.dumps(figures)}")
        finally:
            env.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=4.0, help="smtp_idle_timeout / imap_idle_timeout when bounded")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 4000 or not 0.5 <= args.idle <= 60:
        parser.error("--connections must be within 1..4000 and --idle within 0.5..60")
    out = run(args.connections, args.idle)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
