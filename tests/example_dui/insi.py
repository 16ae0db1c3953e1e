"""Example DUI, INSi: search a person's INS by traits, verify the INS held, qualify the identity (RNIV), and send
by MSSanté only with a qualified INS.

Specifications followed: the CNAM INSi teleservice (WSDL ``DESIR_ICIR_EXP_1.5.0``, operation
``rechercherInsAvecTraitsIdentite``, SOAP 1.2 document/literal; request ``RECSANSVITALE`` of
``http://www.cnamts.fr/INSiRecSans``, answer ``RESULTAT`` of ``http://www.cnamts.fr/INSiResultat``; headers
``ContexteBAM`` V01_02 and ``ContexteLPS`` V01_00 identifying the establishment (``Emetteur`` = FINESS) and the
software (IDAM, name, version, instance); faults ``siram:Erreur``), SOAP 1.2 Part 1 and Part 2 (HTTP binding:
``application/soap+xml`` with the ``action`` parameter), WS-Addressing 1.0 (``Action``, ``MessageID``), and the
Référentiel national d'identitovigilance (RNIV) for the identity statuses:

- CR 00: the INS returned is *récupéré*; a NIA (OID 1.2.250.1.213.1.4.9) is a provisional identity, never an INS;
- CR 01: no identity; CR 02: several identities — the search is refined with the birth place;
- verification: the complete traits are sent again and the INS returned compared with the INS held; an active INS
  whose history holds the INS held replaces it (and is verified in turn);
- RNIV statuses: an INS obtained from INSi (search or verification) is *récupérée*; traits the user checked on a
  high-trust identity document (``identity_document``: CN, PA, AN, LE) are *validée*; both = *qualifiée*, the only
  status whose INS goes into an MSSanté message (``piece_identite`` and ``statut`` are reported);
- a SOAP fault or an HTTP error is shown to the user as a failure.

The call uses mutual TLS with the ``INSI-AUTO`` organisation certificate (or ``client_certificate`` when the
harness names another one). The DUI's IDAM (authorisation number given by the CNAM) is :data:`IDAM`: the harness
must declare it in ``[settings.insi] authorised_idam``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from lxml import etree
from lxml.builder import ElementMaker

from example_dui import Outcome, Session
from example_dui.mssante import mssante_send

IDAM = "EXEMPLE-DUI-SOCLE"  # the example DUI's software authorisation number (declare it to the simulator)
SOFTWARE, VERSION = "exemple-dui", "1.0.0"
CERTIFICATE = "INSI-AUTO"
ACTION = "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite"
OID_NIA = "1.2.250.1.213.1.4.9"
SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS = {"soap": SOAP, "res": "http://www.cnamts.fr/INSiResultat", "siram": "urn:siram"}
E = {
    "soap": ElementMaker(namespace=SOAP, nsmap={"soap": SOAP}),
    "bam": ElementMaker(namespace="urn:siram:bam:ctxbam", nsmap={"ctxbam": "urn:siram:bam:ctxbam"}),
    "lps": ElementMaker(namespace="urn:siram:lps:ctxlps", nsmap={"ctxlps": "urn:siram:lps:ctxlps"}),
    "wsa": ElementMaker(
        namespace="http://www.w3.org/2005/08/addressing", nsmap={"wsa": "http://www.w3.org/2005/08/addressing"}
    ),
    "rec": ElementMaker(namespace="http://www.cnamts.fr/INSiRecSans", nsmap={None: "http://www.cnamts.fr/INSiRecSans"}),
}
# No DTD, no entities, no network: an answer is data, never instructions to the parser.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True)


class InsiFailure(Exception):
    """The call failed (SOAP fault, HTTP error, unreadable answer): shown to the user."""


# -- request --------------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_request(
    session: Session, traits: dict[str, Any], finess: str, *, verification: bool, with_place: bool
) -> bytes:
    """A ``rechercherInsAvecTraitsIdentite`` envelope. A search sends the first first name; a verification sends
    every first name (one ``Prenom`` each) and the birth place."""
    bam, lps, wsa, rec = E["bam"], E["lps"], E["wsa"], E["rec"]
    instance = session.state.setdefault("insi", {}).setdefault("instance", str(uuid.uuid4()))
    first_names = traits["first_names"] if verification else traits["first_names"][:1]
    place = traits.get("birth_place") if (verification or with_place) else None
    header = E["soap"].Header(
        bam.ContexteBAM(
            bam.Id(str(uuid.uuid4())), bam.Temps(_now()), bam.Emetteur(finess), bam.COUVERTURE(), Version="01_02"
        ),
        lps.ContexteLPS(
            lps.Id(str(uuid.uuid4())),
            lps.Temps(_now()),
            lps.Emetteur(finess),
            lps.LPS(
                lps.IDAM(IDAM, R="4"),
                lps.Version(VERSION),
                lps.Instance(instance),
                lps.Nom(f"urn:lps:{SOFTWARE}:{VERSION}"),
            ),
            Nature="CTXLPS",
            Version="01_00",
        ),
        wsa.Action(ACTION),
        wsa.MessageID(f"uuid:{uuid.uuid4()}"),
    )
    body = rec.RECSANSVITALE(
        rec.NomNaissance(traits["birth_name"]),
        *(rec.Prenom(name) for name in first_names),
        rec.Sexe(traits["sex"]),
        rec.DateNaissance(traits["birth_date"]),
        *([rec.LieuNaissance(place)] if place else []),
    )
    return etree.tostring(E["soap"].Envelope(header, E["soap"].Body(body)), xml_declaration=True, encoding="UTF-8")


# -- answer ---------------------------------------------------------------------------------------------------
def _ins(entry: etree._Element) -> dict[str, str]:
    number = entry.findtext("res:IdIndividu/res:NumIdentifiant", "", NS)
    return {"ins": number + entry.findtext("res:IdIndividu/res:Cle", "", NS), "oid": entry.findtext("res:OID", "", NS)}


def parse_answer(status: int, data: bytes) -> dict[str, Any]:
    """``RESULTAT`` as a dict (cr, label, ins, oid, history, tiq); a SOAP fault raises :class:`InsiFailure`."""
    try:
        root = etree.fromstring(data, PARSER)
    except etree.XMLSyntaxError:
        raise InsiFailure(f"réponse INSi illisible (HTTP {status})") from None
    if root.getroottree().docinfo.doctype or root.tag != f"{{{SOAP}}}Envelope":
        raise InsiFailure(f"réponse INSi qui n'est pas une enveloppe SOAP 1.2 (HTTP {status})")
    fault = root.find("soap:Body/soap:Fault", NS)
    if fault is not None:
        error = fault.find("soap:Detail/siram:Erreur", NS)
        code = error.get("code") if error is not None else fault.findtext("soap:Code/soap:Value", "", NS)
        text = (error.text if error is not None else None) or fault.findtext("soap:Reason/soap:Text", "", NS)
        raise InsiFailure(f"faute INSi {code} : {text.strip()}")
    result = root.find("soap:Body/res:RESULTAT", NS)
    if status != 200 or result is None:
        raise InsiFailure(f"réponse INSi inattendue (HTTP {status})")
    answer: dict[str, Any] = {
        "cr": result.findtext("res:CR/res:CodeCR", "", NS),
        "label": result.findtext("res:CR/res:LibelleCR", "", NS),
    }
    active, tiq = result.find("res:INDIVIDU/res:INSACTIF", NS), result.find("res:INDIVIDU/res:TIQ", NS)
    if answer["cr"] == "00":
        if active is None or tiq is None:
            raise InsiFailure("réponse INSi CR 00 sans INS actif ni traits de référence")
        answer.update(_ins(active))
        answer["history"] = [_ins(h)["ins"] for h in result.findall("res:INDIVIDU/res:INSHISTO", NS)]
        answer["tiq"] = {etree.QName(t).localname: (t.text or "").strip() for t in tiq if isinstance(t.tag, str)}
    elif answer["cr"] not in ("01", "02"):
        raise InsiFailure(f"réponse INSi inexploitable (CR {answer['cr']!r})")
    return answer


def call_insi(
    session: Session,
    body: dict[str, Any],
    traits: dict[str, Any],
    *,
    verification: bool = False,
    with_place: bool = False,
) -> dict[str, Any]:
    """POST one request over mutual TLS and read the answer."""
    request = build_request(
        session, traits, body["establishment"]["finess"], verification=verification, with_place=with_place
    )
    try:
        context = session.ssl_context(body.get("client_certificate") or CERTIFICATE)
    except (KeyError, OSError) as exc:
        raise InsiFailure(f"certificat client INSi indisponible : {exc}") from None
    try:
        with httpx.Client(verify=context, timeout=20) as http:
            response = http.post(
                session.endpoint("insi", "soap"),
                content=request,
                headers={"Content-Type": f'application/soap+xml; charset=utf-8; action="{ACTION}"'},
            )
    except httpx.HTTPError as exc:
        raise InsiFailure(f"téléservice INSi injoignable : {type(exc).__name__}") from None
    if not response.headers.get("content-type", "").startswith("application/soap+xml"):
        raise InsiFailure(f"téléservice INSi indisponible (HTTP {response.status_code})")
    return parse_answer(response.status_code, response.content)


def traits_from_tiq(tiq: dict[str, str]) -> dict[str, Any]:
    """The reference traits INSi returned: what the DUI records, and re-sends to verify."""
    return {
        "birth_name": tiq.get("NomNaissance", ""),
        "first_names": (tiq.get("ListePrenom") or tiq.get("Prenom", "")).split(),
        "sex": tiq.get("Sexe", ""),
        "birth_date": tiq.get("DateNaissance", ""),
        "birth_place": tiq.get("LieuNaissance"),
    }


def _failed(what: str, exc: InsiFailure) -> Outcome:
    return {"status": "failed", "detail": f"{what} impossible : {exc}", "data": {"ins": None, "statut": "provisoire"}}


# -- actions --------------------------------------------------------------------------------------------------
def insi_search(session: Session, body: dict[str, Any]) -> Outcome:
    """Search by traits; on CR 02, refine with the birth place."""
    traits = body["traits"]
    try:
        answer = call_insi(session, body, traits)
        if answer["cr"] == "02" and traits.get("birth_place"):
            answer = call_insi(session, body, traits, with_place=True)
    except InsiFailure as exc:
        return _failed("recherche INSi", exc)
    data: dict[str, Any] = {"ins": None, "oid": None, "statut": "provisoire", "cr": answer["cr"]}
    if answer["cr"] != "00":
        label = "aucune identité trouvée" if answer["cr"] == "01" else "plusieurs identités trouvées"
        return {"status": "done", "detail": f"{label} : identité provisoire, sans INS", "data": data}
    if answer["oid"] == OID_NIA:
        return {"status": "done", "detail": "identité provisoire (NIA) : pas d'INS utilisable", "data": data}
    status = record_identity(session, body["establishment"]["finess"], answer["ins"], insi=True)
    data.update(ins=answer["ins"], oid=answer["oid"], statut=status, traits=traits_from_tiq(answer["tiq"]))
    return {"status": "done", "detail": f"INS récupéré : {answer['ins']}", "data": data}


def insi_verify(session: Session, body: dict[str, Any]) -> Outcome:
    """Send the complete traits again and compare the INS returned with the INS held."""
    held = body["ins"]
    try:
        answer = call_insi(session, body, body["traits"], verification=True)
    except InsiFailure as exc:
        return _failed("vérification INSi", exc)
    data: dict[str, Any] = {"ins": held, "oid": body["oid"], "statut": "provisoire", "verifie": False}
    if answer["cr"] != "00" or answer["oid"] == OID_NIA:
        why = "identité provisoire (NIA)" if answer["cr"] == "00" else f"CR {answer['cr']} {answer['label']}"
        return {"status": "failed", "detail": f"vérification INSi : {why}, identité à contrôler", "data": data}
    if answer["ins"] == held:
        status = record_identity(session, body["establishment"]["finess"], held, insi=True)
        data.update(oid=answer["oid"], statut=status, verifie=True)
        return {"status": "done", "detail": f"INS vérifié : {held} (identité {status})", "data": data}
    if held in answer["history"]:  # the INS held is a former one: the active INS replaces it, verified in turn
        active = {"ins": answer["ins"], "oid": answer["oid"], "traits": traits_from_tiq(answer["tiq"])}
        again = insi_verify(session, {**body, **active})
        if again["status"] == "done":
            again["detail"] = f"INS {held} remplacé par l'INS actif {answer['ins']} ; " + again["detail"]
            again["data"]["ancien_ins"] = held
        return again
    return {
        "status": "failed",
        "detail": f"vérification INSi : INS renvoyé {answer['ins']} différent de l'INS enregistré {held}",
        "data": data,
    }


#: RNIV high-trust identity documents (FR Core fr-core-vs-mode-validation-identity-ins).
DOCUMENTS = {"CN", "PA", "AN", "LE"}


def insi_qualify(session: Session, body: dict[str, Any]) -> Outcome:
    """RNIV qualification: the user checks the traits against the document presented, the INS comes from INSi."""
    document = body.get("identity_document")
    checked = document if document in DOCUMENTS else None
    found = insi_search(session, body)
    if found["status"] != "done" or not found["data"]["ins"]:
        found["data"].update(piece_identite=checked, statut="validée" if checked else found["data"]["statut"])
        return found
    data = found["data"]
    if checked is None:
        data["piece_identite"] = None
        return {"status": "done", "detail": f"INS récupéré : {data['ins']} — aucune pièce contrôlée", "data": data}
    ins_traits, held = data["traits"], body["traits"]
    same = [
        ins_traits["birth_name"] == held["birth_name"].upper(),
        ins_traits["first_names"][:1] == [n.upper() for n in held["first_names"][:1]],
        ins_traits["sex"] == held["sex"],
        ins_traits["birth_date"] == held["birth_date"],
    ]
    if not all(same):
        return {"status": "failed", "detail": "traits INS incohérents avec la pièce d'identité", "data": data}
    status = record_identity(session, body["establishment"]["finess"], data["ins"], document=checked)
    data.update(statut=status, piece_identite=checked)
    return {"status": "done", "detail": f"identité {status} (pièce {checked}, INS {data['ins']})", "data": data}


def record_identity(session: Session, finess: str, ins: str, *, insi: bool = False, document: str | None = None) -> str:
    """Keep what the DUI knows of an identity's trust; return its RNIV status."""
    records = session.state.setdefault("insi", {}).setdefault("identities", {})
    known = records.get((finess, ins), {"insi": False, "document": None})
    known = {"insi": known["insi"] or insi, "document": document or known["document"]}
    records[(finess, ins)] = known
    return identity_status(session, finess, ins)


