"""``[settings.dmp]`` of the harness configuration, read once into a typed value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.core.settings import read_settings
from harness.fields.identity import ProductionInsPolicy
from harness.fields.soap12 import SoapLimits
from harness.validators.vihf import Strictness


@dataclass(frozen=True)
class DmpSettings:
    """The DMP simulator's settings: CDA XSD folder (``CDA_extended.xsd``), CI-SIS ``schematrons/`` folder, ANS
    value sets folder (``JDV_*.xml``; default ``../jeuxDeValeurs`` beside the schematrons), VIHF and MTOM
    strictness (``strict`` / ``lenient`` / ``off``), the production-INS policy (``production_ins``: ``warn`` /
    ``refuse``), mutual TLS required, request size bound, and per-INS DMP states
    (``{INS: {"state": "closed", "authorisation": "INTERDITE"}}``)."""

    cda_xsd_dir: str | None = None
    schematron_dir: str | None = None
    jdv_dir: str | None = None
    vihf: Strictness = Strictness.STRICT
    mtom: Strictness = Strictness.STRICT
    production_ins: ProductionInsPolicy = ProductionInsPolicy.WARN
    require_client_certificate: bool = True
    max_request_bytes: int = SoapLimits.max_request_bytes
    persons: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> DmpSettings:
        """Typed read of the table (:func:`harness.core.settings.read_settings`); an empty folder means none."""
        settings = read_settings(cls, raw)
        return replace(
            settings,
            cda_xsd_dir=settings.cda_xsd_dir or None,
            schematron_dir=settings.schematron_dir or None,
            jdv_dir=settings.jdv_dir or None,
        )

    @property
    def value_sets_dir(self) -> Path | None:
        """The value sets folder: ``jdv_dir``, else ``jeuxDeValeurs`` beside the schematrons folder."""
        if self.jdv_dir:
            return Path(self.jdv_dir)
        return Path(self.schematron_dir).parent / "jeuxDeValeurs" if self.schematron_dir else None
