"""``[settings.dmp]`` of the harness configuration, read once into a typed value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.fields.identity import ProductionInsPolicy, production_ins_policy
from harness.fields.soap12 import SoapLimits


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
    vihf: str = "strict"
    mtom: str = "strict"
    production_ins: ProductionInsPolicy = ProductionInsPolicy.WARN
    require_client_certificate: bool = True
    max_request_bytes: int = SoapLimits.max_request_bytes
    persons: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> DmpSettings:
        return cls(
            cda_xsd_dir=raw.get("cda_xsd_dir") or None,
            schematron_dir=raw.get("schematron_dir") or None,
            jdv_dir=raw.get("jdv_dir") or None,
            vihf=str(raw.get("vihf", "strict")),
            mtom=str(raw.get("mtom", "strict")),
            production_ins=production_ins_policy(raw),
            require_client_certificate=bool(raw.get("require_client_certificate", True)),
            max_request_bytes=int(raw.get("max_request_bytes", SoapLimits.max_request_bytes)),
            persons=dict(raw.get("persons") or {}),
        )

    @property
    def value_sets_dir(self) -> Path | None:
        """The value sets folder: ``jdv_dir``, else ``jeuxDeValeurs`` beside the schematrons folder."""
        if self.jdv_dir:
            return Path(self.jdv_dir)
        return Path(self.schematron_dir).parent / "jeuxDeValeurs" if self.schematron_dir else None
