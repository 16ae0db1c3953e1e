"""INSi actions of the reference DUI: search a person's INS by traits, verify it, qualify the identity (RNIV).

The DUI calls the INSi teleservice (WSDL ``DESIR_ICIR_EXP_1.5.0``, operation ``rechercherInsAvecTraitsIdentite``,
SOAP 1.2 with ``action`` in the Content-Type and ``wsa:Action``) over HTTPS with mutual TLS, presenting its
``INSI-AUTO`` organisation certificate, with its own ``ContexteBAM`` / ``ContexteLPS`` headers (software IDAM,
name, version, instance; ``Emetteur`` = the establishment's FINESS). What a conformant DUI does with the answers:

- CR 00: the INS returned is *récupéré*; a provisional NIA (OID 1.2.250.1.213.1.4.9) is never used as an INS;
- CR 01: no identity — the identity stays provisional;
- CR 02: several identities — the search is refined with the birth place when the DUI knows it;
- verification: re-send the complete traits returned (``TIQ``) and compare the INS; an active INS different from
  the one held, whose history holds it, replaces it (and is verified in turn);
- a SOAP fault (desir_550, desir_560, insi_102...) or an HTTP error is reported to the user as a failure;
- identity status (RNIV volet 1): *récupérée* for an INS obtained from INSi (search or verification), *validée* for
  traits its user checked against a high-trust identity document (``InsiSearch.identity_document``), *qualifiée* for
  both, after checking that the INSi traits match the document; an INS goes into an MSSanté message only for a
  qualified identity. The DUI reports the document checked (``piece_identite``) and the status it records.

Defects of the faulty DUI for this capability are declared here and checked with ``self.has(...)``.
"""

from __future__ import annotations

import http.client
import ssl
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from harness import __version__
from harness.fields.identity import OID_INS_NIA
from harness.fields.identity_status import document_kind
from harness.fields.testdata import Person
from harness.sut.base import (
    ActionResult,
    ActionStatus,
    Defect,
    InsiSearch,
    InsiTraits,
    InsiVerify,
    MssanteSend,
    SutEnvironment,
)
from harness.validators.insi import (
    ACTION_TRAITS,
    InsiFault,
    InsiResult,
    normalise_trait,
    parse_result,
)

INSI_DEFECTS = (
    Defect("idam-inconnu", "se présente à INSi avec un numéro d'autorisation logiciel (IDAM) non attribué"),
    Defect("sans-certificat-client", "appelle INSi sans certificat client (pas d'authentification mutuelle TLS)"),
    Defect(
        "certificat-non-insi", "appelle INSi avec le certificat d'organisation de l'établissement au lieu d'INSI-AUTO"
    ),
    Defect("contexte-lps-absent", "n'envoie pas l'en-tête ContexteLPS (identification du logiciel)"),
    Defect("soap-11", "appelle INSi avec une enveloppe SOAP 1.1 (text/xml, SOAPAction) au lieu de SOAP 1.2"),
    Defect("version-contexte", "déclare ContexteBAM en Version 01_01 au lieu de 01_02 (schéma CTXBAM V01_02)"),
    Defect("ignore-cr02", "sur un CR 02 (plusieurs identités), crée une identité provisoire sans affiner la recherche"),
    Defect("nia-comme-ins", "enregistre un NIA provisoire comme un INS récupéré"),
    Defect(
        "ignore-historique", "garde l'ancien INS quand INSi renvoie un INS actif différent avec l'ancien en historique"
    ),
    Defect("qualifiee-sans-insi", "déclare qualifiée une identité dont la pièce est contrôlée, sans appeler INSi"),
    Defect("qualifiee-sans-piece", "déclare qualifiée une identité après deux appels INSi, sans contrôle de pièce"),
    Defect("ignore-faute-insi", "traite une faute SOAP du téléservice INSi comme « aucune identité trouvée »"),
    Defect("envoi-sans-qualification", "utilise l'INS dans un envoi MSSanté sans que l'identité soit qualifiée"),
)

#: The reference DUI's software identification in ContexteLPS (its IDAM is authorised by the INSi simulator).
REFERENCE_IDAM = "SOCLE-HARNESS-DUI-REF"
UNKNOWN_IDAM = "LOGICIEL-NON-HOMOLOGUE"
SOFTWARE_NAME = "socle-harness-dui-reference"
INSI_CERTIFICATE = "INSI-AUTO"
INSI_TIMEOUT = 15.0
SOAP12_ENVELOPE = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
_INSTANCE_NAMESPACE = uuid.UUID("6f1c1a5e-8a86-4a8e-9d0b-5c0a1e0f2b11")


