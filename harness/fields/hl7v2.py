"""HL7 v2 messages of the ANS volets "Transmission de documents CDA en HL7 v2" (ORU^R01, MDM^T02/T10/T04, ACK,
ZAM^Z01/Z02/Z03 business acknowledgements), parsed and built with hl7apy 1.3, and MLLP framing.

- Parsing: ER7 text (LF or CRLF turned into CR), hl7apy at the TOLERANT level with flat segments. The volets
  use the ``PRT`` segment (HL7 v2.7) in messages declaring v2.5 / v2.6, which hl7apy's 2.5 / 2.6 references
  refuse: the message is parsed against the 2.7 reference and keeps its declared version (``MSH-12``).
  An ED ``OBX-5`` is read component by component (``ED.5`` = base64 data).
- MLLP (HL7 v2 "Minimal Lower Layer Protocol", release 2): ``<VT> message <FS><CR>``.
Plain library code: text in, values out; no I/O except the MLLP stream helpers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message, Segment
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
PARSE_VERSION = "2.7"  # the first reference that knows PRT
MAX_FRAME = 64 * 1024 * 1024


class Hl7Error(ValueError):
    """Unusable HL7 v2 text; ``code`` is an HL7 table 0357 message error condition code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class MllpError(Exception):
    """Broken MLLP framing (bytes outside a block, oversize block, stream ended inside a block)."""


def normalise(raw: bytes | str) -> str:
    """ER7 text with CR segment separators (files and e-mails often carry LF or CRLF)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")


@dataclass(frozen=True)
class Er7Segment:
    """A segment kept as its ER7 text (:func:`scan`): what :func:`fields_of` reads, as from an hl7apy segment."""

    name: str
    text: str

    def to_er7(self) -> str:
        return self.text


@dataclass(frozen=True)
class Er7Segments:
    """The segments of a scanned message, in order (the flat view ``parse`` asks hl7apy for)."""

    children: tuple[Er7Segment, ...]

    @property
    def msh(self) -> Er7Segment:
        return self.children[0]

    def to_er7(self) -> str:
        return "\r".join(s.text for s in self.children)


@dataclass
class Hl7Message:
    """A parsed message: the hl7apy tree (flat segments), or the segments' text (:func:`scan`), and the version it
    declares."""

    message: Message | Er7Segments
    version: str

    @property
    def segments(self) -> list[Segment | Er7Segment]:
        return list(self.message.children)

    def all(self, name: str) -> list[Segment | Er7Segment]:
        return [s for s in self.message.children if s.name == name]

    def first(self, name: str) -> Segment | Er7Segment | None:
        found = self.all(name)
        return found[0] if found else None

    @property
    def message_type(self) -> str:
        """``ORU^R01``, ``MDM^T02``... (MSH-9.1 ^ MSH-9.2)."""
        parts = field_text(self.message.msh, 9).split("^")
        return "^".join(parts[:2])

    @property
    def control_id(self) -> str:
        return field_text(self.message.msh, 10)

    def to_er7(self) -> str:
        """ER7 text with the declared version restored."""
        text = self.message.to_er7()
        head, sep, rest = text.partition("\r")
        fields = head.split("|")
        if len(fields) > 11:
            fields[11] = self.version
        return "|".join(fields) + sep + rest


def _header(raw: bytes | str) -> tuple[str, list[str], str, str]:
    """(text, MSH fields, separator, the segments after MSH) of ER7 text; :class:`Hl7Error` when MSH is unusable."""
    text = normalise(raw)
    if not text.startswith("MSH|") or len(text) < 8:
        raise Hl7Error("100", "le message ne commence pas par un segment MSH")
    head, sep, rest = text.partition("\r")
    fields = head.split("|")
    if len(fields) < 12:
        raise Hl7Error("101", "MSH incomplet (MSH-12 version absente)")
    return text, fields, sep, rest


def parse(raw: bytes | str) -> Hl7Message:
    """Parse ER7 text (see the module docstring); raises :class:`Hl7Error` on unusable input."""
    _, fields, sep, rest = _header(raw)
    version = fields[11].split("^")[0] or "2.5"
    fields[11] = PARSE_VERSION
    try:
        message = parse_message(
            "|".join(fields) + sep + rest, find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT
        )
    except (HL7apyException, ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise Hl7Error("100", f"message HL7 illisible: {type(exc).__name__}: {exc}") from None
    return Hl7Message(message, version)


def scan(raw: bytes | str) -> Hl7Message:
    """ER7 text split into its segments, without hl7apy's tree (which costs 10-30 ms even for a two-segment ACK,
    issue 18): for a reader that only takes fields by number (:func:`field_text`, :func:`fields_of`,
    :meth:`Header.of`), such as the reference DUI reading the platform's ACK and ZAMs. Checks only the MSH
    (:class:`Hl7Error` as :func:`parse`); judging a message stays :func:`parse`'s work."""
    text, fields, _, _ = _header(raw)
    segments = tuple(Er7Segment(line[:3], line) for line in text.split("\r") if line)
    return Hl7Message(Er7Segments(segments), fields[11].split("^")[0] or "2.5")


