"""Validation of the read receipt (MDN) a DUI returns for an MSSanté message carrying health documents.

Rules followed:
- RFC 8098 (Message Disposition Notification) §3: a ``multipart/report`` (RFC 6522) with
  ``report-type=disposition-notification``; first part human-readable, second part
  ``message/disposition-notification`` with ``Final-Recipient`` and ``Disposition`` (required), optional third
  part with the original message or its headers; ``Disposition`` grammar of §3.2.6 (action-mode /
  sending-mode ; disposition-type [ / modifier ]);
- ANS volet "Transmission d'un document CDA en HL7v2 par un LPS, courriel MSSanté" (IG v1.1.2, page
  ``struct-msg-mdn``; v1.1.3 working text): ``Original-Message-ID`` and ``Original-Recipient`` required;
  ``processed`` when the document was integrated; on failure the integration error code 900–906 (page
  ``error-codes``) as ``processed/Error: <code>^<label>`` (v1.1.2) or ``processed/error`` plus an
  ``Error: <code>^<label>`` field (v1.1.3) — both accepted — and a Subject starting with
  ``[KO Intégration système !][<code>]``;
- a Subject written in raw 8-bit bytes is read as UTF-8 (RFC 6532 §3.2) so that its integration code is judged
  for what it says; the raw bytes themselves are the ``MIME-8BIT-HEADER`` error of every MSSanté message (RFC
  5322 §2.2: header fields are US-ASCII; UTF-8 only under SMTPUTF8, RFC 6531, which the simulator does not
  offer; RFC 2047 encoded words are expected);
- a delivery status notification (``report-type=delivery-status``, RFC 3464) is not an MDN.
Bytes in, findings out; the caller checks that the original message exists (it knows the mailboxes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message

from harness.validators import Finding, Severity
from harness.validators.mssante_message import header_value, parse_message, raw_8bit_headers

#: Integration error codes of the volet (``error-codes``, table applicationErrorCondition), labels verbatim.
ERROR_CODES = {
    "900": "Version du document incorrecte lors d'une demande de remplacement/suppression",
    "901": "Auteur non autorisé à remplacer ou supprimer un document",
    "902": "Identifiant patient inconnu",
    "903": "INS non présent dans le document",
    "904": "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
    "905": "L'INS transmis n'est pas complet",
    "906": "Erreur 'Autre'",
}
ACTION_MODES = ("manual-action", "automatic-action")
SENDING_MODES = ("mdn-sent-manually", "mdn-sent-automatically")
DISPOSITION_TYPES = ("displayed", "deleted", "dispatched", "processed")
KO_SUBJECT = re.compile(r"^\s*\[\s*KO\s+Int[ée]gration\s+syst[èe]me\s*!?\s*\]\s*\[\s*(\d{3})\s*\]", re.IGNORECASE)
_DISPOSITION = re.compile(
    r"^\s*(?P<action>[\w-]+)\s*/\s*(?P<sending>[\w-]+)\s*;\s*(?P<type>[\w-]+)\s*(?:/\s*(?P<modifiers>.*))?$", re.DOTALL
)


def is_mdn(msg: Message) -> bool:
    """Whether a parsed message is a disposition notification report (RFC 8098 §3)."""
    return (
        msg.get_content_type() == "multipart/report"
        and (msg.get_param("report-type") or "").lower() == "disposition-notification"
    )


@dataclass
class MdnReport:
    findings: list[Finding] = field(default_factory=list)
    is_mdn: bool = False
    subject: str | None = None
    sender: str | None = None
    to: str | None = None
    disposition: str | None = None
    disposition_type: str | None = None
    error_code: str | None = None  # 900..906 when the DUI reports an integration failure
    error_label: str | None = None
    original_message_id: str | None = None
    final_recipient: str | None = None
    original_recipient: str | None = None
    reporting_ua: str | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def processed(self) -> bool:
        """The DUI reports the document as integrated (``processed`` without error)."""
        return self.disposition_type == "processed" and self.error_code is None


def _address(value: str | None) -> str | None:
    """``rfc822;user@host`` (RFC 8098 §3.2.3-4 address-type ; address) -> ``user@host``."""
    if not value:
        return None
    kind, sep, address = value.partition(";")
    return (address if sep else kind).strip().strip("<>") or None


def _fields(part: Message) -> dict[str, str]:
    """The fields of a ``message/disposition-notification`` part, lower-cased names (first occurrence wins).

    The email package always parses a ``message/*`` part's body as sub-message(s) whose headers are the fields
    (whatever the Content-Transfer-Encoding): the payload is a list."""
    found: dict[str, str] = {}
    payload = part.get_payload()
    for sub in payload if isinstance(payload, list) else []:
        for name in sub.keys():
            found.setdefault(name.lower(), header_value(sub, name) or "")
    return found


def validate_mdn(data: bytes, *, smtputf8: bool = False) -> MdnReport:
    """Validate one MDN (the DATA of an SMTP submission); ``smtputf8``: the transaction used SMTPUTF8 (RFC 6531)."""
    report = MdnReport()
    f = report.findings
    try:
        msg = parse_message(data)
        parts = list(msg.walk())
    except Exception as exc:  # the email package is lenient; anything it raises means unusable input
        f.append(Finding("MDN-UNPARSABLE", f"accusé illisible: {exc}"))
        return report
    report.is_mdn = is_mdn(msg)
    report.subject = header_value(msg, "Subject")
    report.sender = header_value(msg, "From")
    report.to = header_value(msg, "To")
    if not report.is_mdn:
        kind = (msg.get_param("report-type") or "") if msg.get_content_type() == "multipart/report" else ""
        what = " ; ceci est un rapport de remise (DSN, RFC 3464)" if str(kind).lower() == "delivery-status" else ""
        f.append(
            Finding(
                "MDN-NOT-REPORT",
                f"un MDN est un multipart/report; report-type=disposition-notification (RFC 8098 §3){what}",
            )
        )
        return report
    if not smtputf8:  # the same rule as for any MSSanté message: RFC 2047 encoded words, not raw 8-bit bytes
        f.extend(raw_8bit_headers(parts))
    children = msg.get_payload() if isinstance(msg.get_payload(), list) else []
    if not children or not children[0].get_content_maintype() == "text":
        f.append(
            Finding(
                "MDN-HUMAN-PART", "la première partie d'un multipart/report doit être lisible (text/*) (RFC 6522 §3)"
            )
        )
    notifications = [p for p in parts if p.get_content_type() == "message/disposition-notification"]
    if len(notifications) != 1:
        f.append(
            Finding(
                "MDN-NOTIFICATION-PART",
                f"{len(notifications)} partie(s) message/disposition-notification (une attendue, RFC 8098 §3)",
            )
        )
        return report
    fields = _fields(notifications[0])
    report.reporting_ua = fields.get("reporting-ua")
    report.final_recipient = _address(fields.get("final-recipient"))
    report.original_recipient = _address(fields.get("original-recipient"))
    report.original_message_id = (fields.get("original-message-id") or "").strip() or None
    report.disposition = fields.get("disposition")
    if report.final_recipient is None:
        f.append(Finding("MDN-FINAL-RECIPIENT", "champ Final-Recipient absent (RFC 8098 §3.2.4)"))
    if report.original_recipient is None:
        f.append(Finding("MDN-ORIGINAL-RECIPIENT", "champ Original-Recipient absent (volet ANS struct-msg-mdn)"))
    if report.original_message_id is None:
        f.append(
            Finding(
                "MDN-ORIGINAL-MESSAGE-ID",
                "champ Original-Message-ID absent: l'accusé ne désigne aucun message (volet ANS struct-msg-mdn)",
            )
        )
    _check_disposition(report, fields)
    _check_subject(report)
    if report.error_code and children and children[0].get_content_maintype() == "text":
        text = children[0].get_payload(decode=True) or b""
        if report.error_code.encode() not in text:
            f.append(
                Finding(
                    "MDN-TEXT-CODE",
                    f"la partie lisible ne mentionne pas le code d'erreur {report.error_code}",
                    Severity.WARNING,
                )
            )
    return report


def _check_disposition(report: MdnReport, fields: dict[str, str]) -> None:
    f = report.findings
    raw = report.disposition
    if not raw:
        f.append(Finding("MDN-DISPOSITION", "champ Disposition absent (RFC 8098 §3.2.6)"))
        return
    match = _DISPOSITION.match(raw)
    if match is None:
        f.append(Finding("MDN-DISPOSITION", f"Disposition illisible: {raw!r} (RFC 8098 §3.2.6)"))
        return
    action, sending, kind = match["action"].lower(), match["sending"].lower(), match["type"].lower()
    report.disposition_type = kind
    if action not in ACTION_MODES or sending not in SENDING_MODES:
        f.append(
            Finding("MDN-DISPOSITION-MODE", f"mode {match['action']}/{match['sending']} inconnu (RFC 8098 §3.2.6.1)")
        )
    if kind not in DISPOSITION_TYPES:
        f.append(Finding("MDN-DISPOSITION-TYPE", f"type de disposition {match['type']!r} inconnu (RFC 8098 §3.2.6.2)"))
    elif kind != "processed":
        f.append(
            Finding("MDN-NOT-PROCESSED", f"disposition {kind}: le volet attend processed (intégration dans le dossier)")
        )
    modifiers = (match["modifiers"] or "").strip()
    error_value = None
    if modifiers:
        head, colon, rest = modifiers.partition(":")
        if head.strip().lower() != "error":
            f.append(Finding("MDN-DISPOSITION-MODIFIER", f"modificateur {head.strip()!r} inconnu (RFC 8098 §3.2.6.3)"))
        elif colon:  # v1.1.2 form: processed/Error: 902^label
            error_value = rest.strip()
        else:  # v1.1.3 form: processed/error + Error: 902^label
            error_value = (fields.get("error") or "").strip()
            if not error_value:
                f.append(
                    Finding(
                        "MDN-ERROR-FIELD", "disposition processed/error sans champ Error: <code>^<libellé> (volet ANS)"
                    )
                )
    elif fields.get("error"):
        f.append(
            Finding("MDN-ERROR-FIELD", "champ Error présent mais Disposition sans modificateur error (RFC 8098 §3.2.7)")
        )
    if error_value:
        code, _, label = error_value.partition("^")
        code = code.strip()
        report.error_code, report.error_label = code, label.partition("^")[0].strip() or None
        if code not in ERROR_CODES:
            f.append(
                Finding("MDN-ERROR-CODE", f"code d'erreur d'intégration {code!r} hors de la table du volet (900 à 906)")
            )


def _check_subject(report: MdnReport) -> None:
    marker = KO_SUBJECT.match(report.subject or "")
    if report.error_code is None:
        if marker:
            report.findings.append(Finding("MDN-SUBJECT", "objet [KO Intégration système !] sur un accusé sans erreur"))
        return
    if marker is None:
        report.findings.append(
            Finding(
                "MDN-SUBJECT",
                f"l'objet d'un accusé d'erreur doit commencer par [KO Intégration système !][{report.error_code}] (volet ANS)",
            )
        )
    elif marker.group(1) != report.error_code:
        report.findings.append(
            Finding("MDN-SUBJECT", f"code {marker.group(1)} dans l'objet mais {report.error_code} dans Disposition")
        )
