"""DMP actions of the reference DUI: TD0.2 check, ITI-41 feed (TD2 / TD2.1 replace), ITI-18, ITI-43, ITI-57.

Over HTTPS with the organisation client certificate of the test PKI (``env.client_certificates``), SOAP 1.2 +
WS-Addressing + MTOM, a VIHF 3.0 assertion signed with that certificate, the CDA from
:func:`harness.sut.documents.build_cda`. Defects of the faulty DUI for this capability are declared here and
checked with ``self.has(...)``.

Like a real DUI, the driver does not redo per request what belongs to its session: the TLS client context
(CA bundle + organisation certificate) is loaded once per set of credential files; the requests of one action
(TD0.2 then ITI-41 of a feed) share one HTTP/1.1 persistent connection (RFC 9112 §9.3), hence one mutual TLS
handshake, the connection being closed at the end of the action; and the signed VIHF assertion of a (person,
structure) is sent again, as signed, for :data:`VIHF_REUSE` seconds, well inside the 2 hours the DMP simulator
accepts after the ``IssueInstant`` of an assertion without ``saml2:Conditions`` (see
:class:`harness.validators.vihf.VihfPolicy`), instead of being signed anew for every request. The DMP still checks
every request as before (transport, VIHF attributes, age and signer, metadata, documents); only the XML signature of
bytes it has already verified is taken from its :class:`harness.validators.vihf.SignatureCache`, built for this.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import httpx
from lxml import etree

from harness.fields.identity import INS, OID_INS_NIR, compute_key
from harness.fields.testdata import Establishment, Person
from harness.sut import dmp_messages as M
from harness.sut.base import ActionResult, ActionStatus, Defect, DmpFeed, DmpQuery, DmpUpdate, SutEnvironment
from harness.sut.documents import build_cda
from harness.validators import ebrim as E
from harness.validators.cda import DOCUMENT_TYPES

DMP_DEFECTS = (
    Defect("vihf-non-signe", "envoie au DMP une assertion VIHF sans signature"),
    Defect("cle-ins-erronee-dmp", "met dans le patientId XDS un INS dont la clé est fausse"),
    Defect(
        "sans-document-signature",
        "verse le document au DMP sans le document de signature XAdES (ni l'association signs)",
    ),
    Defect("typecode-errone", "déclare un typeCode XDS qui ne correspond pas au code du document CDA"),
    Defect(
        "ignore-dmp-ferme",
        "ne tient pas compte du test d'existence du DMP et indique « versé » même quand le DMP refuse",
    ),
    Defect(
        "remplacement-sans-rplc",
        "remplace un document sans association RPLC (la nouvelle version s'ajoute à l'ancienne)",
    ),
    Defect(
        "masquage-errone", "pour masquer un document aux professionnels, envoie INVISIBLE_PATIENT au lieu de MASQUE_PS"
    ),
    Defect("mimetype-pdf", "déclare le document CDA versé au DMP avec le mimeType application/pdf"),
    Defect(
        "lecture-autre-patient", "recherche et récupère les documents d'une personne avec le VIHF d'un autre patient"
    ),
    Defect("vihf-autre-structure", "signe le VIHF (et le lot) avec le certificat d'organisation d'une autre structure"),
    Defect(
        "sans-mtom", "envoie le versement ITI-41 sans MTOM (application/soap+xml, documents en base64 dans l'enveloppe)"
    ),
    Defect("ins-production-dmp", "transmet au DMP l'INS de la personne sous l'OID de production 1.2.250.1.213.1.4.8"),
    Defect("classcode-hors-jdv", "déclare un classCode hors du jeu de valeurs JDV_J57-ClassCode-DMP (99)"),
    Defect(
        "signature-falsifiee", "verse un document de signature dont les empreintes ne correspondent pas aux documents"
    ),
    Defect(
        "recherche-sans-statut",
        "recherche les documents (FindDocuments) sans le paramètre obligatoire $XDSDocumentEntryStatus",
    ),
)

ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
TD02 = "urn:hl7-org:v3:PRPA_IN201307UV02"
CHANGES = {
    "masquer": [("N", "2.16.840.1.113883.5.25"), ("MASQUE_PS", "1.2.250.1.213.1.1.4.13")],
    "demasquer": [("N", "2.16.840.1.113883.5.25")],
    "invisible-patient": [("N", "2.16.840.1.113883.5.25"), ("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13")],
}
VIHF_REUSE = 600.0  # seconds a signed VIHF assertion is sent again for the same person and structure
VIHF_CACHE_SIZE = 4096  # assertions kept (least recently used dropped first)
STATUS_CHANGES = {
    "archiver": "urn:asip:ci-sis:2010:StatusType:Archived",
    "supprimer": "urn:asip:ci-sis:2010:StatusType:Deleted",
}


@dataclass
class SentDocument:
    """What the DUI remembers of a document it fed (its own record, as a real DUI keeps one)."""

    unique_id: str
    entry_uuid: str
    kind: str
    set_id: str
    version: int = 1
    metadata_version: int = 1
    status: str = E.STATUS_APPROVED
    data: bytes = field(default=b"", repr=False)


class DmpActions:
    """Mixin of :class:`harness.sut.reference.ReferenceDUI`."""

    env: SutEnvironment | None

    def has(self, defect: str) -> bool:  # provided by ReferenceDUI
        raise NotImplementedError

    # transport -----------------------------------------------------------------------------------
    def _dmp_sent(self) -> dict[str, SentDocument]:
        sent = getattr(self, "_dmp_documents", None)
        if sent is None:
            sent = {}
            self._dmp_documents = sent
        return sent

    def _dmp_credentials(self, establishment: Establishment) -> M.OrgCredentials:
        """The organisation certificate of the structure that acts (``ESSMS-<FINESS>``, OU ``1`` + FINESS): the DMP
        authenticates the structure by it, and it must be the VIHF signer and ``Identifiant_Structure``."""
        assert self.env is not None  # noqa: S101
        certificates = self.env.client_certificates
        wanted = (f"DMP-{establishment.finess}", f"ESSMS-{establishment.finess}", "DMP")
        name = next((n for n in wanted if n in certificates), None)
        if name is None:
            raise RuntimeError(
                f"aucun certificat d'organisation (IGC de test) pour la structure {establishment.finess} "
                f"(attendu l'un de {', '.join(wanted)})"
            )
        cert, key = certificates[name]
        return M.OrgCredentials(str(cert), str(key))

    def _dmp_signer(self, establishment: Establishment) -> M.OrgCredentials:
        """The certificate that signs the VIHF (and the submission): the structure's own, or, for the faulty DUI's
        ``vihf-autre-structure``, another ESSMS's."""
        assert self.env is not None  # noqa: S101
        if self.has("vihf-autre-structure"):
            other = sorted(
                n
                for n in self.env.client_certificates
                if n.startswith("ESSMS-") and n != f"ESSMS-{establishment.finess}"
            )
            if other:
                cert, key = self.env.client_certificates[other[0]]
                return M.OrgCredentials(str(cert), str(key))
        return self._dmp_credentials(establishment)

    def _vihf_person(self, action: DmpFeed | DmpQuery | DmpUpdate) -> Person:
        """The patient the VIHF names: the action's person (the faulty DUI's ``lecture-autre-patient`` reads a
        person's documents with the VIHF of another patient)."""
        if self.has("lecture-autre-patient") and isinstance(action, DmpQuery):
            return _other_patient(action.person)
        return action.person

    def _dmp_session(self) -> _DmpSession:
        session = getattr(self, "_dmp_session_state", None)
        if session is None:
            session = _DmpSession()
            self._dmp_session_state = session
        return session

    def _dmp_client(self, establishment: Establishment) -> httpx.Client:
        """An HTTP client for the requests of one action: one keep-alive connection, mutual TLS."""
        assert self.env is not None  # noqa: S101
        context = self._dmp_session().tls_context(str(self.env.ca_bundle), self._dmp_credentials(establishment))
        return httpx.Client(verify=context, timeout=30.0)

    def _dmp_post(
        self,
        service: str,
        action: str,
        body: etree._Element,
        action_for: DmpFeed | DmpQuery | DmpUpdate,
        attachments: dict[str, bytes] | None = None,
        client: httpx.Client | None = None,
    ) -> tuple[etree._Element | None, dict[str, bytes], str | None]:
        """Send one SOAP request (on ``client`` when the action holds one); returns (response body element,
        attachments, transport error)."""
        assert self.env is not None  # noqa: S101
        if client is None:
            with self._dmp_client(action_for.establishment) as own:
                return self._dmp_post(service, action, body, action_for, attachments, own)
        url = self.env.endpoints["dmp"][service]
        vihf = self._dmp_session().vihf(
            self._vihf_person(action_for),
            action_for.establishment,
            self._dmp_signer(action_for.establishment),
            sign=not self.has("vihf-non-signe"),
        )
        envelope = M.envelope(action, url, body, vihf)
        if action == ITI41 and self.has("sans-mtom"):
            content, content_type = M.inline(envelope, attachments or {}, action)
        else:
            content, content_type = M.mtom(envelope, attachments or {}, action)
        try:
            response = client.post(url, content=content, headers={"Content-Type": content_type})
        except httpx.HTTPError as exc:
            return None, {}, f"DMP injoignable: {exc}"
        try:
            element, parts = M.read_response(response.headers.get("content-type", ""), response.content)
        except ValueError as exc:
            return None, {}, f"réponse du DMP illisible (HTTP {response.status_code}): {exc}"
        fault = M.fault_text(element)
        if fault is not None:
            return None, {}, f"faute SOAP du DMP: {fault}"
        return element, parts, None

    @staticmethod
    def _registry_result(element: etree._Element, success_detail: str, data: dict) -> ActionResult:
        status, errors = M.registry_errors(element)
        data = {**data, "status": status, "errors": [{"code": c, "context": x, "severity": s} for c, x, s in errors]}
        if status.endswith(":Success"):
            return ActionResult(ActionStatus.DONE, success_detail, data)
        return ActionResult(
            ActionStatus.FAILED, "refus du DMP: " + "; ".join(f"{c} {x}" for c, x, s in errors if s == "Error"), data
        )

    # TD0.2 ---------------------------------------------------------------------------------------
    def _dmp_check(self, action: DmpFeed, client: httpx.Client | None = None) -> ActionResult | None:
        """TD0.2: ``None`` when the DMP exists, is open and the authorisation is valid; else the refusal to show."""
        element, _, error = self._dmp_post(
            "patients", TD02, M.build_td02(action.person, action.establishment), action, client=client
        )
        if error:
            return ActionResult(ActionStatus.FAILED, error)
        facts = M.read_td02(element)
        if facts["detail"] == "DMPClosed":
            return ActionResult(
                ActionStatus.FAILED, "le DMP de la personne est fermé : document non versé", {"td02": facts}
            )
        if facts["detail"] == "DMPAccessDenied":  # the VIHF names another patient, or another test session's
            return ActionResult(
                ActionStatus.FAILED, "accès au DMP refusé (DMPAccessDenied) : document non versé", {"td02": facts}
            )
        if facts["query_response"] != "OK":
            return ActionResult(ActionStatus.FAILED, "la personne n'a pas de DMP : document non versé", {"td02": facts})
        if facts["authorisation"] != "VALIDE":
            return ActionResult(
                ActionStatus.FAILED,
                f"autorisation d'accès au DMP {facts['authorisation']} : document non versé",
                {"td02": facts},
            )
        return None

    # ITI-41 --------------------------------------------------------------------------------------
    def dmp_feed(self, action: DmpFeed) -> ActionResult:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        if self.has("ins-production-dmp"):
            ins = action.person.ins
            action = replace(action, person=replace(action.person, ins=INS(ins.number, ins.key, OID_INS_NIR)))
        with self._dmp_client(action.establishment) as client:  # TD0.2 and ITI-41 on one connection
            return self._dmp_feed(action, client)

    def _dmp_feed(self, action: DmpFeed, client: httpx.Client) -> ActionResult:
        refusal = self._dmp_check(action, client)
        if refusal is not None and not self.has("ignore-dmp-ferme"):
            return refusal
        sent = self._dmp_sent()
        previous = sent.get(action.replaces) if action.replaces else None
        if action.replaces and previous is None:
            return ActionResult(ActionStatus.ERROR, f"le DUI n'a pas versé de document {action.replaces}")
        cda = build_cda(
            action.person,
            action.establishment,
            action.document_kind,
            set_id=previous.set_id if previous else None,
            version=previous.version + 1 if previous else 1,
            replaces=previous.unique_id if previous else None,
        )
        options = M.FeedOptions(
            wrong_ins_key=self.has("cle-ins-erronee-dmp"),
            signature_document=not self.has("sans-document-signature"),
            type_code_override="11488-4" if self.has("typecode-errone") else None,
            rplc_association=not self.has("remplacement-sans-rplc"),
            mime_type="application/pdf" if self.has("mimetype-pdf") else "text/xml",
            class_code="99" if self.has("classcode-hors-jdv") else None,
            forged_signature=self.has("signature-falsifiee"),
        )
        body, attachments, entry_uuid, unique_id = M.build_iti41(
            action.person,
            action.establishment,
            action.document_kind,
            cda,
            self._dmp_signer(action.establishment),
            replaces_entry=previous.entry_uuid if previous else None,
            options=options,
        )
        element, _, error = self._dmp_post("repository", ITI41, body, action, attachments, client)
        if error:
            result = ActionResult(ActionStatus.FAILED, error)
        else:
            result = self._registry_result(
                element, "document versé au DMP", {"unique_id": unique_id, "entry_uuid": entry_uuid}
            )
        if result.status is ActionStatus.DONE:
            set_id = M.parse_xml(cda).find(f"{{{M.HL7}}}setId").get("root", "")
            sent[unique_id] = SentDocument(
                unique_id, entry_uuid, action.document_kind, set_id, previous.version + 1 if previous else 1, data=cda
            )
            if previous is not None and not self.has("remplacement-sans-rplc"):
                previous.status = E.STATUS_DEPRECATED
        if self.has("ignore-dmp-ferme") and result.status is ActionStatus.FAILED:
            return ActionResult(
                ActionStatus.DONE, "document versé au DMP", {"hidden_failure": result.detail, "unique_id": unique_id}
            )
        return result

    # ITI-18 / ITI-43 -----------------------------------------------------------------------------
    def dmp_find(self, action: DmpQuery) -> ActionResult:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        body = M.build_find_documents(action.person, with_status=not self.has("recherche-sans-statut"))
        element, _, error = self._dmp_post("registry", ITI18, body, action)
        if error:
            return ActionResult(ActionStatus.FAILED, error)
        found = [
            {
                "entry_uuid": e.get("id"),
                "unique_id": E.external_id(e, E.DOC_UNIQUE_ID),
                "typeCode": E.classification_code(e, E.TYPE_CODE),
                "status": e.get("status"),
                "repository": next(iter(E.slot(e, "repositoryUniqueId")), None),
            }
            for e in element.iter(E.rim("ExtrinsicObject"))
        ]
        result = self._registry_result(element, f"{len(found)} document(s) trouvé(s) dans le DMP", {"documents": found})
        if result.status is ActionStatus.DONE:
            for item in found:
                if item["unique_id"] in self._dmp_sent() and item["repository"]:
                    self._dmp_repository = item["repository"]
        return result

    def dmp_retrieve(self, action: DmpQuery) -> ActionResult:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        if not action.unique_id:
            return ActionResult(ActionStatus.ERROR, "identifiant du document à récupérer manquant")
        repository = getattr(self, "_dmp_repository", None)
        if repository is None:
            found = self.dmp_find(DmpQuery(action.person, action.establishment))
            repository = next(
                (d["repository"] for d in found.data.get("documents", []) if d["unique_id"] == action.unique_id), None
            )
        if repository is None:
            return ActionResult(ActionStatus.FAILED, f"document {action.unique_id} introuvable dans le DMP")
        element, parts, error = self._dmp_post(
            "repository", ITI43, M.build_retrieve(repository, action.unique_id), action
        )
        if error:
            return ActionResult(ActionStatus.FAILED, error)
        documents = {}
        for item in element.iter(f"{{{E.XDSB}}}DocumentResponse"):
            include = item.find(f"{{{E.XDSB}}}Document/{{{M.XOP}}}Include")
            cid = include.get("href", "")[4:] if include is not None else ""
            documents[item.findtext(f"{{{E.XDSB}}}DocumentUniqueId") or ""] = parts.get(cid, b"")
        result = self._registry_result(
            element, f"{len(documents)} document(s) récupéré(s)", {"retrieved": list(documents)}
        )
        if result.status is ActionStatus.DONE:
            content = documents.get(action.unique_id, b"")
            sent = self._dmp_sent().get(action.unique_id)
            same = sent is not None and sent.data == content
            return ActionResult(
                ActionStatus.DONE, result.detail, {**result.data, "identical": same, "size": len(content)}
            )
        return result

    # ITI-57 --------------------------------------------------------------------------------------
    def dmp_update(self, action: DmpUpdate) -> ActionResult:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        sent = self._dmp_sent().get(action.unique_id)
        if sent is None:
            return ActionResult(ActionStatus.ERROR, f"le DUI n'a pas versé de document {action.unique_id}")
        change = "invisible-patient" if action.change == "masquer" and self.has("masquage-errone") else action.change
        if change in CHANGES:
            body = M.build_confidentiality_update(
                action.person,
                action.establishment,
                sent.entry_uuid,
                sent.metadata_version,
                sent.unique_id,
                DOCUMENT_TYPES[sent.kind].code,
                CHANGES[change],
            )
        elif change in STATUS_CHANGES:
            body = M.build_status_update(
                action.person, action.establishment, sent.entry_uuid, sent.status, STATUS_CHANGES[change]
            )
        else:
            return ActionResult(
                ActionStatus.ERROR,
                f"modification inconnue {action.change!r} ({', '.join([*CHANGES, *STATUS_CHANGES])})",
            )
        element, _, error = self._dmp_post("registry", ITI57, body, action)
        if error:
            return ActionResult(ActionStatus.FAILED, error)
        done = {
            "masquer": "masqué aux professionnels",
            "demasquer": "rendu visible aux professionnels",
            "invisible-patient": "rendu invisible à la personne",
            "archiver": "archivé",
            "supprimer": "supprimé",
        }.get(action.change, action.change)
        result = self._registry_result(element, f"document {done} dans le DMP", {"unique_id": sent.unique_id})
        if result.status is ActionStatus.DONE:
            if change in CHANGES:
                sent.metadata_version += 1
            else:
                sent.status = STATUS_CHANGES[change]
        return result


