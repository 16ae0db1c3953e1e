"""Connections held under an idle flood of the host's HTTPS listener (issue 15 item 5).

N TCP connections are opened from 127.0.0.1 to the shared HTTPS port and left idle (half of them never start TLS,
half complete the handshake and send nothing); meanwhile a normal client from another address (127.0.0.2) asks
``/_harness/health`` every second. Reported: how
many flood connections the server still holds after 1 s, after the header timeout and 5 s later, the health
latencies during the flood, and the refusal rows journaled (coalesced). The issue's figure: idle HTTPS
connections were held 20 s and more (and 1,100 idle MLLP connections exhausted the file descriptors).

Run from the repository root:  python benchmarks/bench_idle_flood.py [--connections 1100] [--header-timeout 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter
from harness.runtime.environment import SocleEnvironment

FLOOD = "127.0.0.1"  # the flooding peer
PROBE = "127.0.0.2"  # another peer (Linux routes all of 127/8 to loopback)


def still_open(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the server has not closed (a non-blocking peek sees EOF on closed ones)."""
    count = 0
    for sock in sockets:
        try:
            sock.setblocking(False)
            if isinstance(sock, ssl.SSLSocket):
                sock.recv(4096)  # data here is the server's 408 / 503 before it closes: let go
            else:
                count += 1 if sock.recv(1, socket.MSG_PEEK) else 0
        except (BlockingIOError, ssl.SSLWantReadError):
            count += 1
        except (OSError, ssl.SSLError):
            pass
    return count


def run(connections: int, header_timeout: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    settings = {"host": {"header_timeout": header_timeout}}  # default limits otherwise (64 per peer, 512 in all)
    env = SocleEnvironment(
        HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/j.sqlite", services=("tddui",), settings=settings)
    )
    try:
        base = env.start()["harness"]["base"]
        host, port = base.removeprefix("https://").rsplit(":", 1)
        context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
        latencies: list[float] = []
        failures: list[str] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    with socket.create_connection((host, int(port)), timeout=10, source_address=(PROBE, 0)) as raw:
                        with context.wrap_socket(raw, server_hostname=host) as tls:
                            tls.sendall(b"GET /_harness/health HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                            head = tls.recv(64)
                            ok = head.startswith(b"HTTP/1.1 200")
                            if not ok:
                                failures.append(head[:40].decode("latin-1"))
                    latencies.append(time.perf_counter() - started if ok else float("inf"))
                except OSError as exc:
                    failures.append(repr(exc)[:200])
                    latencies.append(float("inf"))
                stop.wait(1.0)

        flood: list[socket.socket] = []
        started = time.monotonic()
        for n in range(connections):
            try:
                raw = socket.create_connection((host, int(port)), timeout=10, source_address=(FLOOD, 0))
            except OSError:
                continue
            flood.append(context.wrap_socket(raw, server_hostname=host) if n % 2 else raw)
        opened = time.monotonic() - started
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        time.sleep(1.0)
        held_1s = still_open(flood)
        time.sleep(max(0.0, header_timeout + started - time.monotonic()))
        held_timeout = still_open(flood)
        time.sleep(5.0)
        held_after = still_open(flood)
        stop.set()
        prober.join()
        for sock in flood:
            sock.close()
        rows = env.journal.query(JournalFilter(service="harness", operation="connection.refused"))
        finite = [x for x in latencies if x != float("inf")]
        out = {
            "benchmark": "idle_flood",
            "connections": connections,
            "opened_in_s": round(opened, 2),
            "header_timeout_s": header_timeout,
            "held_after_1s": held_1s,
            "held_at_timeout": held_timeout,
            "held_5s_after_timeout": held_after,
            "health_probes": len(latencies),
            "health_failed": len(latencies) - len(finite),
            "health_errors": sorted(set(failures)),
            "health_max_latency_ms": round(max(finite) * 1000, 1) if finite else None,
            "refusal_rows": len(rows),
            "refused_connections": sum(r.details.get("count", 1) for r in rows),
        }
        print(json.dumps(out, indent=2))
        return out
    finally:
        env.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    out = run(args.connections, args.header_timeout)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0 if out["held_5s_after_timeout"] == 0 and out["health_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