def field_text(segment: Segment | Er7Segment, number: int) -> str:
    """ER7 text of field ``number`` of a segment ('' when absent)."""
    found = fields_of(segment)
    return found[number] if number < len(found) else ""


def fields_of(segment: Segment | Er7Segment) -> list[str]:
    """Every field of a segment as ER7 text, index = field number (0 = segment name)."""
    return segment.to_er7().split("|") if segment.name != "MSH" else ["MSH", "|", *segment.to_er7().split("|")[1:]]


def component(value: str, index: int, separator: str = "^") -> str:
    parts = value.split(separator)
    return parts[index - 1] if 0 < index <= len(parts) else ""


def ed_data(segment: Segment) -> bytes | None:
    """The decoded data of an OBX with value type ED (``OBX-5``: ``^TEXT^XML^Base64^<data>``)."""
    fields = fields_of(segment)
    if len(fields) < 6 or fields[2] != "ED":
        return None
    value = fields[5]
    encoding, data = component(value, 4), component(value, 5)
    if encoding.lower() != "base64":
        return data.encode("utf-8")
    if len(data) % 4 == 1:  # examples in the wild truncate the data: a dangling character is dropped
        data = data[:-1]
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=False)
    except (binascii.Error, ValueError):
        return None


def timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")


def escape(text: str) -> str:
    """HL7 v2 escape sequences for the default delimiters (§2.7)."""
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )


@dataclass
class Header:
    """The MSH fields an answer needs."""

    sending_app: str = ""
    sending_facility: str = ""
    receiving_app: str = ""
    receiving_facility: str = ""
    control_id: str = ""
    trigger: str = ""
    version: str = "2.5"

    @classmethod
    def of(cls, msg: Hl7Message) -> Header:
        f = fields_of(msg.message.msh)
        get = lambda i: f[i] if len(f) > i else ""  # noqa: E731
        return cls(get(3), get(4), get(5), get(6), get(10), component(get(9), 2), msg.version)


def msh(
    sending_app: str,
    sending_facility: str,
    receiving_app: str,
    receiving_facility: str,
    message_type: str,
    control_id: str,
    version: str,
    *,
    profile: str = "",
) -> str:
    fields = [
        "MSH",
        "^~\\&",
        sending_app,
        sending_facility,
        receiving_app,
        receiving_facility,
        timestamp(),
        "",
        message_type,
        control_id,
        "P",
        version,
        "",
        "",
        "",
        "",
        "FRA",
        "UNICODE UTF-8",
        "",
        "",
        profile,
    ]
    return "|".join(fields).rstrip("|")


def build_ack(
    received: Header,
    code: str,
    *,
    control_id: str,
    error: tuple[str, str, str] | None = None,
    location: str = "",
    application_error: tuple[str, str] | None = None,
) -> str:
    """ACK (original mode): ``MSA-1`` ``AA`` / ``AE`` / ``AR``; ``error`` = (ERR-3 code of HL7 table 0357, text,
    ERR-4 severity); ``location`` = ERR-2 (``PID^1^3``); ``application_error`` = ERR-5 (code, label) of the volet's
    ``applicationErrorCondition`` table (900-905), as the volet's acknowledgement section describes ERR."""
    segments = [
        msh(
            received.receiving_app,
            received.receiving_facility,
            received.sending_app,
            received.sending_facility,
            f"ACK^{received.trigger}^ACK",
            control_id,
            received.version,
        ),
        f"MSA|{code}|{received.control_id}",
    ]
    if error is not None:
        err = f"ERR||{location}|{error[0]}^{escape(error[1])}^HL70357|{error[2]}"
        if application_error is not None:
            err += f"|{application_error[0]}^{escape(application_error[1])}^applicationErrorCondition"
        segments.append(err)
    return "\r".join(segments)


