"""Stable endpoints a DUI is configured with once: fixed default ports, a public name in every endpoint and in the
server certificate, warnings when binding beyond loopback (issue 16 item 1; harness/front/listening.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from harness.core.config import HarnessConfig
from harness.front.listening import STABLE_PORTS, Listening
from harness.runtime.environment import SocleEnvironment


def test_stable_defaults_explicit_ports_and_ephemeral() -> None:
    config, notices = Listening().apply(HarnessConfig())
    assert notices == []
    assert config.http_port == 8443 and STABLE_PORTS == {"https": 8443, "smtp": 2587, "imap": 2143, "mllp": 2575}
    assert config.ports["mssante"] == {"smtp": 2587, "imap": 2143, "mllp": 2575}
    assert (config.bind_host, config.public_host) == ("127.0.0.1", "")
    config, _ = Listening(https_port=9443, smtp_port=0).apply(HarnessConfig())
    assert config.http_port == 9443 and config.ports["mssante"] == {"smtp": 0, "imap": 2143, "mllp": 2575}
    config, _ = Listening(stable=False).apply(HarnessConfig())
    assert config.http_port == 0 and config.ports["mssante"] == {"smtp": 0, "imap": 0, "mllp": 0}
    kept, _ = Listening(stable=False).apply(HarnessConfig(http_port=7443, ports={"mssante": {"smtp": 1587}}))
    assert kept.http_port == 7443 and kept.ports["mssante"]["smtp"] == 1587  # the configuration file's ports stay


def test_every_interface_is_never_published_and_is_warned() -> None:
    config, notices = Listening(host="0.0.0.0").apply(HarnessConfig())
    assert config.bind_host == "0.0.0.0"
    assert config.public_host == socket.getfqdn() and config.public_host != "0.0.0.0"
    assert len(notices) == 1 and "--public-host" in notices[0]
    config, notices = Listening(host="0.0.0.0", public_host="recette.grappe.test").apply(HarnessConfig())
    assert config.public_host == "recette.grappe.test" and notices == []
    _, notices = Listening(host="192.0.2.10").apply(HarnessConfig())
    assert len(notices) == 1 and "au-delà de cette machine" in notices[0]
    _, notices = Listening(host="::1").apply(HarnessConfig())
    assert notices == []


def test_public_name_in_every_endpoint_and_in_the_server_certificate(tmp_path: Path) -> None:
    config = HarnessConfig(run_dir=tmp_path, journal=f"sqlite:///{tmp_path}/j.sqlite", public_host="localhost")
    env = SocleEnvironment(config)
    endpoints = env.start()
    try:
        published = [v for named in endpoints.values() for v in named.values() if ":" in v]
        assert published and all("127.0.0.1" not in v for v in published)
        assert endpoints["mssante"]["smtp"].startswith("localhost:")
        assert endpoints["dmp"]["base"].startswith("https://localhost:")
        assert "localhost" in env.pki.hostnames
    finally:
        env.stop()
    named = HarnessConfig(run_dir=tmp_path, journal=f"sqlite:///{tmp_path}/j.sqlite", public_host="recette.test")
    again = SocleEnvironment(named)
    assert "recette.test" in again.pki.hostnames  # the server certificate is reissued for the new name
    again.journal.close()


def test_run_hands_the_listening_choices_to_the_scenarios(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.front.cli",
            "run",
            "--tags",
            "exigence:MSS-ENVOI-PRO",
            "--public-host",
            "localhost",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert results["run"]["endpoints"]["mssante"]["smtp"].startswith("localhost:")
