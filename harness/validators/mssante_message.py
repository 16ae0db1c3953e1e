"""Validation of an MSSanté e-mail that carries health documents.

Rules followed (see ``docs/specs/mssante.md`` for sources):
- RFC 5322 / RFC 2045-2049 message structure (parsed with the standard library's ``email`` package);
- Référentiel socle MSSanté #2 v1.0.1 §3.1 and §3.8 (ECO.2.1.1, ECO.2.1.3, ECO.2.4.1-3), as quoted by public
  secondary sources: one person per message, an ``IHE_XDM.ZIP`` attachment with the CDA documents and their PDF,
  ``X-MSS-CODECDA`` = the CDA ``code/@code`` values, ``X-MSS-INS`` = ``O``/``N``, ``X-MSS-NIL`` on every
  message, Subject ``XDM/1.0/DDM+...``;
- ANS volet "Transmission d'un document CDA-R2 en HL7v2", mapping MSSanté: ``X-MSS-MES: FIN`` only towards a
  person's Mon espace santé mailbox;
- IHE XDM (ITI-32) for the archive (:mod:`harness.validators.xdm`); the archive part is ``application/zip`` (ZIP
  over e-mail: DICOM PS3.11 annex L / PS3.12 annex W that ITI-32 references; the ANS volet « Traitement d'un
  courriel MSSanté par une PFI » shows ``Content-Type: application/zip; name="IHE_XDM.zip"``);
- RFC 5322 §2.2 header fields are US-ASCII: raw 8-bit bytes need the SMTPUTF8 extension (RFC 6531 §3.2,
  RFC 6532 §3), which the submission server does not offer — an ERROR, RFC 2047 encoded-words are expected;
- Message-ID (RFC 5322 §3.6.4, a SHOULD): when absent the submission server adds it (RFC 6409 §8.3), so the
  validator reports a WARNING and :attr:`MessageReport.message_id_missing`;
- bounded parsing: the ``email`` package's cost grows with the nesting of multiparts (20,000 nested levels in 1.4 MB
  took 38 s) and with the number of header fields (100,000 fields, 2 s), neither bounded by RFC 2046 / 5322; a
  message declaring more than :data:`MAX_MULTIPARTS` multiparts or more than :data:`MAX_HEADER_FIELDS` header-shaped
  lines is refused before it is parsed (``MIME-TOO-COMPLEX``), counted by one regular-expression pass.

Findings of severity ERROR are what the harness refuses in strict mode; WARNINGs are recorded only (the rules
known only second-hand are warnings).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from dataclasses import dataclass, field
from email import policy
from email.errors import HeaderParseError, MessageDefect
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser

from harness.fields.identity import INS
from harness.validators import Finding, Severity
from harness.validators.cda import CdaHeader, read_cda_header
from harness.validators.xdm import XdmLimits, XdmReport, validate_xdm

MAX_MULTIPARTS = 64  # an MSSanté message has a handful (mixed, alternative, related)
MAX_HEADER_FIELDS = 10_000  # header fields of the message and of all its parts (a message has about fifty)
_MULTIPART_DECLARED = re.compile(rb"(?:^|\n)content-type:\s*multipart/", re.IGNORECASE)
_HEADER_SHAPED_LINE = re.compile(rb"(?:^|\n)[!-9;-~]{1,76}:")
PATIENT_DOMAIN = "patient.mssante.fr"
XDM_NAME = "IHE_XDM.ZIP"
SUBJECT_PREFIX = "XDM/1.0/DDM+"
ZIP_TYPE = "application/zip"
# labels some mail clients give a ZIP: still a binary archive, but not the registered type
_ZIP_ALIASES = frozenset({"application/x-zip-compressed", "application/x-zip", "application/octet-stream"})

# Defects that make the MIME structure unusable (the other defects are reported as warnings). Characters outside
# the base64 alphabet are not among them: RFC 2045 §6.8 has decoders ignore them; a body whose length or padding
# does not complete the last 4-character quantum cannot be decoded as written.
# what a defect means when the email package gives it no text of its own
_DEFECT_TEXT = {
    "NoBoundaryInMultipartDefect": "type multipart sans paramètre boundary (RFC 2046 §5.1.1)",
    "StartBoundaryNotFoundDefect": "aucun délimiteur de partie dans le corps (RFC 2046 §5.1.1)",
    "CloseBoundaryNotFoundDefect": "délimiteur de fin absent (RFC 2046 §5.1.1)",
    "MultipartInvariantViolationDefect": "type multipart sans parties lisibles (RFC 2046 §5.1)",
}
_FATAL_DEFECTS = {
    "StartBoundaryNotFoundDefect",
    "CloseBoundaryNotFoundDefect",
    "MultipartInvariantViolationDefect",
    "NoBoundaryInMultipartDefect",
    "InvalidBase64PaddingDefect",
    "InvalidBase64LengthDefect",
}


@dataclass
class MessageReport:
    findings: list[Finding] = field(default_factory=list)
    message_id: str | None = None
    subject: str | None = None
    attachments: list[str] = field(default_factory=list)
    xdm: XdmReport | None = None
    cda: list[CdaHeader] = field(default_factory=list)
    person: INS | None = None  # the one person the message concerns, when known
    message_id_missing: bool = False  # no Message-ID field: the submission server adds one (RFC 6409 §8.3)

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]


def complexity_problem(data: bytes) -> str | None:
    """Why ``data`` is too complex to be parsed within bounds (French), else ``None`` (see the module). The scans
    stop at the first match past the bound, so their cost is bounded too."""
    # a nested multipart is only parsed after a delimiter line ("--boundary", RFC 2046 §5.1.1): with few such lines
    # there cannot be many, and the case-insensitive scan (the slow one) is skipped (C-speed counts first)
    if data.count(b"\n--") > MAX_MULTIPARTS and _count_beyond(_MULTIPART_DECLARED, data, MAX_MULTIPARTS):
        return f"message MIME de plus de {MAX_MULTIPARTS} parties multipart : non analysé"
    if data.count(b":") > MAX_HEADER_FIELDS and _count_beyond(_HEADER_SHAPED_LINE, data, MAX_HEADER_FIELDS):
        return f"message MIME de plus de {MAX_HEADER_FIELDS} champs d'en-tête : non analysé"
    return None


def _count_beyond(pattern: re.Pattern[bytes], data: bytes, bound: int) -> bool:
    return sum(1 for _ in itertools.islice(pattern.finditer(data), bound + 1)) > bound


class TooComplexError(ValueError):
    """A message beyond the parsing bounds (:func:`complexity_problem`)."""


def parse_bounded(data: bytes) -> Message:
    """:func:`parse_message` after the complexity bounds; :class:`TooComplexError` beyond them."""
    problem = complexity_problem(data)
    if problem is not None:
        raise TooComplexError(problem)
    return parse_message(data)


def parse_message(data: bytes) -> Message:
    """Parse with the ``compat32`` policy: headers stay raw strings (decoded on demand by :func:`header_value`),
    which is several times faster than ``policy.default``'s header objects for the same checks."""
    return BytesParser(policy=policy.compat32).parsebytes(data)


