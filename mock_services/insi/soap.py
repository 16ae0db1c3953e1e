"""INSi SOAP 1.2 responses and faults, byte for byte in the shape the CNAM service sends.

``RESULTAT`` follows ``INSi_RESULTAT_INS.xsd`` (element order IdIndividu, OID, DateDeb, DateFin) inside the envelope
layout of the public qualification responses (``soap:Envelope`` / ``S:Body`` / default-namespace ``RESULTAT`` with
the ``ns2``/``ns3`` declarations). Faults follow SOAP 1.2 Part 1 §5.4 with the CNAM detail ``siram:Erreur``
(``schema_faultSOAP_V01_01.xsd``: attributes ``code``, ``severite``, ``messageID``), as in the public samples:

    env:Sender   / env:siram_100 / desir_550  unknown software authorisation number (IDAM)
    env:Sender   / env:siram_100 / desir_560  client certificate CN is not INSI-AUTO / INSI-MANU
    env:Receiver / env:siram_40  / insi_102   service temporarily unavailable (technical error)

The faults for malformed requests are the harness's own (the CNAM codes for them are not public): no subcode,
``siram:Erreur/@code`` = the validator finding's code (``INSI-TRAIT-INVALIDE``...). ``env:VersionMismatch``
carries the ``env:Upgrade`` header (§5.4.7), ``env:MustUnderstand`` the ``env:NotUnderstood`` headers (§5.4.8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape, quoteattr

from mock_services.insi.identities import Identity

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
CONTENT_TYPE = "application/soap+xml; charset=utf-8"
CR_LABELS = {"00": "OK", "01": "Aucune identite trouvee", "02": "Plusieurs identites trouvees"}

_XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
_RESULT_OPEN = (
    f'<soap:Envelope xmlns:soap="{SOAP12}"><S:Body xmlns:S="{SOAP12}">'
    '<RESULTAT xmlns:ns3="http://www.cnamts.fr/INSiRecVit" xmlns:ns2="http://www.cnamts.fr/INSiRecSans" '
    'xmlns="http://www.cnamts.fr/INSiResultat">'
)
_RESULT_CLOSE = "</RESULTAT></S:Body></soap:Envelope>"


@dataclass(frozen=True)
class FaultSpec:
    """One SOAP fault: SOAP 1.2 code and subcode, reason, ``siram:Erreur`` detail, HTTP status."""

    code: str  # Sender, Receiver, VersionMismatch, MustUnderstand
    subcode: str | None
    reason: str
    error_code: str
    error_text: str
    severity: str = "erreur"  # information | avertissement | erreur | fatale (severiteeEnum)
    http_status: int = 500  # the CNAM service answers its SOAP faults with HTTP 500

    def with_text(self, text: str) -> FaultSpec:
        return replace(self, error_text=text)


_ACCESS_REASON = (
    "L'accès par ce progiciel au service n'est pas autorisé. Contactez l'éditeur du progiciel ou votre "
    "responsable informatique."
)
_UNAVAILABLE_REASON = (
    "Le service est temporairement inaccessible. Veuillez renouveler votre demande ultérieurement. Si le "
    "problème persiste, contactez l'éditeur du progiciel ou votre responsable informatique."
)

#: The faults the CNAM service is publicly known to send (see the module docstring).
KNOWN_FAULTS: dict[str, FaultSpec] = {
    "desir_550": FaultSpec(
        "Sender", "siram_100", _ACCESS_REASON, "desir_550", "Numéro d'autorisation du logiciel inconnu."
    ),
    "desir_560": FaultSpec(
        "Sender",
        "siram_100",
        "Vous ne disposez pas des droits suffisants pour accéder à ce service.",
        "desir_560",
        "Niveau d'accès insuffisant.",
    ),
    "insi_102": FaultSpec(
        "Receiver",
        "siram_40",
        _UNAVAILABLE_REASON,
        "insi_102",
        "L'appel au service de recherche avec les traits d'identité renvoie une erreur technique.",
        "fatale",
    ),
}

_SOAP_CODES = {"INSI-SOAP-VERSION": "VersionMismatch", "INSI-MUST-UNDERSTAND": "MustUnderstand"}
_HTTP_STATUS = {"INSI-XML-TROP-VOLUMINEUX": 413, "INSI-CONTENT-TYPE": 415}


def request_fault(code: str, message: str) -> FaultSpec:
    """The harness fault for a request refused by the validator (finding ``code``)."""
    soap_code = _SOAP_CODES.get(code, "Receiver" if code == "INSI-ERREUR-INTERNE" else "Sender")
    reason = "Requête INSi refusée par le simulateur : " + message
    return FaultSpec(
        soap_code,
        None,
        reason,
        code,
        message,
        "fatale" if soap_code == "Receiver" else "erreur",
        _HTTP_STATUS.get(code, 500),
    )


def _e(text: str) -> str:
    return escape(text)


def _ins_entry(tag: str, number: str, key: str, oid: str, start: str | None = None, end: str | None = None) -> str:
    dates = (f"<DateDeb>{_e(start)}</DateDeb>" if start else "") + (f"<DateFin>{_e(end)}</DateFin>" if end else "")
    return (
        f"<{tag}><IdIndividu><NumIdentifiant>{_e(number)}</NumIdentifiant><Cle>{_e(key)}</Cle></IdIndividu>"
        f"<OID>{_e(oid)}</OID>{dates}</{tag}>"
    )


def result_body(code: str, identity: Identity | None = None) -> str:
    """The ``RESULTAT`` element (text) for CR ``code`` (``identity`` with CR 00)."""
    parts = [f"<CR><CodeCR>{code}</CodeCR><LibelleCR>{CR_LABELS[code]}</LibelleCR></CR>"]
    if code == "00" and identity is not None:
        parts.append("<INDIVIDU>")
        parts.append(_ins_entry("INSACTIF", identity.number, identity.key, identity.oid))
        parts.extend(_ins_entry("INSHISTO", h.number, h.key, h.oid, h.start, h.end) for h in identity.history)
        tiq = [f"<NomNaissance>{_e(identity.birth_name)}</NomNaissance>"]
        if identity.tiq_first_name:
            tiq.append(f"<Prenom>{_e(identity.first_name)}</Prenom>")
        tiq.append(f"<ListePrenom>{_e(identity.first_names)}</ListePrenom>")
        tiq.append(f"<Sexe>{_e(identity.sex)}</Sexe><DateNaissance>{_e(identity.birth_date)}</DateNaissance>")
        if identity.birth_place:
            tiq.append(f"<LieuNaissance>{_e(identity.birth_place)}</LieuNaissance>")
        parts.append("<TIQ>" + "".join(tiq) + "</TIQ></INDIVIDU>")
    return "".join(parts)


def result_envelope(code: str, identity: Identity | None = None) -> bytes:
    return (_XML_DECL + _RESULT_OPEN + result_body(code, identity) + _RESULT_CLOSE).encode("utf-8")


SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP11_CONTENT_TYPE = "text/xml; charset=utf-8"
#: The answer to a SOAP 1.1 envelope (the journal's code is the validator's INSI-SOAP-VERSION).
SOAP11_VERSION_MISMATCH = FaultSpec(
    "VersionMismatch",
    None,
    "Requête INSi refusée : enveloppe SOAP 1.1, le téléservice INSi est en SOAP 1.2",
    "INSI-SOAP-VERSION",
    "enveloppe SOAP 1.1 (http://schemas.xmlsoap.org/soap/envelope/) : SOAP 1.2 attendu",
)


def soap11_version_mismatch_envelope() -> bytes:
    """A SOAP/1.1 ``VersionMismatch`` fault with the SOAP 1.2 ``Upgrade`` header block listing the envelope the service
    supports — the message SOAP 1.2 Part 1 (2nd edition) §5.4.7 and appendix A give for a SOAP/1.1 request."""
    return (
        _XML_DECL + f'<env:Envelope xmlns:env="{SOAP11}"><env:Header>'
        f'<upg:Upgrade xmlns:upg="{SOAP12}"><upg:SupportedEnvelope qname="ns1:Envelope" xmlns:ns1="{SOAP12}"/>'
        "</upg:Upgrade></env:Header><env:Body><env:Fault><faultcode>env:VersionMismatch</faultcode>"
        f'<faultstring xml:lang="fr">{_e(SOAP11_VERSION_MISMATCH.reason)}</faultstring></env:Fault></env:Body></env:Envelope>'
    ).encode("utf-8")


def fault_envelope(fault: FaultSpec, *, message_id: str | None = None, not_understood: Sequence[str] = ()) -> bytes:
    """A SOAP 1.2 fault envelope (``env:`` prefix for the envelope namespace, as SOAP 1.2 Part 1 writes it)."""
    header = ""
    if fault.code == "VersionMismatch":
        header = (
            f'<env:Header xmlns:env="{SOAP12}"><env:Upgrade><env:SupportedEnvelope qname="ns1:Envelope" '
            f'xmlns:ns1="{SOAP12}"/></env:Upgrade></env:Header>'
        )
    elif not_understood:
        blocks = []
        for index, clark in enumerate(not_understood):
            namespace, _, local = clark[1:].partition("}") if clark.startswith("{") else ("", "", clark)
            blocks.append(f'<env:NotUnderstood qname="nu{index}:{_e(local)}" xmlns:nu{index}={quoteattr(namespace)}/>')
        header = f'<env:Header xmlns:env="{SOAP12}">' + "".join(blocks) + "</env:Header>"
    subcode = f"<env:Subcode><env:Value>env:{fault.subcode}</env:Value></env:Subcode>" if fault.subcode else ""
    message_attr = f" messageID={quoteattr(message_id)}" if message_id else ""
    body = (
        f'<env:Body xmlns:env="{SOAP12}"><env:Fault><env:Code><env:Value>env:{fault.code}</env:Value>{subcode}</env:Code>'
        f'<env:Reason><env:Text xml:lang="fr">{_e(fault.reason)}</env:Text></env:Reason>'
        f"<env:Detail><siram:Erreur code={quoteattr(fault.error_code)}{message_attr} severite={quoteattr(fault.severity)} "
        f'xmlns:siram="urn:siram">{_e(fault.error_text)}</siram:Erreur></env:Detail></env:Fault></env:Body>'
    )
    return (_XML_DECL + f'<soap:Envelope xmlns:soap="{SOAP12}">' + header + body + "</soap:Envelope>").encode("utf-8")
