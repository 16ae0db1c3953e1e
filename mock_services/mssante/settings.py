"""``[settings.mssante]`` of the harness configuration, read into typed values (:func:`harness.core.settings.read_settings`
checks every key and value): SMTP submission, IMAP (``imap_*``), the HL7 relay (``hl7_*``) and the keys of the whole
simulator (production-INS policy, mailbox quota, password back-off)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.core.settings import read_settings
from harness.fields.identity import ProductionInsPolicy
from mock_services.mssante.auth_backoff import BackoffPolicy


@dataclass(frozen=True)
class MssanteSettings:
    """The production-INS policy of SMTP submission and of the HL7 relay (harness-wide unless the table overrides
    it), the quota of each mailbox in bytes (absent: none) and the password back-off shared by SMTP and IMAP
    (``auth_backoff = {free_failures = 3, ...}``, :class:`~mock_services.mssante.auth_backoff.BackoffPolicy`)."""

    production_ins: ProductionInsPolicy = ProductionInsPolicy.WARN
    mailbox_quota_bytes: int | None = None
    auth_backoff: BackoffPolicy = field(default_factory=BackoffPolicy)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> MssanteSettings:
        return read_settings(cls, raw)


@dataclass(frozen=True)
class Hl7RelaySettings:
    """The HL7 v2 relay (keys ``hl7_*``): seconds it waits for the DUI's ACK, largest MLLP frame, and whether the
    volet « Transmission de documents CDA en HL7 v2 » v2.0 is accepted beside 2.1 (false: AR 203)."""

    settings_prefix: ClassVar[str] = "hl7_"

    ack_timeout: float = 5.0
    max_frame: int = 32 * 1024 * 1024
    volet_20: bool = True
    # from a block's 0x0B to its 0x1C 0x0D: a client trickling a block is cut off (issue 15 item 5)
    frame_timeout: float = 60.0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Hl7RelaySettings:
        return read_settings(cls, raw)


@dataclass(frozen=True)
class SmtpSettings:
    """SMTP submission: refuse a non-conforming message (``strict``), largest message, the server's name."""

    strict: bool = True
    max_message_bytes: int = 20 * 1024 * 1024
    hostname: str = "smtp.mssante.test"
    # seconds a session may wait for its next command (a DATA block included), setting ``smtp_idle_timeout``:
    # the server timeout of RFC 5321 §4.5.3.2.7 (5 minutes); tests set a fraction of a second
    idle_timeout: float = field(default=300.0, metadata={"key": "smtp_idle_timeout"})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> SmtpSettings:
        return read_settings(cls, raw)


@dataclass(frozen=True)
class ImapSettings:
    """The IMAP server (keys ``imap_*``); the largest literal defaults to the SMTP ``max_message_bytes``."""

    settings_prefix: ClassVar[str] = "imap_"

    hostname: str = "imap.mssante.test"
    max_line_bytes: int = 64 * 1024
    max_literal_bytes: int = 20 * 1024 * 1024
    content_cache: int = 4096  # parsed messages kept per folder
    # autologout: a connection with no command for this many seconds gets ``* BYE`` and is closed (RFC 9051 §5.4 /
    # RFC 3501 §5.4: at least 30 minutes; setting ``imap_idle_timeout``, tests set a fraction of a second)
    idle_timeout: float = 1800.0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ImapSettings:
        if "imap_max_literal_bytes" not in raw and "max_message_bytes" in raw:
            raw = {**raw, "imap_max_literal_bytes": SmtpSettings.from_mapping(raw).max_message_bytes}
        return read_settings(cls, raw)
