"""Where the simulators listen and what name the DUI is given: one set of options for ``serve`` and ``run``.

A DUI under test is configured once (its MSSanté server, its DMP URL, its INSi endpoint...), so a recette needs
endpoints that do not change from one run to the next: stable default ports (HTTPS 8443, SMTP 2587, IMAP 2143,
MLLP 2575) and a public name (``--public-host``) that every published endpoint and the server certificate carry.
Binding beyond loopback is warned about; ``0.0.0.0`` is never published (the host's name is, and that is said).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from harness.core.config import HarnessConfig
from harness.core.messages import bilingual

STABLE_PORTS = {"https": 8443, "smtp": 2587, "imap": 2143, "mllp": 2575}
_ANY_ADDRESS = {"0.0.0.0", "::", ""}
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class Listening:
    """What the command line says about listening; ``None`` leaves the configuration's value."""

    host: str | None = None
    public_host: str | None = None
    https_port: int | None = None
    smtp_port: int | None = None
    imap_port: int | None = None
    mllp_port: int | None = None
    stable: bool = True  # unset ports take the stable defaults (False: ephemeral, as automated runs want)

    def apply(self, config: HarnessConfig) -> tuple[HarnessConfig, list[str]]:
        """The configuration with these choices applied, and the warnings to show the operator."""
        warnings: list[str] = []

        def port(name: str, given: int | None, current: int | None) -> int:
            if given is not None:
                return given
            if current:  # a port set in the configuration file stays
                return current
            return STABLE_PORTS[name] if self.stable else 0

        mssante = dict(config.ports.get("mssante", {}))
        for name, given in (("smtp", self.smtp_port), ("imap", self.imap_port), ("mllp", self.mllp_port)):
            mssante[name] = port(name, given, mssante.get(name))
        bind = self.host if self.host is not None else config.bind_host
        public = self.public_host if self.public_host is not None else config.public_host
        if bind.strip("[]") in _ANY_ADDRESS and not public:
            public = socket.getfqdn()
            warnings.append(
                f"--host {bind} écoute sur toutes les interfaces : les points d'accès publiés portent le nom "
                f"« {public} » (précisez --public-host) / listening on every interface: endpoints published as "
                f"{public!r}, set --public-host"
            )
        elif bind.strip("[]") not in _LOOPBACK and bind.strip("[]") not in _ANY_ADDRESS:
            warnings.append(
                f"--host {bind} : "
                + bilingual("les simulateurs sont joignables au-delà de cette machine", "reachable beyond this machine")
            )
        overrides: dict[str, Any] = {
            "bind_host": bind,
            "public_host": public,
            "http_port": port("https", self.https_port, config.http_port),
            "ports": {**config.ports, "mssante": mssante},
        }
        return config.with_overrides(**overrides), warnings
