"""The built-in reference DUI and its faulty twin.

The reference DUI is an in-process client that performs every exchange the way a conformant DUI does, over
the real protocols (SMTP submission with STARTTLS and AUTH...). It is the default SUT and the harness's
self-test: every scenario must pass against it, and fail against at least one named defect of
:class:`FaultyDUI`.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from types import MappingProxyType

from harness.sut.base import ActionResult, ActionStatus, MssanteSend, SutEnvironment
from harness.sut.documents import BuildOptions, build_message


@dataclass(frozen=True)
class Defect:
    name: str
    description: str  # French: what the faulty DUI does wrong


#: Named defects the faulty DUI can switch on (``--sut faulty:<name>[,<name>]``).
DEFECTS = MappingProxyType(
    {
        d.name: d
        for d in (
            Defect("entetes-mss-absents", "n'ajoute pas les en-têtes X-MSS-CODECDA et X-MSS-INS"),
            Defect("codecda-errone", "met le libellé du document dans X-MSS-CODECDA au lieu du code"),
            Defect("oid-ins-errone", "identifie la personne avec un OID d'IPP local au lieu de l'OID INS"),
            Defect("xdm-sans-metadata", "produit une archive IHE_XDM.ZIP sans METADATA.XML"),
            Defect("xdm-hash-faux", "déclare un hash SHA-1 faux dans METADATA.XML"),
            Defect("messagerie-patient-erronee", "adresse la messagerie patient avec l'INS sans sa clé"),
            Defect("ignore-refus-smtp", "indique « envoyé » à l'utilisateur même quand le serveur refuse le message"),
        )
    }
)


class ReferenceDUI:
    """A DUI that does everything right."""

    name = "reference"

    def __init__(self) -> None:
        self.env: SutEnvironment | None = None

    def setup(self, env: SutEnvironment) -> None:
        self.env = env

    def close(self) -> None:
        self.env = None

    # Hooks the faulty DUI overrides -------------------------------------------------------------
    def build_options(self) -> BuildOptions:
        return BuildOptions()

    def patient_mailbox(self, action: MssanteSend) -> str:
        return action.person.mailbox

    def report(self, result: ActionResult) -> ActionResult:
        return result

    # Actions ------------------------------------------------------------------------------------
    def send_mssante(self, action: MssanteSend) -> ActionResult:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        sender = action.establishment.dui_mailbox
        password = self.env.credentials.get(sender)
        if password is None:
            return ActionResult(ActionStatus.ERROR, f"aucun mot de passe MSSanté configuré pour {sender}")
        recipients = [self.patient_mailbox(action) if r == "patient" else r for r in action.recipients]
        msg = build_message(
            action.person, action.establishment, sender, recipients, action.document_kind,
            end_of_exchange=action.end_of_exchange, options=self.build_options(),
        )
        host, _, port = self.env.endpoints["mssante"]["smtp"].rpartition(":")
        host = host.strip("[]")
        context = _client_context(self.env)
        try:
            with smtplib.SMTP(host, int(port), timeout=30) as smtp:
                smtp.ehlo("dui-reference.test")
                smtp.starttls(context=context)
                smtp.ehlo("dui-reference.test")
                smtp.login(sender, password)
                refused = smtp.send_message(msg, from_addr=sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            detail = "; ".join(f"{addr}: {code} {text.decode('ascii', 'replace')}" for addr, (code, text) in exc.recipients.items())
            return self.report(ActionResult(ActionStatus.FAILED, f"destinataire(s) refusé(s): {detail}"))
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode("ascii", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            return self.report(ActionResult(ActionStatus.FAILED, f"refus du serveur MSSanté: {exc.smtp_code} {text}"))
        except (OSError, smtplib.SMTPException) as exc:
            return self.report(ActionResult(ActionStatus.FAILED, f"envoi impossible: {exc}"))
        if refused:
            return self.report(ActionResult(ActionStatus.FAILED, f"destinataires refusés: {sorted(refused)}"))
        return ActionResult(ActionStatus.DONE, "message envoyé", {"message_id": str(msg["Message-ID"]), "recipients": recipients})


def _client_context(env: SutEnvironment) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(env.ca_bundle))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class FaultyDUI(ReferenceDUI):
    """The reference DUI with named defects switched on (see :data:`DEFECTS`)."""

    def __init__(self, defects: frozenset[str]) -> None:
        super().__init__()
        unknown = sorted(defects - set(DEFECTS))
        if unknown:
            raise ValueError(
                f"défaut inconnu / unknown defect: {', '.join(unknown)} (disponibles / available: {', '.join(DEFECTS)})"
            )
        self.defects = defects
        self.name = "faulty:" + ",".join(sorted(defects))

    def build_options(self) -> BuildOptions:
        d = self.defects
        return BuildOptions(
            mss_headers="entetes-mss-absents" not in d,
            codecda_override="Dossier de liaison d'urgence" if "codecda-errone" in d else None,
            patient_id_oid="1.2.250.1.999.1.1" if "oid-ins-errone" in d else None,
            xdm_metadata="xdm-sans-metadata" not in d,
            xdm_wrong_hash="xdm-hash-faux" in d,
        )

    def patient_mailbox(self, action: MssanteSend) -> str:
        if "messagerie-patient-erronee" in self.defects:
            return f"{action.person.ins.number}@patient.mssante.fr"
        return super().patient_mailbox(action)

    def report(self, result: ActionResult) -> ActionResult:
        if "ignore-refus-smtp" in self.defects and result.status is ActionStatus.FAILED:
            return ActionResult(ActionStatus.DONE, "message envoyé", {"hidden_failure": result.detail})
        return result