def traits_of_person(person: Person) -> InsiTraits:
    """The traits a DUI holds for a fixture person (birth place from the test INS's department and commune)."""
    place = person.ins.number[5:10]
    return InsiTraits(
        birth_name=normalise_trait(person.family),
        first_names=tuple(normalise_trait(person.given).split(" ")),
        sex=person.sex,
        birth_date=person.birth_date.isoformat(),
        birth_place=place if place[:2].isdigit() or place[:2] in ("2A", "2B") else None,
    )


def traits_from_tiq(tiq: dict[str, str]) -> InsiTraits:
    """The complete reference traits of a CR 00 answer (what a verification re-sends)."""
    return InsiTraits(
        birth_name=tiq.get("NomNaissance", ""),
        first_names=tuple((tiq.get("ListePrenom") or tiq.get("Prenom") or "").split(" ")),
        sex=tiq.get("Sexe", ""),
        birth_date=tiq.get("DateNaissance", ""),
        birth_place=tiq.get("LieuNaissance"),
    )


@dataclass(frozen=True)
class InsiCall:
    """One INSi call as the DUI saw it: HTTP status, the parsed answer (result or fault), or a transport error."""

    status: int | None
    result: InsiResult | None = None
    fault: InsiFault | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.fault is not None:
            return f"faute {self.fault.code}/{self.fault.subcode or '-'} {self.fault.error_code}: {self.fault.error_text or self.fault.reason}"
        if self.result is not None:
            return f"CR {self.result.code} {self.result.label}"
        return f"erreur {self.error or ''} (HTTP {self.status})".strip()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_request(
    traits: InsiTraits,
    *,
    emitter: str,
    idam: str,
    instance: str,
    message_id: str,
    software_name: str = SOFTWARE_NAME,
    version: str = __version__,
    with_lps: bool = True,
    with_place: bool = False,
    all_first_names: bool = False,
    bam_version: str = "01_02",
    soap_envelope: str = SOAP12_ENVELOPE,
) -> bytes:
    """A ``rechercherInsAvecTraitsIdentite`` request (SOAP 1.2). A search sends the first first name; a
    verification (``all_first_names``) sends every first name, one ``Prenom`` each, and the birth place."""
    e = escape
    bam = (
        f'<ctxbam:ContexteBAM xmlns:ctxbam="urn:siram:bam:ctxbam" Version="{e(bam_version)}">'
        f"<ctxbam:Id>{uuid.uuid4()}</ctxbam:Id><ctxbam:Temps>{_now()}</ctxbam:Temps>"
        f"<ctxbam:Emetteur>{e(emitter)}</ctxbam:Emetteur><ctxbam:COUVERTURE/></ctxbam:ContexteBAM>"
    )
    lps = (
        (
            '<ctxlps:ContexteLPS xmlns:ctxlps="urn:siram:lps:ctxlps" Nature="CTXLPS" Version="01_00">'
            f"<ctxlps:Id>{uuid.uuid4()}</ctxlps:Id><ctxlps:Temps>{_now()}</ctxlps:Temps>"
            f"<ctxlps:Emetteur>{e(emitter)}</ctxlps:Emetteur><ctxlps:LPS>"
            f'<ctxlps:IDAM R="4">{e(idam)}</ctxlps:IDAM><ctxlps:Version>{e(version)}</ctxlps:Version>'
            f"<ctxlps:Instance>{e(instance)}</ctxlps:Instance><ctxlps:Nom>urn:lps:{e(software_name)}:{e(version)}</ctxlps:Nom>"
            "</ctxlps:LPS></ctxlps:ContexteLPS>"
        )
        if with_lps
        else ""
    )
    wsa = (
        f'<wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">{ACTION_TRAITS}</wsa:Action>'
        f'<wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">uuid:{e(message_id)}</wsa:MessageID>'
    )
    first_names = traits.first_names if all_first_names else traits.first_names[:1]
    place = traits.birth_place if (with_place or all_first_names) and traits.birth_place else None
    body = (
        '<RECSANSVITALE xmlns="http://www.cnamts.fr/INSiRecSans">'
        f"<NomNaissance>{e(traits.birth_name)}</NomNaissance>"
        + "".join(f"<Prenom>{e(name)}</Prenom>" for name in first_names)
        + f"<Sexe>{e(traits.sex)}</Sexe><DateNaissance>{e(traits.birth_date)}</DateNaissance>"
        + (f"<LieuNaissance>{e(place)}</LieuNaissance>" if place else "")
        + "</RECSANSVITALE>"
    )
    envelope = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soap:Envelope xmlns:soap="{soap_envelope}">'
        f"<soap:Header>{bam}{lps}{wsa}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
    return envelope.encode("utf-8")


