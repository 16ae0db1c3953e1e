"""Cold start of ``socle-harness serve`` to the first accepted SMTP connection, vs a bare aiosmtpd process.

One repetition: in a fresh temporary working directory, start
``socle-harness serve --ephemeral --endpoints-file F --config C`` (C points run_dir and the journal into that
directory, so the test PKI and the journal are created from scratch), poll until F appears, connect to the
MSSanté SMTP endpoint and read its 220 greeting. The figure is the wall time from spawning the process to the
greeting; then every endpoint's port (HTTPS, SMTP, IMAP, MLLP) must accept a TCP connection: the second figure
is the wall time to every port answering (issue 18 goal: 0.5 s). Also printed: the CPU seconds the server had used
when its endpoints / port file appeared (Linux; less sensitive to a busy machine than the wall time). The server is then stopped with SIGINT and must
exit 0 within a few seconds.

Baseline, measured the same way and interleaved with it: a bare Python process that imports aiosmtpd, uvicorn
and starlette, starts a plain aiosmtpd server on an ephemeral port and writes the port to a file. The
difference is what socle-harness adds (typer/rich CLI, harness imports, PKI, journal, fixtures, uvicorn
start-up, the endpoints table).

With ``--tree DIR`` (a source tree, e.g. ``git archive main`` unpacked), the serve of that tree is measured too,
interleaved with the two others (same interpreter and packages, ``PYTHONPATH=DIR``): a before/after of the same
minutes.

Run from the repository root:  python benchmarks/bench_cold_start.py [--repeat N] [--tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_TIMEOUT = 30.0  # seconds to wait for the endpoints / port file
STOP_TIMEOUT = 5.0  # seconds for a clean exit after SIGINT

BASELINE_SERVER = r"""
import asyncio, os, signal, sys
import aiosmtpd.smtp, uvicorn, starlette.applications  # the same heavy imports the harness needs

class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

async def main(path):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: aiosmtpd.smtp.SMTP(Sink(), hostname="baseline.test"), "127.0.0.1", 0)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(str(server.sockets[0].getsockname()[1]))
    os.replace(tmp, path)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()

asyncio.run(main(sys.argv[1]))
"""


@dataclass
class Sample:
    to_ready_file: float  # spawn -> endpoints/port file present
    to_greeting: float  # spawn -> 220 greeting read
    to_every_port: float  # spawn -> every endpoint port accepted a TCP connection
    cpu_to_ready_file: float | None  # the server's user + system CPU seconds when its file appeared (Linux /proc)
    stop_seconds: float
    exit_code: int | None


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("socle-harness")
    if script.exists():
        return [str(script)]
    found = shutil.which("socle-harness")
    if found:
        return [found]
    return [sys.executable, "-c", "from harness.front.cli import app; app()"]


def _smtp_address_from_endpoints(path: Path) -> tuple[str, int]:
    endpoints = json.loads(path.read_text(encoding="utf-8"))
    host, _, port = endpoints["mssante"]["smtp"].rpartition(":")
    return host.strip("[]"), int(port)


def _endpoint_addresses(path: Path) -> set[tuple[str, int]]:
    """Every distinct host:port the endpoints file names (``https://h:p/...``, ``h:p``)."""
    found: set[tuple[str, int]] = set()
    for named in json.loads(path.read_text(encoding="utf-8")).values():
        for value in named.values():
            authority = str(value).split("://", 1)[-1].split("/", 1)[0]
            host, _, port = authority.rpartition(":")
            if host and port.isdigit():
                found.add((host.strip("[]"), int(port)))
    return found


def _read_greeting(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=10) as sock:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(512)
            if not chunk:
                break
            data += chunk
        try:
            sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
    if not data.startswith(b"220"):
        raise RuntimeError(f"unexpected greeting from {host}:{port}: {data!r}")
    return data


def _one(kind: str, tree: Path | None = None) -> Sample:
    work = Path(tempfile.mkdtemp(prefix=f"bench-cold-{kind}-"))
    ready = work / "ready.json"
    log = (work / "server.log").open("wb")
    try:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"COLUMNS": "120"}
        if kind in ("harness", "tree"):
            config = work / "socle-harness.bench.toml"
            config.write_text(
                f'journal = "sqlite:///{work / "run" / "journal.sqlite"}"\n'
                f'run_dir = "{work / "run"}"\n'
                f'reports_dir = "{work / "reports"}"\n',
                encoding="utf-8",
            )
            cli = _cli() if kind == "harness" else [sys.executable, "-c", "from harness.front.cli import app; app()"]
            cmd = [*cli, "serve", "--ephemeral", "--endpoints-file", str(ready), "--config", str(config)]
            if kind == "tree":
                env["PYTHONPATH"] = str(tree)
        else:
            cmd = [sys.executable, "-c", BASELINE_SERVER, str(ready)]
        # Bytecode as an installed package has it (pip compiles it; the untimed first start writes it here): with
        # PYTHONDONTWRITEBYTECODE inherited, every start would compile some 90 modules and measure that instead
        # (``env`` above).
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not ready.exists():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{kind} server exited early ({proc.returncode}); log: {_tail(work / 'server.log')}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server not ready after {START_TIMEOUT}s")
                time.sleep(0.002)
            t_ready = time.perf_counter() - start
            cpu_ready = _cpu_seconds(proc.pid)
            if kind != "baseline":
                host, port = _smtp_address_from_endpoints(ready)
            else:
                host, port = "127.0.0.1", int(ready.read_text(encoding="utf-8"))
            _read_greeting(host, port)
            t_greeting = time.perf_counter() - start
            if kind != "baseline":
                for address in _endpoint_addresses(ready):
                    socket.create_connection(address, timeout=10).close()
            t_every = time.perf_counter() - start
        finally:
            stop_start = time.perf_counter()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                code: int | None = proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
            stop_seconds = time.perf_counter() - stop_start
        return Sample(t_ready, t_greeting, t_every, cpu_ready, stop_seconds, code)
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds process ``pid`` has used so far (its threads included), from ``/proc/<pid>/stat``
    (proc(5): fields 14 and 15, in clock ticks); ``None`` where there is no such file. Unlike the wall time, it
    hardly depends on how busy the machine is."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-800:]
    except OSError:
        return "(no log)"


