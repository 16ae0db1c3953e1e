"""The MSSanté simulator's fault catalogue: what a scenario (or ``/_harness/faults``) injects, ``mssante.<fault>``."""

from __future__ import annotations

from harness.host.simulator import FaultSpec

FAULT_MAILBOX_FULL = "mssante.mailbox_full"  # the next RCPT to params.address answers 552 5.2.2 (RFC 3463)
FAULT_TLS_REQUIRED = "mssante.tls_required"  # the next MAIL answers 530 5.7.0 (RFC 3207)
FAULT_TLS_REFUSED = "mssante.tls_certificate_refused"  # the next TLS handshake (SMTP or IMAP) ends in an alert
FAULT_SLOW = "mssante.slow_server"  # the next DATA reply (SMTP) or greeting (IMAP) comes params.seconds late
FAULT_SMTP_REPLY = "mssante.smtp_reply"  # the next DATA gets the SMTP reply params.code params.message
# the next accepted message is journaled and delivered, then the connection closes without the 250 (RFC 5321 §6.1)
FAULT_REPLY_LOST = "mssante.reply_lost"

FAULTS = (
    FaultSpec(FAULT_MAILBOX_FULL, "la boîte du destinataire est pleine : 552 5.2.2 au RCPT (RFC 3463)", ("address",)),
    FaultSpec(FAULT_TLS_REQUIRED, "le serveur exige STARTTLS : 530 5.7.0 au MAIL (RFC 3207)"),
    FaultSpec(FAULT_TLS_REFUSED, "la prochaine négociation TLS (SMTP ou IMAP) est refusée par une alerte"),
    FaultSpec(FAULT_SLOW, "le serveur répond avec retard (SMTP : réponse au DATA ; IMAP : accueil)", ("seconds",)),
    FaultSpec(FAULT_SMTP_REPLY, "le prochain DATA reçoit la réponse SMTP donnée", ("code", "message")),
    FaultSpec(
        FAULT_REPLY_LOST,
        "le prochain message accepté est remis, puis la connexion est fermée sans la réponse 250 (réponse perdue)",
    ),
)