def raw_header(msg: Message, name: str) -> bytes | None:
    """A header's value as the bytes received (first occurrence), before any decoding; None when absent."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            # compat32 keeps the bytes it cannot decode as ASCII as surrogate escapes (email.parser.BytesParser)
            return str(value).encode("utf-8", "surrogateescape")
    return None


def header_value(msg: Message, name: str) -> str | None:
    """A header's value, RFC 2047-decoded and unfolded (RFC 5322 §2.2.3); None when absent.

    Raw 8-bit bytes are read as UTF-8, as RFC 6532 §3.2 defines them (invalid sequences become U+FFFD): the
    ``compat32`` policy would otherwise turn every such byte into U+FFFD, so that a Subject written in raw UTF-8
    ("[KO Intégration système !][904]") lost its accents and matched nothing. Whether raw 8-bit is acceptable is
    the caller's verdict (:func:`raw_8bit_headers`).
    """
    raw = raw_header(msg, name)
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    if "=?" in text and raw.isascii():  # RFC 2047 encoded words (only meaningful in a 7-bit header)
        try:
            text = str(make_header(decode_header(text)))
        except (HeaderParseError, UnicodeError, LookupError, ValueError):
            pass
    return " ".join(text.split())


_SURROGATE_ESCAPE = re.compile("[\udc80-\udcff]")  # a raw 8-bit byte kept by the compat32 parser


def raw_8bit_headers(parts: list[Message]) -> list[Finding]:
    """One ERROR per header field (of any MIME part) carrying raw 8-bit bytes: the ``compat32`` parser keeps them
    as surrogate escapes (U+DC80-U+DCFF)."""
    found: list[Finding] = []
    seen: set[str] = set()
    for part in parts:
        for name, value in part.raw_items():  # unprocessed: compat32 would wrap 8-bit values in Header
            text = f"{name}{value}"
            # an ASCII field has no surrogate escape: the per-character scan only runs on the others (issue 18:
            # the scan of every header of every part was a sixth of the validation of a 6 KB message)
            if not text.isascii() and _SURROGATE_ESCAPE.search(text):
                shown = str(name).encode("ascii", "surrogateescape").decode("ascii", "backslashreplace")
                if shown in seen:
                    continue
                seen.add(shown)
                found.append(
                    Finding(
                        "MIME-8BIT-HEADER",
                        f"octets 8 bits bruts dans l'en-tête {shown} sans SMTPUTF8 (RFC 5322 §2.2, RFC 6532 §3): "
                        "encodage RFC 2047 attendu",
                    )
                )
    return found


def _defect_text(name: str) -> str:
    if "Base64" in name:
        return "base64 invalide (RFC 2045 §6.8)"
    return _DEFECT_TEXT.get(name, "défaut de structure MIME")


def _defects(parts: list[Message]) -> tuple[list[MessageDefect], dict[int, bytes]]:
    """Every part's defects, base64 ones included: the email package registers those (invalid characters, padding,
    length: RFC 2045 §6.8) only when a part is decoded, so each base64 leaf part is decoded here once; with the
    decoded bytes of those parts, by position in ``parts`` (the IHE_XDM.ZIP is read from them, not decoded again)."""
    found: list[MessageDefect] = []
    decoded: dict[int, bytes] = {}
    for index, part in enumerate(parts):
        if not part.is_multipart() and str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
            with contextlib.suppress(Exception):  # a part that cannot be decoded at all is reported where it is read
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    decoded[index] = payload
        found.extend(part.defects)
    return found, decoded


def validate_message(
    data: bytes, *, recipients: list[str] | None = None, limits: XdmLimits = XdmLimits(), smtputf8: bool = False
) -> MessageReport:
    """Validate one MSSanté message (the DATA of an SMTP transaction) sent to ``recipients``; ``smtputf8`` tells
    whether the transaction used the SMTPUTF8 extension (RFC 6531), which allows UTF-8 header fields."""
    report = MessageReport()
    f = report.findings
    try:
        msg = parse_bounded(data)
        parts = list(msg.walk())
    except Exception as exc:  # the email package is lenient; anything it raises means unusable input
        code = "MIME-TOO-COMPLEX" if isinstance(exc, TooComplexError) else "MIME-UNPARSABLE"
        f.append(Finding(code, str(exc) if code == "MIME-TOO-COMPLEX" else f"message MIME illisible: {exc}"))
        return report
    defects, decoded = _defects(parts)
    for defect in defects:
        name = type(defect).__name__
        fatal = name in _FATAL_DEFECTS
        f.append(
            Finding(
                "MIME-DEFECT" if fatal else "MIME-WARNING",
                f"{name}: {str(defect) or _defect_text(name)}",
                Severity.ERROR if fatal else Severity.WARNING,
            )
        )
    # header_value never raises: raw 8-bit bytes are read as UTF-8 (RFC 6532 §3.2), a folded value is unfolded
    # (RFC 5322 §2.2.3); an undecodable header is therefore no longer a finding of its own.
    report.message_id = header_value(msg, "Message-ID")
    report.subject = header_value(msg, "Subject")
    header_values = {name: msg.get_all(name) or [] for name in ("From", "Date", "Message-ID")}
    for name, values in header_values.items():
        if name == "Message-ID" and not values:
            report.message_id_missing = True
            f.append(
                Finding(
                    "RFC5322-MESSAGE-ID",
                    "en-tête Message-ID absent (RFC 5322 §3.6.4, recommandé): ajouté par le serveur de soumission "
                    "(RFC 6409 §8.3)",
                    Severity.WARNING,
                )
            )
        elif len(values) != 1:
            f.append(Finding("RFC5322-HEADER", f"en-tête {name} absent ou multiple (RFC 5322 §3.6)"))
    if not smtputf8:
        f.extend(raw_8bit_headers(parts))

    xdm_parts: list[tuple[int, Message]] = []  # (position in parts, part)
    pdf_count = 0
    for index, part in enumerate(parts):
        if part.is_multipart():
            continue
        filename = part.get_filename()
        if filename:
            report.attachments.append(filename)
        if filename and filename.upper() == XDM_NAME:
            xdm_parts.append((index, part))
        elif part.get_content_type() == "application/pdf":
            pdf_count += 1

    if len(xdm_parts) > 1:
        f.append(Finding("MSS-XDM-MULTIPLE", "plusieurs pièces jointes IHE_XDM.ZIP (une seule attendue)"))
    if xdm_parts:
        content_type = xdm_parts[0][1].get_content_type()
        if content_type != ZIP_TYPE:
            f.append(
                Finding(
                    "MSS-XDM-CONTENT-TYPE",
                    f"pièce jointe IHE_XDM.ZIP de type {content_type}: {ZIP_TYPE} attendu (IHE XDM ITI-32, ZIP par "
                    "courriel; volet ANS « Traitement d'un courriel MSSanté par une PFI »)",
                    Severity.WARNING if content_type in _ZIP_ALIASES else Severity.ERROR,
                )
            )
    cda_codes: list[str] = []
    if xdm_parts:
        index, part = xdm_parts[0]
        try:
            payload = decoded[index] if index in decoded else part.get_payload(decode=True)
        except Exception as exc:
            payload = None
            f.append(Finding("MIME-DEFECT", f"pièce jointe IHE_XDM.ZIP non décodable: {exc}"))
        if payload is not None:
            report.xdm = validate_xdm(payload, limits)
            f.extend(report.xdm.findings)
            for doc in report.xdm.documents:
                if doc.mime_type == "text/xml":
                    header = read_cda_header(doc.data, location=doc.path)
                    report.cda.append(header)
                    f.extend(header.findings)
                    if header.code:
                        cda_codes.append(header.code)
                    if header.ins and doc.patient and header.ins.value != doc.patient.value:
                        f.append(
                            Finding(
                                "MSS-INS-METADATA-CDA",
                                f"patientId de METADATA.XML ({doc.patient.value}) différent de l'INS du CDA ({header.ins.value})",
                                location=doc.path,
                            )
                        )
        if pdf_count == 0:
            f.append(
                Finding(
                    "MSS-PDF-MISSING",
                    "les documents doivent aussi être joints en PDF (Réf. socle MSSanté #2 ECO.2.1.1)",
                    Severity.WARNING,
                )
            )
        if not (report.subject or "").startswith(SUBJECT_PREFIX):
            f.append(
                Finding(
                    "MSS-SUBJECT",
                    f"l'objet devrait commencer par {SUBJECT_PREFIX} (Réf. socle MSSanté #2 ECO.2.1.3)",
                    Severity.WARNING,
                )
            )

    _check_headers(msg, report, cda_codes)
    _check_person(report, recipients or [])
    if header_value(msg, "X-MSS-NIL") is None:
        f.append(
            Finding("MSS-NIL-MISSING", "en-tête X-MSS-NIL absent (Réf. socle MSSanté #2 ECO.2.4.3)", Severity.WARNING)
        )
    return report


def _check_headers(msg: Message, report: MessageReport, cda_codes: list[str]) -> None:
    f = report.findings
    codecda = header_value(msg, "X-MSS-CODECDA")
    ins_flag = header_value(msg, "X-MSS-INS")
    if report.xdm is None:
        if codecda is not None or ins_flag is not None:
            f.append(
                Finding(
                    "MSS-HEADER-UNEXPECTED", "X-MSS-CODECDA / X-MSS-INS présents sans document CDA en XDM (ECO.2.4.1)"
                )
            )
    elif cda_codes:
        if codecda is None:
            f.append(
                Finding(
                    "MSS-CODECDA-MISSING", "en-tête X-MSS-CODECDA absent alors que le message porte un CDA (ECO.2.4.1)"
                )
            )
        else:
            declared = sorted(v.strip() for v in str(codecda).split(",") if v.strip())
            if declared != sorted(cda_codes):
                f.append(
                    Finding(
                        "MSS-CODECDA-MISMATCH",
                        f"X-MSS-CODECDA={codecda!s} mais le(s) CDA ont le(s) code(s) {', '.join(cda_codes)} (ECO.2.4.1)",
                    )
                )
        if ins_flag is None:
            f.append(
                Finding("MSS-INS-MISSING", "en-tête X-MSS-INS absent alors que le message porte un CDA (ECO.2.4.2)")
            )
        elif str(ins_flag).strip() not in {"O", "N"}:
            f.append(Finding("MSS-INS-VALUE", f"X-MSS-INS doit valoir O ou N, trouvé {ins_flag!s} (ECO.2.4.2)"))
        elif str(ins_flag).strip() == "O" and not any(h.ins for h in report.cda):
            f.append(Finding("MSS-INS-FLAG", "X-MSS-INS=O mais aucun INS valide dans les documents CDA (ECO.2.4.2)"))
    mes = header_value(msg, "X-MSS-MES")
    if mes is not None and str(mes).strip() != "FIN":
        f.append(Finding("MSS-MES-VALUE", f"X-MSS-MES doit valoir FIN, trouvé {mes!s}"))


def _check_person(report: MessageReport, recipients: list[str]) -> None:
    """One person per message: every INS in the documents, metadata and patient mailboxes must agree."""
    f = report.findings
    seen = {header.ins.value for header in report.cda if header.ins}  # the CDA documents' recordTarget
    if report.xdm:
        seen.update(doc.patient.value for doc in report.xdm.documents if doc.patient)  # METADATA.XML
        if report.xdm.submission_patient:
            seen.add(report.xdm.submission_patient.value)  # the SubmissionSet's patientId
    if len(seen) > 1:
        f.append(
            Finding(
                "MSS-ONE-PERSON",
                f"le message concerne plusieurs INS ({', '.join(sorted(seen))}): un seul usager par courriel (ECO.2.1.1)",
            )
        )
    ins_values = {h.ins.value: h.ins for h in report.cda if h.ins}
    if report.xdm and report.xdm.submission_patient:
        ins_values.setdefault(report.xdm.submission_patient.value, report.xdm.submission_patient)
    if len(ins_values) == 1:
        report.person = next(iter(ins_values.values()))
    for rcpt in recipients:
        local, _, domain = rcpt.rpartition("@")
        if domain.lower() == PATIENT_DOMAIN and ins_values and local not in ins_values:
            f.append(
                Finding(
                    "MSS-PATIENT-MAILBOX",
                    f"la messagerie patient {rcpt} ne correspond pas à l'INS des documents ({', '.join(ins_values)})",
                )
            )