def _import_only() -> float:
    """Informational: the bare cost of importing the CLI module in a fresh interpreter."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import harness.front.cli"], check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def run(repeat: int, tree: Path | None = None) -> dict[str, Any]:
    kinds = ("baseline", "harness", "tree") if tree is not None else ("baseline", "harness")
    samples: dict[str, list[Sample]] = {kind: [] for kind in kinds}
    imports: list[float] = []
    # One untimed start of each to warm the OS page cache and __pycache__.
    for kind in kinds:
        _one(kind, tree)
    for _ in range(repeat):
        for kind in kinds:
            samples[kind].append(_one(kind, tree))
        imports.append(_import_only())

    print(f"Cold start to the first SMTP greeting — {repeat} repetition(s) each, fresh temp cwd every time")
    out: dict[str, Any] = {"benchmark": "cold_start", "repeat": repeat}
    labels = {
        "harness": "socle-harness serve --ephemeral",
        "baseline": "bare python + aiosmtpd/uvicorn/starlette",
        "tree": f"serve from {tree}",
    }
    for kind in kinds:
        greet = [s.to_greeting for s in samples[kind]]
        every = [s.to_every_port for s in samples[kind]]
        ready = [s.to_ready_file for s in samples[kind]]
        stops = [s.stop_seconds for s in samples[kind]]
        codes = [s.exit_code for s in samples[kind]]
        cpus = [s.cpu_to_ready_file for s in samples[kind] if s.cpu_to_ready_file is not None]
        cpu = statistics.median(cpus) if cpus else None
        clean = all(c == 0 for c in codes) and max(stops) <= STOP_TIMEOUT
        print(
            f"  {labels[kind]:<42} greeting median {statistics.median(greet) * 1000:7.0f} ms  "
            f"min {min(greet) * 1000:6.0f} ms  (file ready median {statistics.median(ready) * 1000:.0f} ms; "
            f"SIGINT exit codes {codes}, stop max {max(stops):.2f} s)"
        )
        if kind != "baseline":
            print(f"  {'':<42} every port answering median {statistics.median(every) * 1000:7.0f} ms (goal 500 ms)")
        if cpu is not None:
            print(f"  {'':<42} server CPU (user + sys) when its file appeared, median {cpu * 1000:7.0f} ms")
        out[kind] = {
            "median_s": round(statistics.median(greet), 4),
            "min_s": round(min(greet), 4),
            "ready_file_median_s": round(statistics.median(ready), 4),
            "every_port_median_s": round(statistics.median(every), 4),
            "cpu_to_ready_file_median_s": round(cpu, 4) if cpu is not None else None,
            "exit_codes": codes,
            "stop_max_s": round(max(stops), 3),
            "clean_exit": clean,
        }
    ratio = out["harness"]["median_s"] / out["baseline"]["median_s"]
    extra = out["harness"]["median_s"] - out["baseline"]["median_s"]
    print(f"  harness / baseline = {ratio:.2f}x  (+{extra * 1000:.0f} ms)")
    print(f"  (informational) python -c 'import harness.front.cli': median {statistics.median(imports) * 1000:.0f} ms")
    out["ratio"] = round(ratio, 3)
    if tree is not None:
        after = out["harness"]["every_port_median_s"] / out["tree"]["every_port_median_s"]
        print(f"  every port answering, this tree / {tree.name} = {after:.2f}x")
        out["every_port_vs_tree"] = round(after, 3)
    out["import_cli_median_s"] = round(statistics.median(imports), 4)
    if not out["harness"]["clean_exit"]:
        print(
            f"  WARNING: socle-harness serve did not exit 0 within {STOP_TIMEOUT:.0f} s of SIGINT in every repetition"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of each (default 5, max 20)")
    parser.add_argument(
        "--tree", type=Path, default=None, help="also measure serve from this source tree (before/after, PYTHONPATH)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be within 1..20")
    out = run(args.repeat, args.tree)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0 if out["harness"]["clean_exit"] and out["baseline"]["clean_exit"] else 1


if __name__ == "__main__":
    sys.exit(main())