def identity_status(session: Session, finess: str, ins: str) -> str:
    known = session.state.get("insi", {}).get("identities", {}).get((finess, ins), {})
    insi, document = bool(known.get("insi")), bool(known.get("document"))
    return {(True, True): "qualifiée", (True, False): "récupérée", (False, True): "validée"}.get(
        (insi, document), "provisoire"
    )


def mssante_send_qualified(session: Session, body: dict[str, Any]) -> Outcome:
    """Send by MSSanté only for a qualified identity (an INSi search first when only the document was checked)."""
    person, finess = body["person"], body["establishment"]["finess"]
    qualification: dict[str, Any] = {}
    status = identity_status(session, finess, person["ins"])
    if status == "validée":
        found = insi_search(session, {"traits": person["traits"], "establishment": body["establishment"]})
        qualification = {"status": found["status"], "detail": found["detail"], **found["data"]}
        status = identity_status(session, finess, person["ins"])
    if status != "qualifiée":
        return {
            "status": "failed",
            "detail": f"envoi refusé : identité {status}, pas qualifiée (RNIV)",
            "data": {"statut": status, "qualification": qualification},
        }
    sent = mssante_send(session, body)
    return {**sent, "data": {**sent.get("data", {}), "statut": status, "qualification": qualification}}


ACTIONS = {
    "insi-search": insi_search,
    "insi-verify": insi_verify,
    "insi-qualify": insi_qualify,
    "mssante-send-qualified": mssante_send_qualified,
}
