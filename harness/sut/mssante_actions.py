"""MSSanté actions of the reference DUI: send a document by SMTP submission (STARTTLS + AUTH).

Defects of the faulty DUI for this capability are declared here and checked with ``self.has(...)``.
"""

from __future__ import annotations

import smtplib
import ssl

from harness.sut.base import ActionResult, ActionStatus, Defect, MssanteSend, SutEnvironment
from harness.sut.documents import BuildOptions, build_message

MSSANTE_DEFECTS = (
    Defect("entetes-mss-absents", "n'ajoute pas les en-têtes X-MSS-CODECDA et X-MSS-INS"),
    Defect("codecda-errone", "met le libellé du document dans X-MSS-CODECDA au lieu du code"),
    Defect("oid-ins-errone", "identifie la personne avec un OID d'IPP local au lieu de l'OID INS"),
    Defect("xdm-sans-metadata", "produit une archive IHE_XDM.ZIP sans METADATA.XML"),
    Defect("xdm-hash-faux", "déclare un hash SHA-1 faux dans METADATA.XML"),
    Defect("messagerie-patient-erronee", "adresse la messagerie patient avec l'INS sans sa clé"),
    Defect("ignore-refus-smtp", "indique « envoyé » à l'utilisateur même quand le serveur refuse le message"),
)


class MssanteActions:
    """Mixin of :class:`harness.sut.reference.ReferenceDUI`."""

    env: SutEnvironment | None

    def has(self, defect: str) -> bool:  # provided by ReferenceDUI
        raise NotImplementedError

    def _mss_options(self) -> BuildOptions:
        return BuildOptions(
            mss_headers=not self.has("entetes-mss-absents"),
            codecda_override="Dossier de liaison d'urgence" if self.has("codecda-errone") else None,
            patient_id_oid="1.2.250.1.999.1.1" if self.has("oid-ins-errone") else None,
            xdm_metadata=not self.has("xdm-sans-metadata"),
            xdm_wrong_hash=self.has("xdm-hash-faux"),
        )

    def _patient_mailbox(self, action: MssanteSend) -> str:
        if self.has("messagerie-patient-erronee"):
            return f"{action.person.ins.number}@patient.mssante.fr"
        return action.person.mailbox

    def _mss_report(self, result: ActionResult) -> ActionResult:
        if self.has("ignore-refus-smtp") and result.status is ActionStatus.FAILED:
            return ActionResult(ActionStatus.DONE, "message envoyé", {"hidden_failure": result.detail})
        return result

    def send_mssante(self, action: MssanteSend) -> ActionResult:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        sender = action.establishment.dui_mailbox
        password = self.env.credentials.get(sender)
        if password is None:
            return ActionResult(ActionStatus.ERROR, f"aucun mot de passe MSSanté configuré pour {sender}")
        recipients = [self._patient_mailbox(action) if r == "patient" else r for r in action.recipients]
        msg = build_message(
            action.person, action.establishment, sender, recipients, action.document_kind,
            end_of_exchange=action.end_of_exchange, options=self._mss_options(),
        )
        host, _, port = self.env.endpoints["mssante"]["smtp"].rpartition(":")
        context = ssl.create_default_context(cafile=str(self.env.ca_bundle))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            with smtplib.SMTP(host.strip("[]"), int(port), timeout=30) as smtp:
                smtp.ehlo("dui-reference.test")
                smtp.starttls(context=context)
                smtp.ehlo("dui-reference.test")
                smtp.login(sender, password)
                refused = smtp.send_message(msg, from_addr=sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            detail = "; ".join(f"{addr}: {code} {text.decode('ascii', 'replace')}" for addr, (code, text) in exc.recipients.items())
            return self._mss_report(ActionResult(ActionStatus.FAILED, f"destinataire(s) refusé(s): {detail}"))
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode("ascii", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            return self._mss_report(ActionResult(ActionStatus.FAILED, f"refus du serveur MSSanté: {exc.smtp_code} {text}"))
        except (OSError, smtplib.SMTPException) as exc:
            return self._mss_report(ActionResult(ActionStatus.FAILED, f"envoi impossible: {exc}"))
        if refused:
            return self._mss_report(ActionResult(ActionStatus.FAILED, f"destinataires refusés: {sorted(refused)}"))
        return ActionResult(ActionStatus.DONE, "message envoyé", {"message_id": str(msg["Message-ID"]), "recipients": recipients})
