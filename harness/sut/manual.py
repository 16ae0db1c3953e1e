"""The manual driver: a recette operator at the DUI does what each step asks (guided recette).

Each action becomes a French instruction with the data to use (person, INS, document, address). The driver
returns :attr:`ActionStatus.DELEGATED`; the step then waits for the resulting exchange on the simulators
(``step_timeout``), while the operator may mark the step as blocked with a comment.
"""

from __future__ import annotations

from harness.fields.identity_status import HIGH_TRUST_DOCUMENTS
from harness.runtime.guided import OperatorChannel
from harness.sut.base import (
    ActionResult,
    ActionStatus,
    CdlNotePost,
    CdlNotesRead,
    CdlNoteUpdate,
    DirectoryLookup,
    DmpFeed,
    DmpQuery,
    DmpUpdate,
    EprescriptionImport,
    InsiSearch,
    InsiTraits,
    InsiVerify,
    MssanteReceive,
    MssanteRelay,
    MssanteSend,
    PscLogin,
    SutEnvironment,
    TdduiExport,
)
from harness.sut.mssante_messages import UNSTRUCTURED_TYPE
from harness.validators.cda import DOCUMENT_TYPES


class ManualDriver:
    name = "manual"

    def __init__(self, channel: OperatorChannel | None) -> None:
        self.channel = channel
        self.env: SutEnvironment | None = None

    def setup(self, env: SutEnvironment) -> None:
        if self.channel is None:
            raise RuntimeError(
                "le mode guidé se lance avec « socle-harness run --sut manual » / "
                "guided mode needs `socle-harness run --sut manual` (it provides the operator channel)"
            )
        self.env = env

    def close(self) -> None:
        self.env = None

    def send_mssante(self, action: MssanteSend) -> ActionResult:
        person = action.person
        doc = DOCUMENT_TYPES.get(action.document_kind) or UNSTRUCTURED_TYPE
        recipients = [
            f"sa messagerie Mon espace santé ({person.mailbox})" if r == "patient" else r for r in action.recipients
        ]
        text = (
            f"Dans le DUI de « {action.establishment.name} », ouvrez le dossier de {person.display_name} "
            f"(né(e) le {person.birth_date:%d/%m/%Y}, INS {person.ins.value}) et envoyez par MSSanté le document "
            f"« {doc.display} » ({action.document_kind}) à : {', '.join(recipients)}."
        )
        if action.end_of_exchange:
            text += " Indiquez que la personne ne doit pas répondre (X-MSS-MES: FIN)."
        return ActionResult(ActionStatus.DELEGATED, text, {"instruction": text})

    def _delegate(self, text: str) -> ActionResult:
        return ActionResult(ActionStatus.DELEGATED, text, {"instruction": text})

    def receive_mssante(self, action: MssanteReceive) -> ActionResult:
        how = (
            "avec le certificat d'organisation de l'établissement"
            if action.auth == "certificate"
            else "avec son mot de passe"
        )
        return self._delegate(
            f"Faites relever par le DUI de « {action.establishment.name} » la messagerie MSSanté "
            f"{action.establishment.dui_mailbox} ({how}) : il doit intégrer les documents reçus et renvoyer les accusés de lecture demandés."
        )

    def relay_mssante_hl7(self, action: MssanteRelay) -> ActionResult:
        patient = " et à sa messagerie Mon espace santé" if action.to_patient else ""
        return self._delegate(
            f"Dans le DUI de « {action.establishment.name} », transmettez à la plateforme d'intégration ({action.message_type}) "
            f"le document « {action.document_kind} » de {action.person.display_name} pour {', '.join(action.recipients)}{patient}, "
            "avec accusés de réception et de lecture."
        )

    def lookup_directory(self, action: DirectoryLookup) -> ActionResult:
        return self._delegate(f"Dans le DUI, cherchez l'adresse MSSanté « {action.query} » dans l'annuaire.")

    def import_eprescription(self, action: EprescriptionImport) -> ActionResult:
        base = ((self.env.endpoints if self.env else {}).get("eprescription") or {}).get("base", "")
        form = "son document CDA (eP-MED-DM)" if action.document else "l'ordonnance"
        return self._delegate(
            f"Dans le DUI de « {action.establishment.name} », ouvrez le dossier de {action.person.display_name} (INS "
            f"{action.person.ins.value}) et scannez le QR code de l'ordonnance numérique {action.identifier} (page à "
            f"afficher ou imprimer : {base}/ordonnances/{action.identifier}). Importez {form} si elle est valide et "
            "celle de la personne ; sinon le DUI doit le signaler."
        )

    def cdl_post_note(self, action: CdlNotePost) -> ActionResult:
        urgent = " urgente" if action.urgent else ""
        return self._delegate(
            f"Dans le DUI de « {action.establishment.name} », écrivez dans le cahier de liaison e-Parcours de "
            f"{action.person.display_name} une note{urgent} de type {action.note_type} : « {action.text} »."
        )

    def cdl_update_note(self, action: CdlNoteUpdate) -> ActionResult:
        return self._delegate(
            f"Dans le DUI, modifiez la note du cahier de liaison de {action.person.display_name} que vous venez d'écrire "
            f"(note {action.note_id}) : « {action.text} »."
        )

    def cdl_read_notes(self, action: CdlNotesRead) -> ActionResult:
        kind = f" de type {action.note_type}" if action.note_type else ""
        return self._delegate(
            f"Dans le DUI de « {action.establishment.name} », consultez le cahier de liaison e-Parcours de "
            f"{action.person.display_name} (notes{kind}) et ouvrez les notes trouvées."
        )

    # Identity, PSC, DMP, TDDUI ------------------------------------------------------------------------------
    def send_mssante_qualified(self, action: MssanteSend) -> ActionResult:
        sent = self.send_mssante(action)
        text = (
            "Si l'identité de la personne n'est pas qualifiée dans le DUI (pièce d'identité à haut niveau de "
            "confiance contrôlée et INS obtenu du téléservice INSi), le DUI doit refuser l'envoi ; sinon : "
            + sent.detail
        )
        return self._delegate(text)

    def psc_login(self, action: PscLogin) -> ActionResult:
        return self._delegate(
            f"Déconnectez-vous du DUI si besoin, puis connectez-vous au DUI de « {action.establishment.name} » avec "
            "« Pro Santé Connect » (le simulateur vous connecte avec le professionnel indiqué par le scénario)."
        )

    def psc_refresh(self) -> ActionResult:
        return self._delegate(
            "Restez connecté au DUI et poursuivez votre travail jusqu'au renouvellement de la session "
            "Pro Santé Connect (ou déclenchez-le depuis le DUI s'il le propose)."
        )

    def psc_logout(self) -> ActionResult:
        return self._delegate(
            "Déconnectez-vous du DUI (bouton de déconnexion) : la session Pro Santé Connect doit être fermée aussi."
        )

    def _traits(self, traits: InsiTraits) -> str:
        place = f", lieu de naissance (code INSEE) {traits.birth_place}" if traits.birth_place else ""
        return (
            f"nom de naissance {traits.birth_name}, prénom(s) {' '.join(traits.first_names)}, sexe {traits.sex}, "
            f"né(e) le {traits.birth_date[8:10]}/{traits.birth_date[5:7]}/{traits.birth_date[:4]}{place}"
        )

    def search_ins(self, action: InsiSearch) -> ActionResult:
        return self._delegate(
            f"Dans le DUI de « {action.establishment.name} », créez ou ouvrez l'identité ({self._traits(action.traits)}) "
            "et lancez l'appel au téléservice INSi (recherche de l'INS)."
        )

    def verify_ins(self, action: InsiVerify) -> ActionResult:
        return self._delegate(
            f"Dans le DUI de « {action.establishment.name} », ouvrez l'identité ({self._traits(action.traits)}) "
            f"qui porte l'INS {action.ins} et lancez la vérification de l'INS auprès du téléservice INSi."
        )

    def qualify_identity(self, action: InsiSearch) -> ActionResult:
        document = HIGH_TRUST_DOCUMENTS.get(action.identity_document or "")
        check = (
            f"contrôlez les traits sur la pièce d'identité présentée ({document}), "
            if document
            else "aucune pièce d'identité n'est présentée : ne déclarez pas l'identité validée, "
        )
        return self._delegate(
            f"Dans le DUI de « {action.establishment.name} », qualifiez l'identité ({self._traits(action.traits)}) : "
            f"{check}puis obtenez l'INS par le téléservice INSi et enregistrez le statut de l'identité."
        )

    def dmp_feed(self, action: DmpFeed) -> ActionResult:
        doc = DOCUMENT_TYPES.get(action.document_kind)
        what = f"« {doc.display} » ({action.document_kind})" if doc else action.document_kind
        verb = (
            f"une nouvelle version du document {action.replaces}, qui remplace le précédent,"
            if action.replaces
            else f"le document {what}"
        )
        return self._delegate(
            f"Dans le DUI de « {action.establishment.name} », ouvrez le dossier de {action.person.display_name} "
            f"(INS {action.person.ins.value}) et versez {verb} dans son DMP."
        )

    def dmp_find(self, action: DmpQuery) -> ActionResult:
        return self._delegate(f"Dans le DUI, consultez la liste des documents du DMP de {action.person.display_name}.")

    def dmp_retrieve(self, action: DmpQuery) -> ActionResult:
        return self._delegate(
            f"Dans le DUI, ouvrez le document {action.unique_id} du DMP de {action.person.display_name}."
        )

    def dmp_update(self, action: DmpUpdate) -> ActionResult:
        changes = {
            "masquer": "masquez-le aux professionnels",
            "demasquer": "rendez-le de nouveau visible aux professionnels",
            "invisible-patient": "rendez-le invisible à la personne",
            "archiver": "archivez-le",
            "supprimer": "supprimez-le",
        }
        return self._delegate(
            f"Dans le DUI, retrouvez le document {action.unique_id} versé au DMP de {action.person.display_name} "
            f"et {changes.get(action.change, action.change)}."
        )

    def export_tddui(self, action: TdduiExport) -> ActionResult:
        return self._delegate(
            f"Dans le DUI de « {action.establishment.name} », lancez la transmission des données du DUI au "
            f"format national TDDUI (situation au {action.exported_at:%d/%m/%Y}, {len(action.records)} dossier(s))."
        )
