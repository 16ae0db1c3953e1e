"""``socle-harness serve --workers N`` (issue 19 item 3): N processes on the same ports, supervised.

The end-to-end test uses the PostgreSQL server on 127.0.0.1:5432 (``pg_url`` in tests/conftest.py) and skips,
saying so, when it is absent."""

from __future__ import annotations

import collections
import errno
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.front.cli import app
from harness.front.workers import describe_end, reserve_port

CLI = [sys.executable, "-m", "harness.front.cli"]


def test_several_workers_need_a_postgresql_journal(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--workers", "2", "--journal", f"sqlite:///{tmp_path}/j.sqlite"], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 2
    assert result.output.startswith(
        f"--workers 2 demande un journal PostgreSQL partagé : le journal sqlite:///{tmp_path}/j.sqlite n'est écrit "
        "que par un seul processus. Créez une base (`createdb recette`) et relancez avec --journal "
        "postgresql://127.0.0.1:5432/recette, ou retirez --workers"
    ), result.output
    assert not (tmp_path / "j.sqlite").exists()  # refused before anything started


def _listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio and the HTTPS listener do
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(8)
    return sock


def test_a_reserved_port_is_shared_by_the_workers_listeners_only() -> None:
    reservation = reserve_port("127.0.0.1", 0)
    port = reservation.getsockname()[1]
    first, second = _listener(port), _listener(port)  # two workers bind the reserved port
    try:
        plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        plain.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with plain, pytest.raises(OSError) as taken:
            plain.bind(("127.0.0.1", port))  # another program cannot take it
        assert taken.value.errno == errno.EADDRINUSE
        with pytest.raises(OSError) as again:  # nor another serve --workers join this group by accident
            reserve_port("127.0.0.1", port)
        assert again.value.errno == errno.EADDRINUSE
    finally:
        for sock in (first, second, reservation):
            sock.close()


def _serve(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "serve", "--workers", "2", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},
    )


def test_a_port_taken_stops_serve_workers_before_any_worker(pg_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _serve(["--ephemeral", "--https-port", str(port), "--journal", pg_url], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"Impossible de réserver les ports / cannot reserve the ports: [Errno {errno.EADDRINUSE}] 127.0.0.1:{port} : "
        "Address already in use. Port déjà utilisé ? Essayez --ephemeral"
    ), result.stderr
    assert "Processus de service" not in result.stdout


@pytest.mark.slow
def test_a_worker_that_cannot_start_stops_serve_workers(pg_url: str, tmp_path: Path) -> None:
    result = _serve(["--ephemeral", "--service", "inexistant", "--journal", pg_url], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "le processus de service n°1 n'a pas démarré : ValueError: simulateur inconnu / unknown simulator: inexistant"
    ), result.stderr
    assert result.stdout == "Arrêt des processus de service / stopping workers…\n"


def test_how_a_worker_ended_is_said_in_french() -> None:
    assert [describe_end(code) for code in (-9, -15, 2, None)] == [
        "le signal SIGKILL",
        "le signal SIGTERM",
        "le code de sortie 2",
        "une cause inconnue",
    ]


def _health(host: str, port: int, context: ssl.SSLContext) -> dict | None:
    """One health request on a new connection (so the kernel chooses a worker); ``None`` when it failed."""
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=5)
    try:
        connection.request("GET", "/_harness/health")
        return json.loads(connection.getresponse().read())
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


@pytest.mark.slow
def test_workers_share_the_ports_and_a_killed_one_is_restarted(pg_url: str, tmp_path: Path) -> None:
    endpoints_file = tmp_path / "endpoints.json"
    proc = subprocess.Popen(
        [*CLI, "serve", "--workers", "2", "--ephemeral", "--service", "tddui", "--journal", pg_url]
        + ["--endpoints-file", str(endpoints_file)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not endpoints_file.exists():
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "serve --workers did not write its endpoints file"
            time.sleep(0.05)
        assert oct(endpoints_file.stat().st_mode & 0o777) == "0o600"
        written = json.loads(endpoints_file.read_text())
        started = {int(n): int(p) for n, p in re.findall(r"Processus de service n°(\d) : pid (\d+)", "".join(lines))}
        assert sorted(started) == [1, 2], "".join(lines)
        host, _, port = written["harness"]["base"].removeprefix("https://").rpartition(":")
        context = ssl.create_default_context(cafile=str(tmp_path / ".socle" / "pki" / "ca-bundle.pem"))

        answered = collections.Counter()
        for _ in range(40):
            health = _health(host, int(port), context)
            assert health is not None
            answered[(health["worker"]["number"], health["worker"]["pid"])] += 1
        assert set(answered) == set(started.items())  # the kernel spread the connections over both workers

        # one admin token for every worker: the file's token opens the admin endpoint whichever process answers
        token = written["harness"]["admin_token"]
        for _ in range(6):
            connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
            connection.request("GET", "/_harness/faults", headers={"Authorization": f"Bearer {token}"})
            assert connection.getresponse().status == 200
            connection.close()

        os.kill(started[2], signal.SIGKILL)
        served_meanwhile = collections.Counter()
        restarted = None
        deadline = time.monotonic() + 30
        while restarted is None:
            assert time.monotonic() < deadline, "worker 2 was not restarted: " + "".join(lines)
            health = _health(host, int(port), context)
            if health is None:
                continue  # a connection queued at the killed worker
            worker = (health["worker"]["number"], health["worker"]["pid"])
            if worker[0] == 2 and worker[1] != started[2]:
                restarted = worker[1]
            else:
                served_meanwhile[worker] += 1
        assert served_meanwhile[(1, started[1])] > 0  # worker 1 kept answering while worker 2 was down
        assert set(served_meanwhile) <= {(1, started[1]), (2, started[2])}
        ready = f"Processus de service n°2 prêt : pid {restarted}"
        deadline = time.monotonic() + 10  # the worker listens a moment before the supervisor reads its message
        while ready not in "".join(lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        log = "".join(lines)
        assert (
            f"Processus de service n°2 (pid {started[2]}) arrêté par le signal SIGKILL : redémarrage maintenant" in log
        )
        assert ready in log
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(5)
    assert proc.returncode == 0, "".join(lines)
    for pid in (started[1], restarted):
        with pytest.raises(ProcessLookupError):  # stopped and reaped with the supervisor
            os.kill(pid, 0)


def _gone(pid: int) -> bool:
    """The process has ended (a zombie nobody reaped yet counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_workers_stop_when_their_supervisor_is_killed(pg_url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "serve", "--workers", "2", "--ephemeral", "--service", "tddui", "--journal", pg_url],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not any(line.startswith("Prêt / ready") for line in lines):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.05)
    workers = [int(p) for p in re.findall(r"Processus de service n°\d : pid (\d+)", "".join(lines))]
    assert len(workers) == 2 and not any(_gone(pid) for pid in workers)
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 15
    while not all(_gone(pid) for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their supervisor"
        time.sleep(0.1)