def post_soap(
    url: str, body: bytes, context: ssl.SSLContext, *, timeout: float = INSI_TIMEOUT, soap11: bool = False
) -> InsiCall:
    """POST a SOAP 1.2 request (SOAP 1.1 binding — ``text/xml`` and ``SOAPAction`` — with ``soap11``, the faulty DUI's
    way) and parse the answer (the connection is closed after the call)."""
    parts = urlsplit(url)
    connection = http.client.HTTPSConnection(
        parts.hostname or "127.0.0.1", parts.port or 443, context=context, timeout=timeout
    )
    try:
        connection.request(
            "POST",
            parts.path or "/",
            body=body,
            headers=(
                {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION_TRAITS}"'}
                if soap11
                else {"Content-Type": f'application/soap+xml; charset=utf-8; action="{ACTION_TRAITS}"'}
            ),
        )
        response = connection.getresponse()
        data = response.read()
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return InsiCall(None, error=f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()
    parsed = parse_result(data) if data else None
    if isinstance(parsed, InsiFault):
        return InsiCall(status, fault=parsed)
    if isinstance(parsed, InsiResult) and status == 200:
        return InsiCall(status, result=parsed)
    return InsiCall(status, error=f"réponse INSi inexploitable (HTTP {status})")


class InsiActions:
    """Mixin of :class:`harness.sut.reference.ReferenceDUI`."""

    env: SutEnvironment | None

    def has(self, defect: str) -> bool:  # provided by ReferenceDUI
        raise NotImplementedError

    def tls_context(self, certificate: str | None = None) -> ssl.SSLContext:  # provided by ReferenceDUI
        raise NotImplementedError

    # -------------------------------------------------------------------------------------- transport

    def _insi_context(self, certificate: str | None) -> ssl.SSLContext:
        assert self.env is not None
        name = certificate or INSI_CERTIFICATE
        if self.has("certificat-non-insi"):
            name = next((n for n in sorted(self.env.client_certificates) if not n.startswith("INSI-")), name)
        return self.tls_context(None if self.has("sans-certificat-client") else name)

    def _insi_call(
        self, traits: InsiTraits, establishment_finess: str, certificate: str | None, **shape: bool
    ) -> InsiCall:
        assert self.env is not None
        url = self.env.endpoints.get("insi", {}).get("soap")
        if not url:
            return InsiCall(None, error="point d'accès INSi non configuré")
        body = build_request(
            traits,
            emitter=establishment_finess,
            idam=UNKNOWN_IDAM if self.has("idam-inconnu") else REFERENCE_IDAM,
            instance=str(uuid.uuid5(_INSTANCE_NAMESPACE, establishment_finess)),
            message_id=str(uuid.uuid4()),
            with_lps=not self.has("contexte-lps-absent"),
            bam_version="01_01" if self.has("version-contexte") else "01_02",
            soap_envelope=SOAP11_ENVELOPE if self.has("soap-11") else SOAP12_ENVELOPE,
            **shape,
        )
        return post_soap(url, body, self._insi_context(certificate), soap11=self.has("soap-11"))

    def _insi_failure(self, call: InsiCall, what: str) -> ActionResult:
        if self.has("ignore-faute-insi") and (call.fault is not None or call.error is not None):
            return ActionResult(
                ActionStatus.DONE,
                "aucune identité trouvée : identité provisoire créée",
                {"cr": "01", "ins": None, "statut": "provisoire", "hidden_failure": call.describe()},
            )
        data: dict[str, Any] = {"statut": "provisoire", "ins": None}
        if call.fault is not None:
            data.update(fault_code=call.fault.error_code, soap_code=call.fault.code, subcode=call.fault.subcode)
        return ActionResult(ActionStatus.FAILED, f"{what} impossible : {call.describe()}", data)

    # -------------------------------------------------------------------------------------- actions

    # -------------------------------------------------------------------------------------- identity records

    def _identity_records(self) -> dict[tuple[str, str], IdentityRecord]:
        records: dict[tuple[str, str], IdentityRecord] | None = getattr(self, "_insi_identities", None)
        if records is None:
            records = {}
            self._insi_identities = records
        return records

    def _record_identity(self, finess: str, ins: str, *, insi: bool = False, document: str | None = None) -> str:
        """Update the DUI's record of an identity; return the RNIV status it now shows."""
        records = self._identity_records()
        known = records.get((finess, ins), IdentityRecord())
        updated = IdentityRecord(insi=known.insi or insi, document=document or known.document)
        records[(finess, ins)] = updated
        return updated.status

    def _identity_status(self, finess: str, ins: str) -> str:
        return self._identity_records().get((finess, ins), IdentityRecord()).status

    # -------------------------------------------------------------------------------------- actions

    def search_ins(self, action: InsiSearch) -> ActionResult:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        finess = action.establishment.finess
        calls = [self._insi_call(action.traits, finess, action.client_certificate)]
        if (
            calls[-1].result is not None
            and calls[-1].result.code == "02"
            and action.traits.birth_place
            and not self.has("ignore-cr02")
        ):
            calls.append(self._insi_call(action.traits, finess, action.client_certificate, with_place=True))
        last = calls[-1]
        if last.result is None:
            return self._insi_failure(last, "recherche INSi")
        result = last.result
        data: dict[str, Any] = {
            "cr": result.code,
            "calls": [c.describe() for c in calls],
            "ins": None,
            "statut": "provisoire",
        }
        if result.code != "00" or result.active is None:
            label = "aucune identité trouvée" if result.code == "01" else "plusieurs identités trouvées"
            return ActionResult(ActionStatus.DONE, f"{label} : identité provisoire", data)
        active = result.active
        data.update(tiq=result.tiq, history=[h.value for h in result.history], oid=active.oid)
        if active.oid == OID_INS_NIA and not self.has("nia-comme-ins"):
            data["nia"] = active.value
            return ActionResult(ActionStatus.DONE, "identité provisoire (NIA) : pas d'INS utilisable", data)
        data.update(ins=active.value, statut=self._record_identity(finess, active.value, insi=True))
        return ActionResult(ActionStatus.DONE, f"INS récupéré : {active.value} ({active.oid})", data)

    def verify_ins(self, action: InsiVerify) -> ActionResult:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        held = action.ins
        finess = action.establishment.finess
        call = self._insi_call(action.traits, finess, action.client_certificate, all_first_names=True)
        if call.result is None:
            return self._insi_failure(call, "vérification INSi")
        result = call.result
        if result.code != "00" or result.active is None:
            return ActionResult(
                ActionStatus.FAILED,
                f"vérification INSi : CR {result.code} {result.label} — identité à contrôler",
                {"cr": result.code, "ins": held, "statut": "provisoire"},
            )
        active = result.active
        data: dict[str, Any] = {
            "cr": "00",
            "oid": active.oid,
            "history": [h.value for h in result.history],
            "tiq": result.tiq,
        }
        if active.oid == OID_INS_NIA:
            return ActionResult(
                ActionStatus.FAILED,
                "vérification INSi : identité provisoire (NIA)",
                {**data, "ins": None, "statut": "provisoire"},
            )
        if active.value == held or (held in {h.value for h in result.history} and self.has("ignore-historique")):
            status = self._record_identity(finess, held, insi=True)
            return ActionResult(
                ActionStatus.DONE, f"INS vérifié : {held}", {**data, "ins": held, "statut": status, "verifie": True}
            )
        if held in {h.value for h in result.history}:
            # The active INS replaces the former one; verify it in turn.
            again = self.verify_ins(
                replace(action, ins=active.value, oid=active.oid, traits=traits_from_tiq(result.tiq))
            )
            if again.status is not ActionStatus.DONE:
                return again
            return ActionResult(
                ActionStatus.DONE,
                f"INS mis à jour : {held} remplacé par l'INS actif {active.value}",
                {**again.data, "ancien_ins": held},
            )
        return ActionResult(
            ActionStatus.FAILED,
            f"vérification INSi : INS renvoyé {active.value} différent de l'INS enregistré {held}",
            {**data, "ins": held, "ins_renvoye": active.value, "statut": "provisoire"},
        )

    def qualify_identity(self, action: InsiSearch) -> ActionResult:
        """RNIV qualification: the user checks the traits against the document presented (validation), the DUI
        obtains the INS from INSi (one search, refined on CR 02) and checks that the INS traits match the document."""
        finess = action.establishment.finess
        checked = None if self.has("qualifiee-sans-piece") else document_kind(action.identity_document)
        if checked is not None and self.has("qualifiee-sans-insi"):
            return ActionResult(
                ActionStatus.DONE,
                "identité qualifiée (pièce contrôlée)",
                {"ins": None, "statut": "qualifiée", "piece_identite": checked},
            )
        found = self.search_ins(action)
        if found.status is not ActionStatus.DONE or not found.data.get("ins"):
            status = "validée" if checked else found.data.get("statut", "provisoire")
            return ActionResult(found.status, found.detail, {**found.data, "statut": status, "piece_identite": checked})
        ins = str(found.data["ins"])
        if self.has("qualifiee-sans-piece"):  # verifies the INS once more and calls that a qualification
            verified = self.verify_ins(
                InsiVerify(
                    traits=traits_from_tiq(found.data.get("tiq") or {}),
                    ins=ins,
                    oid=found.data.get("oid", ""),
                    establishment=action.establishment,
                    client_certificate=action.client_certificate,
                )
            )
            return ActionResult(verified.status, "identité qualifiée", {**verified.data, "statut": "qualifiée"})
        if checked is None:
            return ActionResult(
                ActionStatus.DONE,
                f"INS récupéré : {ins} — aucune pièce d'identité contrôlée, l'identité n'est pas qualifiée",
                {**found.data, "piece_identite": None},
            )
        mismatch = _tiq_mismatch(found.data.get("tiq") or {}, action.traits)
        if mismatch:
            return ActionResult(
                ActionStatus.FAILED,
                f"traits INS incohérents avec la pièce d'identité ({mismatch}) : identité à contrôler",
                {**found.data, "piece_identite": checked},
            )
        status = self._record_identity(finess, ins, insi=True, document=checked)
        return ActionResult(
            ActionStatus.DONE,
            f"identité {status} : pièce {checked} contrôlée, INS {ins} récupéré par INSi",
            {**found.data, "statut": status, "piece_identite": checked},
        )

    def send_mssante_qualified(self, action: MssanteSend) -> ActionResult:
        finess, ins = action.establishment.finess, action.person.ins.value
        qualification: dict[str, Any] = {}
        if not self.has("envoi-sans-qualification"):
            record = self._identity_records().get((finess, ins), IdentityRecord())
            if record.document is not None and not record.insi:
                found = self.search_ins(InsiSearch(traits_of_person(action.person), action.establishment))
                qualification = dict(found.data)
            status = self._identity_status(finess, ins)
            if status != "qualifiée":
                return ActionResult(
                    ActionStatus.FAILED,
                    f"envoi refusé : l'identité de {action.person.display_name} est {status}, pas qualifiée "
                    "(pièce d'identité contrôlée et INS obtenu par INSi requis, RNIV)",
                    {"statut": status, "qualification": qualification},
                )
        sent = self.send_mssante(action)  # type: ignore[attr-defined]  # MssanteActions, same ReferenceDUI
        return ActionResult(
            sent.status,
            sent.detail,
            {**sent.data, "statut": self._identity_status(finess, ins), "qualification": qualification},
        )


@dataclass(frozen=True)
class IdentityRecord:
    """What the DUI holds about an identity's trust (RNIV): INS obtained from INSi, document checked."""

    insi: bool = False
    document: str | None = None

    @property
    def status(self) -> str:
        if self.insi and self.document:
            return "qualifiée"
        if self.insi:
            return "récupérée"
        return "validée" if self.document else "provisoire"


def _tiq_mismatch(tiq: dict[str, str], traits: InsiTraits) -> str | None:
    """Which INS traits differ from the document's (birth name, first first name, sex, birth date)."""
    first_names = (tiq.get("ListePrenom") or tiq.get("Prenom") or "").split()
    pairs = (
        ("nom de naissance", tiq.get("NomNaissance", ""), traits.birth_name),
        ("premier prénom", first_names[0] if first_names else "", traits.first_names[0] if traits.first_names else ""),
        ("sexe", tiq.get("Sexe", ""), traits.sex),
        ("date de naissance", tiq.get("DateNaissance", ""), traits.birth_date),
    )
    wrong = [label for label, a, b in pairs if normalise_trait(a) != normalise_trait(b)]
    return ", ".join(wrong) or None