def _other_patient(person: Person) -> Person:
    """Another (valid) test patient: the same person with the next order number in the INS."""
    number = person.ins.number
    order = int(number[-3:]) % 999 + 1
    other = number[:-3] + f"{order:03d}"
    return replace(person, ins=INS(other, compute_key(other), person.ins.oid))


def _file_stamp(path: str) -> tuple[str, int, int]:
    """A credential file as a cache key: its path, modification time and size (a re-issued PKI is a new key)."""
    try:
        stat = os.stat(path)
    except OSError:
        return path, 0, -1
    return path, stat.st_mtime_ns, stat.st_size


class _DmpSession:
    """What the DUI keeps between its DMP requests: TLS client contexts and recently signed VIHF assertions.

    Per driver instance (no module state), thread-safe: the simulation drives one DUI from several threads. An
    assertion is kept as bytes and parsed again for each request (an lxml element moves when appended to an
    envelope, so one element cannot be shared between requests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: dict[tuple, ssl.SSLContext] = {}
        self._assertions: OrderedDict[tuple, tuple[float, bytes]] = OrderedDict()

    def tls_context(self, ca_bundle: str, credentials: M.OrgCredentials) -> ssl.SSLContext:
        key = (_file_stamp(ca_bundle), _file_stamp(credentials.cert_path), _file_stamp(credentials.key_path))
        with self._lock:
            context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=ca_bundle)
            context.load_cert_chain(credentials.cert_path, credentials.key_path)
            with self._lock:
                if len(self._contexts) >= 16:  # credentials re-issued many times over: start afresh
                    self._contexts.clear()
                self._contexts[key] = context
        return context

    def vihf(
        self, person: Person, establishment: Establishment, credentials: M.OrgCredentials, *, sign: bool
    ) -> etree._Element:
        """A VIHF for this person and structure: the one signed less than :data:`VIHF_REUSE` seconds ago, else a new one."""
        key = (
            person.ins.value,
            person.ins.oid,
            establishment.finess,
            sign,
            _file_stamp(credentials.cert_path),
            _file_stamp(credentials.key_path),
        )
        now = time.monotonic()
        with self._lock:
            kept = self._assertions.get(key)
            if kept is not None and now - kept[0] < VIHF_REUSE:
                self._assertions.move_to_end(key)
                return M.parse_xml(kept[1])
        assertion = M.build_vihf(person, establishment, credentials, sign=sign)
        with self._lock:
            self._assertions[key] = (now, etree.tostring(assertion))
            self._assertions.move_to_end(key)
            while len(self._assertions) > VIHF_CACHE_SIZE:
                self._assertions.popitem(last=False)
        return assertion