@dataclass
class ZamItem:
    """One acknowledged fact of a ZAM: code (``ACK_RECEPTION_MSS``...), Y/N, the recipient or reader address."""

    code: str
    label: str
    ok: bool
    who_code: str
    who_label: str
    address: str
    who_id: str = ""


def build_zam(
    trigger: str, received: Header, *, control_id: str, items: list[ZamItem], original_control_id: str
) -> str:
    """ZAM^Z02 (MSSanté reception) or ZAM^Z03 (MSSanté read) business acknowledgement (volet ANS, ``ack-metier-zam``)."""
    segments = [
        msh(
            received.receiving_app,
            received.receiving_facility,
            received.sending_app,
            received.sending_facility,
            f"ZAM^{trigger}^ZAM_Z01",
            control_id,
            "2.6",
            profile="2.1^CISIS_CDA_HL7_V2",
        ),
        f"EVN||{timestamp()}",
    ]
    index = 0
    for item in items:
        index += 1
        segments.append(
            f"OBX|{index}|CWE|{item.code}^{escape(item.label)}^AckMetierZAM|{original_control_id}|"
            f"{'Y' if item.ok else 'N'}^^expandedYes-NoIndicator||||||F"
        )
        index += 1
        segments.append(
            f"OBX|{index}|XTN|{item.who_code}^{escape(item.who_label)}^AckMetierZAM|{item.who_id}|^^X.400^{item.address}||||||F"
        )
    return "\r".join(segments)


# -- MLLP --------------------------------------------------------------------------------------------------------
def frame(text: str) -> bytes:
    return VT + text.encode("utf-8") + FS + CR


@dataclass
class MllpReader:
    """Reads MLLP blocks from a stream; bytes found outside a block are counted in ``discarded``.

    ``frame_timeout`` bounds the time between a block's start byte (``0x0B``) and its end (``0x1C 0x0D``): a client
    that opens a block and trickles bytes gets :class:`MllpError` once it is over, whatever its pace (a per-read
    silence timeout alone would let it hold the connection for ever)."""

    reader: asyncio.StreamReader
    max_frame: int = MAX_FRAME
    discarded: int = 0
    frame_timeout: float | None = None
    _pending: bytearray = field(default_factory=bytearray)
    _deadline: float | None = None

    async def read(self) -> bytes | None:
        """The next block's content, or ``None`` at a clean end of stream; :class:`MllpError` on broken framing."""
        loop = asyncio.get_running_loop()
        while True:
            start = self._pending.find(VT)
            if start < 0:
                self.discarded += len(self._pending)
                self._pending.clear()
            elif start > 0:
                self.discarded += start
                del self._pending[:start]
            if self._pending:
                end = self._pending.find(FS + CR)
                if end >= 0:
                    block = bytes(self._pending[1:end])
                    del self._pending[: end + 2]
                    self._deadline = None
                    return block
                if len(self._pending) > self.max_frame:
                    self._pending.clear()
                    raise MllpError(f"bloc MLLP de plus de {self.max_frame} octets")
                if self._deadline is None and self.frame_timeout is not None:
                    self._deadline = loop.time() + self.frame_timeout
            chunk = await self._read_chunk(loop)
            if not chunk:
                if self._pending:
                    self._pending.clear()
                    raise MllpError("flux terminé au milieu d'un bloc MLLP (FS CR manquant)")
                return None
            self._pending += chunk

    async def _read_chunk(self, loop: asyncio.AbstractEventLoop) -> bytes:
        if self._deadline is None:
            return await self.reader.read(65536)
        try:
            return await asyncio.wait_for(self.reader.read(65536), max(self._deadline - loop.time(), 0.0))
        except TimeoutError:
            self._pending.clear()
            self._deadline = None
            raise MllpError(f"bloc MLLP inachevé après {self.frame_timeout:g} s (délai d'un bloc dépassé)") from None


def split_frames(data: bytes) -> list[bytes]:
    """Complete MLLP blocks of a buffer (tests and synchronous clients)."""
    found = []
    for match in re.finditer(re.escape(VT) + b"(.*?)" + re.escape(FS + CR), data, re.DOTALL):
        found.append(match.group(1))
    return found
