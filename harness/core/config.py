"""Harness configuration: defaults, an optional TOML file, then command-line overrides.

The file (``socle-harness.toml`` in the working directory, or ``--config PATH``) looks like::

    journal = "sqlite:///.socle/journal.sqlite"
    run_dir = ".socle"
    reports_dir = "reports"
    sut = "reference"
    bind_host = "127.0.0.1"
    public_host = "recette.example.org"  # the name the DUI uses (endpoints, server certificate)
    http_port = 0            # 0 = ephemeral
    tls = true

    [ports.mssante]
    smtp = 0

    services = ["mssante"]   # simulators to start (default: every registered one)

    [settings.mssante]       # settings handed to the simulator: each key is a field of one of the service's
    max_message_bytes = 20971520  # settings types (harness.core.settings; checked by harness.sut.plugins.check_settings)
    strict = true

    mssante_counting = "messages"  # MSSanté rate numerator: messages sent (instruction) or "personnes"
    observe_retry = "avertissement"  # observe-only mode: a refusal then an accepted retry passes with a warning
                                     # ("echec": it fails); see harness.runtime.observe.RETRY_RULES
    production_ins = "warn"  # an INS under a production OID (.4.8, .4.9): "warn" (finding) or "refuse", every service
    state_snapshot_every = 1000  # PostgreSQL shared state: operations of a stream between two snapshots
                                 # (harness.core.state; `serve --state-snapshot-every`)

    [indicator_targets]      # usage-indicator targets in % (harness.analytics.indicators); "none" = no target
    dossiers_actifs = 80
"""

from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.core.messages import bilingual
from harness.core.settings import nearest, plainly_valid
from harness.core.state import SNAPSHOT_EVERY

DEFAULT_CONFIG_FILE = "socle-harness.toml"


def package_root() -> Path:
    """Folder holding ``scenarios/`` and ``fixtures/`` (the repository, or the installed copy)."""
    here = Path(__file__).resolve().parents[1]  # the harness package (this file is harness/core/config.py)
    repo = here.parent
    if (repo / "scenarios").is_dir() and (repo / "fixtures").is_dir():
        return repo
    return here / "_catalogue"


@dataclass(frozen=True)
class HarnessConfig:
    journal: str = "sqlite:///.socle/journal.sqlite"
    run_dir: Path = Path(".socle")
    reports_dir: Path = Path("reports")
    sut: str = "reference"
    bind_host: str = "127.0.0.1"
    # the name the DUI must use to reach the simulators (published in every endpoint and in the server
    # certificate); empty = the bind address. Never 0.0.0.0: binding every interface needs a real name.
    public_host: str = ""
    http_port: int = 0
    tls: bool = True
    services: tuple[str, ...] = ()  # empty = every registered simulator
    ports: dict[str, dict[str, int]] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    scenarios_dir: Path = field(default_factory=lambda: package_root() / "scenarios")
    fixtures_dir: Path = field(default_factory=lambda: package_root() / "fixtures")
    step_timeout: float = 10.0  # how long a step waits for an exchange a human or an external DUI triggers
    indicator_targets: dict[str, Any] = field(default_factory=dict)  # [indicator_targets] dossiers_actifs = 80
    mssante_counting: str = "messages"  # MSSanté rate: "messages" (national instruction) or "personnes"
    sut_timeout: float = 30.0  # HTTP driver: per-call timeout of the DUI control API
    sut_retries: int = 2  # HTTP driver: retries when a call could not be delivered
    observe_retry: str = "avertissement"  # observe-only mode: "avertissement" or "echec" (runtime.observe.RETRY_RULES)
    # One production-INS policy for every simulator (harness.fields.identity.production_ins): "warn" or "refuse";
    # handed to each simulator as its setting "production_ins" unless [settings.<service>] overrides it.
    production_ins: str = "warn"
    # Shared simulator state (PostgreSQL journal, harness.core.state): a stream is snapshotted, and its log compacted,
    # every this many operations (SNAPSHOT_EVERY); fewer: quicker starts, more snapshot writes. At least 1.
    state_snapshot_every: int = SNAPSHOT_EVERY

    def __post_init__(self) -> None:
        for name in _PATH_FIELDS:  # accept str paths from callers and TOML alike
            object.__setattr__(self, name, Path(getattr(self, name)))

    @property
    def pki_dir(self) -> Path:
        return self.run_dir / "pki"

    def with_overrides(self, **overrides: Any) -> HarnessConfig:
        """Return a copy with the non-None overrides applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_PATH_FIELDS = {"run_dir", "reports_dir", "scenarios_dir", "fixtures_dir"}


def load_config(path: Path | None = None) -> HarnessConfig:
    """Load ``path`` (or ``./socle-harness.toml`` when it exists) over the defaults."""
    if path is None:
        candidate = Path(DEFAULT_CONFIG_FILE)
        if not candidate.is_file():
            return HarnessConfig()
        path = candidate
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(
            bilingual("fichier de configuration introuvable", "config file not found") + f": {path}"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(bilingual("configuration TOML invalide", f"invalid TOML in {path}") + f": {exc}") from exc
    known = {f.name for f in fields(HarnessConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(
            f"clés inconnues dans {path} / unknown keys: " + ", ".join(f"{key}{nearest(key, known)}" for key in unknown)
        )
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _PATH_FIELDS:
            value = (path.parent / value) if not Path(value).is_absolute() else Path(value)
        elif key == "services":
            if isinstance(value, dict):  # [services.psc]: a table where a list of names is expected
                raise ValueError(
                    f'{path} : « services » est une liste de noms (services = ["psc"]) ; les réglages d\'un '
                    f"service vont dans [settings.{next(iter(value), '<service>')}] / services is a list of names; "
                    "a service's settings go under [settings.<service>]"
                )
            value = tuple(value)
        values[key] = value
    config = replace(HarnessConfig(), **values)
    check_types(config, path)
    if config.state_snapshot_every < 1:
        raise ValueError(
            f"{path} : state_snapshot_every doit valoir au moins 1 (reçu {config.state_snapshot_every}) / "
            "state_snapshot_every must be at least 1"
        )
    return config


def check_types(config: HarnessConfig, path: Path | str = "configuration") -> None:
    """Every field of the configuration has its declared type (pydantic validates the dataclass): a port written
    ``"abc"`` or a table where a value is expected is refused here, with the key, not later in every scenario.
    A configuration whose values plainly have their types (:func:`harness.core.settings.plainly_valid`, what a usual file holds) is not
    handed to pydantic, whose import and validator cost some 0.03 s of ``serve``'s start (issue 18, cold start)."""
    hints = typing.get_type_hints(HarnessConfig)
    if all(plainly_valid(getattr(config, f.name), hints[f.name]) for f in fields(config)):
        return
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(HarnessConfig).validate_python({f.name: getattr(config, f.name) for f in fields(config)})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])} : {error['msg']} (reçu {error.get('input')!r})"
            for error in exc.errors()[:5]
        )
        raise ValueError(f"valeurs invalides dans {path} / invalid values: {problems}") from None
