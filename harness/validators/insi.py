"""INSi teleservice messages: structural checks of requests and responses, and their parsing.

Specification followed: the CNAM WSDL ``DESIR_ICIR_EXP_1.5.0.wsdl`` (service ``ICIR-v1``, SOAP 1.2 document/literal
binding) and the schemas it imports — ``INSi_RECSANS_INS.xsd`` (request ``RECSANSVITALE``, namespace
``http://www.cnamts.fr/INSiRecSans``), ``INSi_RESULTAT_INS.xsd`` (response ``RESULTAT``),
``ROOT_ctxbam_CTXBAM_V01_02.xsd`` / ``ROOT_ctxlps_CTXLPS_V01_00.xsd`` (headers ``ContexteBAM`` / ``ContexteLPS``)
and ``schema_faultSOAP_V01_01.xsd`` (``siram:Erreur``) — plus SOAP 1.2 Part 1 (W3C Recommendation, 2nd edition)
for the envelope. The XSDs may not be copied into this project: the checks below are hand-written from them
(element names, namespaces, order, cardinalities and patterns), and ``tests/test_insi_validator.py`` compares
them with the real XSDs from the public corpus when it is present.

On top of the schemas (which make every trait optional), the rules the service applies and that the harness
enforces — documented in ``docs/specs/insi.md``: birth name, first name(s), sex and birth date are required; the
birth date is a *lunar* date ``YYYY-MM-DD`` with month 00-12 and day 00-31 (00 = unknown), not after today nor
before :data:`MIN_BIRTH_YEAR`; sex is ``M`` or ``F``; the birth place is a 5-character COG code; names are written in
the INSi character set (:data:`INSI_ALPHABET`, see :func:`trait_characters_problem`), at most :data:`MAX_NAME_CHARS`
characters; ``ContexteBAM/@Version`` is ``01_02`` and ``ContexteLPS/@Version`` ``01_00`` (the versions of the schemas
``ROOT_ctxbam_CTXBAM_V01_02.xsd`` / ``ROOT_ctxlps_CTXLPS_V01_00.xsd`` the WSDL imports, as every public client sends
them); the ContexteLPS carries the software's IDAM, name, version and instance.

Codes of the findings (the simulator turns the first ERROR into its SOAP fault): ``INSI-XML-*`` (unsafe or
malformed XML), ``INSI-SOAP-VERSION`` (not a SOAP 1.2 envelope: ``env:VersionMismatch``), ``INSI-SOAP-ENVELOPPE``,
``INSI-MUST-UNDERSTAND`` (``env:MustUnderstand``; a SOAP 1.1 envelope is flagged :attr:`InsiRequest.soap11` so that
the service answers with a SOAP 1.1 VersionMismatch fault, SOAP 1.2 Part 1 §5.4.7 and appendix A), ``INSI-ENTETE-ABSENTE``, ``INSI-ENTETE-INVALIDE``,
``INSI-LPS-INCOMPLET``, ``INSI-ACTION-INCONNUE``, ``INSI-CORPS-INVALIDE``, ``INSI-TRAIT-ABSENT``,
``INSI-TRAIT-INVALIDE``; responses: ``INSI-REPONSE-*``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from lxml import etree

from harness.fields.xmlsafe import XMLSafetyError, parse_xml
from harness.validators import Finding, Severity

__all__ = [
    "ACTION_CARTE_VITALE",
    "ACTION_TRAITS",
    "NS",
    "ContexteBAM",
    "ContexteLPS",
    "InsRef",
    "InsiFault",
    "InsiRequest",
    "InsiResult",
    "Logiciel",
    "Traits",
    "INSI_ALPHABET",
    "birth_date_problem",
    "is_lunar_date",
    "trait_characters_problem",
    "normalise_trait",
    "parse_fault",
    "parse_request",
    "parse_result",
    "validate_result",
]

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS = {
    "env": SOAP12,
    "recsans": "http://www.cnamts.fr/INSiRecSans",
    "recvit": "http://www.cnamts.fr/INSiRecVit",
    "res": "http://www.cnamts.fr/INSiResultat",
    "ctxbam": "urn:siram:bam:ctxbam",
    "ctxlps": "urn:siram:lps:ctxlps",
    "siram": "urn:siram",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
}
ACTION_TRAITS = "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite"
ACTION_CARTE_VITALE = "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecCarteVitale"
OPERATIONS = {ACTION_TRAITS: "rechercherInsAvecTraitsIdentite", ACTION_CARTE_VITALE: "rechercherInsAvecCarteVitale"}

MAX_REQUEST_BYTES = 256 * 1024  # an INSi request is ~2 KB; a WS-Security assertion adds a few KB
MAX_NAME_CHARS = 100
MAX_FIRST_NAMES = 10
MIN_BIRTH_YEAR = 1850

_LUNAR_DATE = re.compile(r"([0-9]{4})-(0[0-9]|1[0-2])-(0[0-9]|[12][0-9]|3[01])")
_COG = re.compile(r"(?:[0-9]{2}|2[AB])[0-9]{3}")
_DATETIME = re.compile(
    r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_APOSTROPHES = str.maketrans(
    {"\u2019": "'", "\u02bc": "'", "`": "'", "Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "ß": "SS"}
)
#: The INSi character set of name traits, once folded by :func:`normalise_trait`: the 26 unaccented capital letters,
#: space, hyphen and apostrophe — the alphabet in which the INS reference traits are written (CNAM, téléservice INSi
#: ``rechercherInsAvecTraitsIdentite``, WSDL ``DESIR_ICIR_EXP_1.5.0``: the ``TIQ`` of every answer; ANS, *Guide
#: d'implémentation de l'identité INS dans les logiciels*, traits INS). Lower case, French diacritics and the ligatures
#: Œ / Æ / ß fold into it; digits, other punctuation and letters of other scripts (Cyrillic, Greek, Arabic, Hebrew,
#: CJK...) do not, and are refused with ``INSI-TRAIT-INVALIDE``.
INSI_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ -'")
#: ``@Version`` of the context headers (the schema versions the WSDL imports).
BAM_VERSION = "01_02"
LPS_VERSION = "01_00"
# Header blocks the service understands (WSDL binding: Security, ContexteLPS, MessageID, ContexteBAM; plus the
# WS-Addressing headers a SOAP stack adds). Any other block flagged mustUnderstand gets env:MustUnderstand.
_UNDERSTOOD_HEADERS = frozenset(
    {
        f"{{{NS['ctxbam']}}}ContexteBAM",
        f"{{{NS['ctxlps']}}}ContexteLPS",
        f"{{{NS['wsse']}}}Security",
        *(
            f"{{{NS['wsa']}}}{name}"
            for name in ("Action", "MessageID", "To", "ReplyTo", "From", "FaultTo", "RelatesTo")
        ),
    }
)
_XML_CODES = {
    "XML-TOO-LARGE": "INSI-XML-TROP-VOLUMINEUX",
    "XML-DOCTYPE-FORBIDDEN": "INSI-XML-DOCTYPE",
    "XML-ENTITY": "INSI-XML-ENTITE",
    "XML-MALFORMED": "INSI-XML-MALFORME",
}


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else "#" + type(tag).__name__


def _clark_to_text(tag: str) -> str:
    qname = etree.QName(tag)
    return f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname


# ---------------------------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class ContexteBAM:
    """``ctxbam:ContexteBAM`` (CTXBAM V01_02): Id, Temps, Emetteur?, DateRef?, COUVERTURE; @Version, @Nature."""

    version: str
    id: str
    temps: str
    emetteur: str | None = None
    nature: str | None = None


@dataclass(frozen=True)
class Logiciel:
    """``ctxlps:LPS``: the calling software — IDAM (CNAM authorisation number, attribute R), version, instance, name."""

    idam: str | None
    version: str | None
    instance: str | None
    nom: str | None
    idam_r: str | None = None


@dataclass(frozen=True)
class ContexteLPS:
    """``ctxlps:ContexteLPS`` (CTXLPS V01_00): Id, Temps, Emetteur?, LPS?; @Version, @Nature."""

    version: str
    id: str
    temps: str
    emetteur: str | None = None
    nature: str | None = None
    lps: Logiciel | None = None


@dataclass(frozen=True)
class Traits:
    """Identity traits as sent in ``RECSANSVITALE`` (first names in document order, one per ``Prenom``)."""

    birth_name: str
    first_names: tuple[str, ...]
    sex: str
    birth_date: str  # lunar date YYYY-MM-DD
    birth_place: str | None = None

    @property
    def first_names_text(self) -> str:
        return " ".join(self.first_names)

    def as_dict(self) -> dict[str, object]:
        return {
            "nom_naissance": self.birth_name,
            "prenoms": list(self.first_names),
            "sexe": self.sex,
            "date_naissance": self.birth_date,
            "lieu_naissance": self.birth_place,
        }


@dataclass
class InsiRequest:
    """What :func:`parse_request` found in a request; ``findings`` holds every problem, errors first refused."""

    findings: list[Finding] = field(default_factory=list)
    operation: str | None = None  # rechercherInsAvecTraitsIdentite / rechercherInsAvecCarteVitale
    action: str | None = None  # wsa:Action
    message_id: str | None = None  # wsa:MessageID
    bam: ContexteBAM | None = None
    lps: ContexteLPS | None = None
    traits: Traits | None = None
    not_understood: list[str] = field(default_factory=list)
    soap11: bool = (
        False  # a SOAP 1.1 envelope: answered with a SOAP 1.1 VersionMismatch fault (SOAP 1.2 Part 1, app. A)
    )

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class InsRef:
    """One ``INSACTIF`` / ``INSHISTO`` entry as the service returned it (the key is NOT re-checked here)."""

    number: str
    key: str | None
    oid: str
    start: str | None = None
    end: str | None = None

    @property
    def value(self) -> str:
        return self.number + (self.key or "")


@dataclass
class InsiResult:
    """A parsed ``RESULTAT``."""

    code: str
    label: str
    active: InsRef | None = None
    history: list[InsRef] = field(default_factory=list)
    tiq: dict[str, str] = field(default_factory=dict)  # NomNaissance, Prenom, ListePrenom, Sexe, DateNaissance...
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class InsiFault:
    """A parsed SOAP 1.2 fault with its ``siram:Erreur`` detail."""

    code: str  # local name of env:Code/env:Value: Sender, Receiver, VersionMismatch, MustUnderstand...
    subcode: str | None  # local name of the first env:Subcode/env:Value (siram_100...)
    reason: str
    error_code: str | None  # siram:Erreur/@code (desir_550...)
    error_text: str | None
    severity: str | None


# ------------------------------------------------------------------------------------------ trait rules


def normalise_trait(value: str) -> str:
    """A trait as the INS reference base compares it: upper case, no diacritics, one space between words,
    typographic apostrophes folded to ``'``."""
    if value.isascii():  # the usual trait: NFKD leaves ASCII as it is, the only ASCII fold is the backquote
        return " ".join(value.replace("`", "'").upper().split())
    folded = unicodedata.normalize("NFKD", value.translate(_APOSTROPHES))
    stripped = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(stripped.upper().split())


def birth_date_problem(value: str, *, today: date | None = None) -> str | None:
    """Why ``value`` is not an acceptable INSi birth date (``None`` when it is).

    A lunar date ``YYYY-MM-DD``: month 00-12 and day 00-31 (00 = unknown, as the INS base allows), year from
    :data:`MIN_BIRTH_YEAR`, and not after ``today`` (compared on the known parts: a month 00 compares the year only).
    """
    match = _LUNAR_DATE.fullmatch(value)
    if match is None:
        return f"DateNaissance {value[:40]!r} : date lunaire AAAA-MM-JJ attendue (mois 00-12, jour 00-31)"
    year, month, day = (int(part) for part in match.groups())
    now = today or date.today()
    if year < MIN_BIRTH_YEAR:
        return f"DateNaissance {value!r} : année antérieure à {MIN_BIRTH_YEAR}"
    known = (year, month or 0, day if month else 0)
    limit = (now.year, now.month if month else 0, now.day if month and day else 0)
    if known > limit:
        return f"DateNaissance {value!r} postérieure à la date du jour ({now.isoformat()}) : une date de naissance est passée"
    return None


def is_lunar_date(value: str, *, today: date | None = None) -> bool:
    """Whether ``value`` is an acceptable INSi birth date (:func:`birth_date_problem` finds nothing)."""
    return birth_date_problem(value, today=today) is None


def trait_characters_problem(value: str) -> str | None:
    """The characters of a name trait outside the INSi character set (:data:`INSI_ALPHABET` after folding)."""
    if value.isascii() and INSI_ALPHABET.issuperset(value.upper()):  # the usual trait: no character to fold
        return None
    bad: list[str] = []
    for ch in value:
        folded = normalise_trait(ch) or " "
        if any(c not in INSI_ALPHABET for c in folded) and ch not in bad:
            bad.append(ch)
    if not bad:
        return None
    shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in bad[:5])
    return (
        f"caractères hors du jeu de caractères INSi ({shown}) : lettres latines (accents admis), espace, tiret "
        "et apostrophe seulement"
    )


def _name_problem(value: str, label: str) -> str | None:
    if not value.strip():
        return f"{label} vide"
    if len(value) > MAX_NAME_CHARS:
        return f"{label} trop long ({len(value)} caractères > {MAX_NAME_CHARS})"
    if problem := trait_characters_problem(value):
        return f"{label} : {problem}"
    if not any(ch.isalpha() for ch in value):
        return f"{label} sans lettre"
    return None


# ------------------------------------------------------------------------------------- generic helpers


def _text(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    if len(element) == 0:
        return (element.text or "").strip()
    return "".join(element.itertext()).strip()


@dataclass(frozen=True)
class _Sequence:
    """An ``xsd:sequence`` of element children: (Clark name, minOccurs, maxOccurs) in schema order, with each
    name's position (built once per schema, not per request)."""

    spec: tuple[tuple[str, int, int | None], ...]
    order: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", {name: index for index, (name, _, _) in enumerate(self.spec)})


def _check_sequence(
    parent: etree._Element,
    spec: Sequence[tuple[str, int, int | None]] | _Sequence,
    location: str,
    code: str,
    findings: list[Finding],
) -> dict[str, list[etree._Element]]:
    """Check ``parent``'s element children against an ``xsd:sequence`` (Clark name, minOccurs, maxOccurs)."""
    sequence = spec if isinstance(spec, _Sequence) else _Sequence(tuple(spec))
    order = sequence.order
    found: dict[str, list[etree._Element]] = {name: [] for name in order}
    position = 0
    text = parent.text
    stray_text = bool(text and text.strip())
    for child in parent:
        if not stray_text:
            tail = child.tail
            if tail and tail.strip():
                stray_text = True
        tag = child.tag
        if not isinstance(tag, str):
            continue  # comments and processing instructions
        index = order.get(tag)
        if index is None:
            findings.append(Finding(code, f"élément inattendu {_clark_to_text(tag)}", Severity.ERROR, location))
            continue
        if index < position:
            expected = ", ".join(_local(name) for name in order)
            findings.append(
                Finding(
                    code,
                    f"élément {_local(tag)} hors de l'ordre du schéma (attendu : {expected})",
                    Severity.ERROR,
                    location,
                )
            )
        else:
            position = index
        found[tag].append(child)
    for name, minimum, maximum in sequence.spec:
        count = len(found[name])
        if count < minimum:
            findings.append(Finding(code, f"élément {_local(name)} obligatoire absent", Severity.ERROR, location))
        elif maximum is not None and count > maximum:
            findings.append(
                Finding(
                    code, f"élément {_local(name)} répété {count} fois (au plus {maximum})", Severity.ERROR, location
                )
            )
    if stray_text:
        findings.append(
            Finding(
                code, f"texte inattendu dans {_local(parent.tag)} (contenu élément seulement)", Severity.ERROR, location
            )
        )
    return found


def _first(found: dict[str, list[etree._Element]], name: str) -> etree._Element | None:
    items = found.get(name) or []
    return items[0] if items else None


def _leaf(
    found: dict[str, list[etree._Element]], name: str, location: str, code: str, findings: list[Finding]
) -> str | None:
    """Text of a simple-content element; child elements inside it are an error."""
    items = found.get(name)
    if not items:
        return None
    element = items[0]
    if not len(element):
        return (element.text or "").strip()  # _text() of an element without children
    if any(isinstance(child.tag, str) for child in element):
        findings.append(
            Finding(code, f"{_local(name)} doit être un texte simple", Severity.ERROR, f"{location}/{_local(name)}")
        )
    return _text(element)


def _is_datetime(value: str | None) -> bool:
    if value is None or _DATETIME.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value)  # Python 3.11 reads the "Z" suffix
    except ValueError:
        return False
    return True


def _is_xsd_date(value: str) -> bool:
    try:
        date.fromisoformat(value[:10])
    except ValueError:
        return False
    return len(value) == 10 or re.fullmatch(r"Z|[+-][0-9]{2}:[0-9]{2}", value[10:]) is not None


# ---------------------------------------------------------------------------------------------- requests

# The request's sequences and element names (Clark notation), built once rather than on every request.
_BAM, _LPS, _RECSANS = NS["ctxbam"], NS["ctxlps"], NS["recsans"]
_ENVELOPE_TAG, _HEADER_TAG, _BODY_TAG = (f"{{{SOAP12}}}{name}" for name in ("Envelope", "Header", "Body"))
_ENVELOPE_SEQUENCE = _Sequence(((_HEADER_TAG, 0, 1), (_BODY_TAG, 1, 1)))
_BAM_SEQUENCE = _Sequence(
    (
        (f"{{{_BAM}}}Id", 1, 1),
        (f"{{{_BAM}}}Temps", 1, 1),
        (f"{{{_BAM}}}Emetteur", 0, 1),
        (f"{{{_BAM}}}DateRef", 0, 1),
        (f"{{{_BAM}}}COUVERTURE", 1, 1),
    )
)
_COUVERTURE_SEQUENCE = _Sequence(
    tuple((f"{{{_BAM}}}{n}", 0, 1) for n in ("GrandRegime", "Organisme", "CodeCentre", "ASSURE", "BENEFICIAIRE"))
)
_LPS_CONTEXT_SEQUENCE = _Sequence(
    ((f"{{{_LPS}}}Id", 1, 1), (f"{{{_LPS}}}Temps", 1, 1), (f"{{{_LPS}}}Emetteur", 0, 1), (f"{{{_LPS}}}LPS", 0, 1))
)
_LPS_SEQUENCE = _Sequence(
    ((f"{{{_LPS}}}IDAM", 0, 1), (f"{{{_LPS}}}Version", 0, 1), (f"{{{_LPS}}}Instance", 0, 1), (f"{{{_LPS}}}Nom", 0, 1))
)
_TRAITS_SEQUENCE = _Sequence(
    (
        (f"{{{_RECSANS}}}NomNaissance", 0, 1),
        (f"{{{_RECSANS}}}Prenom", 0, MAX_FIRST_NAMES),
        (f"{{{_RECSANS}}}Sexe", 0, 1),
        (f"{{{_RECSANS}}}DateNaissance", 0, 1),
        (f"{{{_RECSANS}}}LieuNaissance", 0, 1),
    )
)
_BAM_TAG, _LPS_TAG = f"{{{_BAM}}}ContexteBAM", f"{{{_LPS}}}ContexteLPS"
_ACTION_TAG, _MESSAGE_ID_TAG = _q("wsa", "Action"), _q("wsa", "MessageID")
_RECSANS_TAG, _RECVIT_TAG = _q("recsans", "RECSANSVITALE"), _q("recvit", "RECVITALE")


def _context_common(
    element: etree._Element,
    found: dict[str, list[etree._Element]],
    ns: str,
    nature_expected: str,
    loc: str,
    code: str,
    findings: list[Finding],
) -> tuple[str | None, str | None, str | None]:
    """Checks ContexteBAM and ContexteLPS share: ``Version`` the schema's (01_02 / 01_00), ``Nature`` if given,
    ``Temps`` a dateTime."""
    version = element.get("Version")
    nature = element.get("Nature")
    expected_version = BAM_VERSION if nature_expected == "CTXBAM" else LPS_VERSION
    if not version:
        findings.append(Finding(code, "attribut Version obligatoire absent", Severity.ERROR, loc))
    elif version != expected_version:
        findings.append(
            Finding(
                code,
                f"attribut Version = {version[:20]!r} : '{expected_version}' attendu (schéma {nature_expected} "
                f"V{expected_version} du WSDL DESIR_ICIR_EXP_1.5.0)",
                Severity.ERROR,
                loc,
            )
        )
    if nature is not None and nature != nature_expected:
        findings.append(
            Finding(code, f"attribut Nature = {nature!r}, attendu '{nature_expected}'", Severity.ERROR, loc)
        )
    temps = _leaf(found, f"{{{ns}}}Temps", loc, code, findings)
    if temps is not None and not _is_datetime(temps):
        findings.append(
            Finding(code, f"Temps n'est pas un xsd:dateTime : {temps[:40]!r}", Severity.ERROR, f"{loc}/Temps")
        )
    return version, nature, temps


def _check_bam(element: etree._Element, findings: list[Finding]) -> ContexteBAM:
    loc = "Header/ContexteBAM"
    code = "INSI-ENTETE-INVALIDE"
    ns = _BAM
    found = _check_sequence(element, _BAM_SEQUENCE, loc, code, findings)
    version, nature, temps = _context_common(element, found, ns, "CTXBAM", loc, code, findings)
    date_ref = _leaf(found, f"{{{ns}}}DateRef", loc, code, findings)
    if date_ref is not None and not _is_datetime(date_ref):
        findings.append(
            Finding(code, f"DateRef n'est pas un xsd:dateTime : {date_ref[:40]!r}", Severity.ERROR, f"{loc}/DateRef")
        )
    couverture = _first(found, f"{{{ns}}}COUVERTURE")
    if couverture is not None:
        _check_sequence(couverture, _COUVERTURE_SEQUENCE, f"{loc}/COUVERTURE", code, findings)
    return ContexteBAM(
        version=version or "",
        id=_leaf(found, f"{{{ns}}}Id", loc, code, findings) or "",
        temps=temps or "",
        emetteur=_leaf(found, f"{{{ns}}}Emetteur", loc, code, findings),
        nature=nature,
    )


def _check_lps(element: etree._Element, findings: list[Finding]) -> ContexteLPS:
    loc = "Header/ContexteLPS"
    code = "INSI-ENTETE-INVALIDE"
    ns = _LPS
    found = _check_sequence(element, _LPS_CONTEXT_SEQUENCE, loc, code, findings)
    version, nature, temps = _context_common(element, found, ns, "CTXLPS", loc, code, findings)
    logiciel: Logiciel | None = None
    lps = _first(found, f"{{{ns}}}LPS")
    if lps is None:
        findings.append(
            Finding(
                "INSI-LPS-INCOMPLET",
                "bloc LPS absent : IDAM, Nom, Version et Instance du logiciel sont requis",
                Severity.ERROR,
                loc,
            )
        )
    else:
        lps_loc = f"{loc}/LPS"
        inner = _check_sequence(lps, _LPS_SEQUENCE, lps_loc, code, findings)
        idam_element = _first(inner, f"{{{ns}}}IDAM")
        logiciel = Logiciel(
            idam=_leaf(inner, f"{{{ns}}}IDAM", lps_loc, code, findings),
            version=_leaf(inner, f"{{{ns}}}Version", lps_loc, code, findings),
            instance=_leaf(inner, f"{{{ns}}}Instance", lps_loc, code, findings),
            nom=_leaf(inner, f"{{{ns}}}Nom", lps_loc, code, findings),
            idam_r=idam_element.get("R") if idam_element is not None else None,
        )
        missing = [
            label
            for label, value in (
                ("IDAM", logiciel.idam),
                ("Nom", logiciel.nom),
                ("Version", logiciel.version),
                ("Instance", logiciel.instance),
            )
            if not value
        ]
        if missing:
            findings.append(
                Finding(
                    "INSI-LPS-INCOMPLET",
                    f"identification du logiciel incomplète : {', '.join(missing)} absent(s)",
                    Severity.ERROR,
                    lps_loc,
                )
            )
        for label, value in (
            ("IDAM", logiciel.idam),
            ("Nom", logiciel.nom),
            ("Version", logiciel.version),
            ("Instance", logiciel.instance),
        ):
            if value is not None and len(value) > 256:
                findings.append(Finding(code, f"{label} trop long ({len(value)} caractères)", Severity.ERROR, lps_loc))
    return ContexteLPS(
        version=version or "",
        id=_leaf(found, f"{{{ns}}}Id", loc, code, findings) or "",
        temps=temps or "",
        emetteur=_leaf(found, f"{{{ns}}}Emetteur", loc, code, findings),
        nature=nature,
        lps=logiciel,
    )


def _check_traits(element: etree._Element, findings: list[Finding], today: date | None = None) -> Traits | None:
    loc = "Body/RECSANSVITALE"
    ns = _RECSANS
    found = _check_sequence(element, _TRAITS_SEQUENCE, loc, "INSI-CORPS-INVALIDE", findings)
    before = len(findings)
    name = _leaf(found, f"{{{ns}}}NomNaissance", loc, "INSI-CORPS-INVALIDE", findings)
    first_names = [_text(e) or "" for e in found[f"{{{ns}}}Prenom"]]
    for index, element in enumerate(found[f"{{{ns}}}Prenom"], start=1):
        if any(isinstance(child.tag, str) for child in element):  # Prenom is an xsd:string (INSi_RECSANS_INS.xsd)
            findings.append(
                Finding(
                    "INSI-CORPS-INVALIDE", "Prenom doit être un texte simple", Severity.ERROR, f"{loc}/Prenom[{index}]"
                )
            )
    sex = _leaf(found, f"{{{ns}}}Sexe", loc, "INSI-CORPS-INVALIDE", findings)
    birth_date = _leaf(found, f"{{{ns}}}DateNaissance", loc, "INSI-CORPS-INVALIDE", findings)
    birth_place = _leaf(found, f"{{{ns}}}LieuNaissance", loc, "INSI-CORPS-INVALIDE", findings)
    for label, value in (
        ("NomNaissance", name),
        ("Prenom", first_names[0] if first_names else None),
        ("Sexe", sex),
        ("DateNaissance", birth_date),
    ):
        if value is None:
            findings.append(
                Finding(
                    "INSI-TRAIT-ABSENT",
                    f"trait {label} obligatoire pour la recherche par traits",
                    Severity.ERROR,
                    f"{loc}/{label}",
                )
            )
    if name is not None and (problem := _name_problem(name, "NomNaissance")):
        findings.append(Finding("INSI-TRAIT-INVALIDE", problem, Severity.ERROR, f"{loc}/NomNaissance"))
    for index, first in enumerate(first_names, start=1):
        if problem := _name_problem(first, f"Prenom n°{index}"):
            findings.append(Finding("INSI-TRAIT-INVALIDE", problem, Severity.ERROR, f"{loc}/Prenom[{index}]"))
    if sex is not None and sex not in ("M", "F"):
        findings.append(
            Finding("INSI-TRAIT-INVALIDE", f"Sexe {sex[:20]!r} : 'M' ou 'F' attendu", Severity.ERROR, f"{loc}/Sexe")
        )
    if birth_date is not None and (problem := birth_date_problem(birth_date, today=today)):
        findings.append(Finding("INSI-TRAIT-INVALIDE", problem, Severity.ERROR, f"{loc}/DateNaissance"))
    if birth_place is not None and _COG.fullmatch(birth_place) is None:
        findings.append(
            Finding(
                "INSI-TRAIT-INVALIDE",
                f"LieuNaissance {birth_place[:40]!r} : code COG de 5 caractères attendu",
                Severity.ERROR,
                f"{loc}/LieuNaissance",
            )
        )
    if len(findings) > before or name is None or not first_names or sex is None or birth_date is None:
        return None
    return Traits(
        birth_name=name, first_names=tuple(first_names), sex=sex, birth_date=birth_date, birth_place=birth_place
    )


def _must_understand(block: etree._Element) -> bool:
    return (block.get(f"{{{SOAP12}}}mustUnderstand") or "").strip() in ("true", "1")


def _read_headers(header: etree._Element | None, report: InsiRequest) -> str | None:
    """The SOAP headers: ContexteBAM and ContexteLPS checked once each, mustUnderstand blocks not understood,
    wsa:MessageID; returns the wsa:Action text."""
    findings = report.findings
    action_text: str | None = None
    if header is not None:
        for block in header:
            tag = block.tag  # lxml builds a new string on each read
            if not isinstance(tag, str):
                continue
            if tag not in _UNDERSTOOD_HEADERS:
                if _must_understand(block):
                    report.not_understood.append(tag)
                continue
            if tag == _BAM_TAG:
                if report.bam is not None:
                    findings.append(Finding("INSI-ENTETE-INVALIDE", "ContexteBAM répété", Severity.ERROR, "Header"))
                else:
                    report.bam = _check_bam(block, findings)
            elif tag == _LPS_TAG:
                if report.lps is not None:
                    findings.append(Finding("INSI-ENTETE-INVALIDE", "ContexteLPS répété", Severity.ERROR, "Header"))
                else:
                    report.lps = _check_lps(block, findings)
            elif tag == _ACTION_TAG:
                action_text = _text(block)
            elif tag == _MESSAGE_ID_TAG:
                report.message_id = (_text(block) or "")[:200] or None
    if report.not_understood:
        names = ", ".join(_clark_to_text(t) for t in report.not_understood)
        findings.insert(
            0,
            Finding(
                "INSI-MUST-UNDERSTAND", f"en-tête(s) mustUnderstand non compris : {names}", Severity.ERROR, "Header"
            ),
        )
    for label, present in (("ContexteBAM", report.bam), ("ContexteLPS", report.lps)):
        if present is None:
            findings.append(
                Finding("INSI-ENTETE-ABSENTE", f"en-tête {label} obligatoire absent", Severity.ERROR, "Header")
            )

    return action_text


def _check_actions(report: InsiRequest, content_action: str | None, action_text: str | None) -> None:
    """The operation named by the Content-Type action parameter and wsa:Action: known, and the same."""
    findings = report.findings
    actions = [a for a in (content_action, action_text) if a]
    if content_action and action_text and content_action != action_text:
        findings.append(
            Finding(
                "INSI-ACTION-INCONNUE",
                f"action du Content-Type ({content_action[:100]}) différente de wsa:Action ({action_text[:100]})",
                Severity.ERROR,
                "Header/Action",
            )
        )
    for action in actions:
        if action not in OPERATIONS:
            findings.append(
                Finding(
                    "INSI-ACTION-INCONNUE",
                    f"action SOAP inconnue : {action[:200]!r} (attendu {ACTION_TRAITS})",
                    Severity.ERROR,
                    "Header/Action",
                )
            )
    report.action = actions[0] if actions else None
    if not actions:
        findings.append(
            Finding(
                "INSI-ACTION-ABSENTE",
                "ni wsa:Action ni paramètre action du Content-Type : opération déduite du corps",
                Severity.WARNING,
                "Header",
            )
        )
    if report.message_id is None:
        findings.append(Finding("INSI-MESSAGEID-ABSENT", "en-tête wsa:MessageID absent", Severity.WARNING, "Header"))


def parse_request(
    data: bytes, *, content_action: str | None = None, max_bytes: int = MAX_REQUEST_BYTES, today: date | None = None
) -> InsiRequest:
    """Parse and check an INSi SOAP 1.2 request. Never raises on bad input: problems become findings.

    ``content_action`` is the ``action`` parameter of the HTTP Content-Type (SOAP 1.2 HTTP binding), if any;
    ``today`` the date birth dates are compared with (default: the system date).
    """
    report = InsiRequest()
    findings = report.findings
    try:
        root = parse_xml(data, max_bytes=max_bytes)
    except XMLSafetyError as exc:
        findings.append(Finding(_XML_CODES.get(exc.code, "INSI-XML-MALFORME"), exc.message_fr, Severity.ERROR, "/"))
        return report
    if root.tag != _ENVELOPE_TAG and (not isinstance(root.tag, str) or _local(root.tag) != "Envelope"):
        findings.append(
            Finding(
                "INSI-SOAP-ENVELOPPE", f"élément racine {_local(root.tag)} : soap:Envelope attendu", Severity.ERROR, "/"
            )
        )
        return report
    if root.tag != _ENVELOPE_TAG and etree.QName(root).namespace != SOAP12:
        namespace = etree.QName(root).namespace or "(aucun)"
        hint = " (SOAP 1.1)" if namespace == SOAP11 else ""
        report.soap11 = namespace == SOAP11
        findings.append(
            Finding(
                "INSI-SOAP-VERSION",
                f"enveloppe de l'espace de noms {namespace}{hint} : SOAP 1.2 ({SOAP12}) attendu",
                Severity.ERROR,
                "/Envelope",
            )
        )
        return report
    found = _check_sequence(root, _ENVELOPE_SEQUENCE, "/Envelope", "INSI-SOAP-ENVELOPPE", findings)
    header = _first(found, _HEADER_TAG)
    body = _first(found, _BODY_TAG)
    if body is None:
        return report

    action_text = _read_headers(header, report)
    _check_actions(report, content_action, action_text)

    payload = [child for child in body if isinstance(child.tag, str)]
    if (body.text or "").strip():
        findings.append(Finding("INSI-CORPS-INVALIDE", "texte inattendu dans soap:Body", Severity.ERROR, "Body"))
    if len(payload) != 1:
        findings.append(
            Finding(
                "INSI-CORPS-INVALIDE",
                f"soap:Body doit contenir exactement un élément (trouvé {len(payload)})",
                Severity.ERROR,
                "Body",
            )
        )
        return report
    element = payload[0]
    tag = element.tag
    if tag == _RECSANS_TAG:
        report.operation = OPERATIONS[ACTION_TRAITS]
        report.traits = _check_traits(element, findings, today)
    elif tag == _RECVIT_TAG:
        report.operation = OPERATIONS[ACTION_CARTE_VITALE]
    else:
        qname = etree.QName(element)
        findings.append(
            Finding(
                "INSI-CORPS-INVALIDE",
                f"élément {qname.localname} de l'espace de noms {qname.namespace or '(aucun)'} : RECSANSVITALE de {NS['recsans']} attendu",
                Severity.ERROR,
                "Body",
            )
        )
    if report.action in OPERATIONS and report.operation and OPERATIONS[report.action] != report.operation:
        findings.append(
            Finding(
                "INSI-ACTION-INCONNUE",
                f"l'action {report.action} ne correspond pas au corps {_local(element.tag)}",
                Severity.ERROR,
                "Header/Action",
            )
        )
    # errors first (the simulator answers with the first one), keep each group's order
    report.findings = sorted(findings, key=lambda f: f.severity is not Severity.ERROR)
    return report


# --------------------------------------------------------------------------------------------- responses


_NIR_PATTERN = re.compile(r"[0-9]{6}[A-Za-z0-9][0-9]{6}")


def _check_ins_entry(element: etree._Element, location: str, findings: list[Finding]) -> InsRef | None:
    ns = NS["res"]
    code = "INSI-REPONSE-STRUCTURE"
    found = _check_sequence(
        element,
        [(f"{{{ns}}}IdIndividu", 1, 1), (f"{{{ns}}}OID", 1, 1), (f"{{{ns}}}DateDeb", 0, 1), (f"{{{ns}}}DateFin", 0, 1)],
        location,
        code,
        findings,
    )
    ident = _first(found, f"{{{ns}}}IdIndividu")
    number = key = None
    if ident is not None:
        inner = _check_sequence(
            ident,
            [(f"{{{ns}}}NumIdentifiant", 1, 1), (f"{{{ns}}}Cle", 0, 1), (f"{{{ns}}}TypeMatricule", 0, 1)],
            f"{location}/IdIndividu",
            code,
            findings,
        )
        number = _leaf(inner, f"{{{ns}}}NumIdentifiant", location, code, findings)
        key = _leaf(inner, f"{{{ns}}}Cle", location, code, findings)
        if number is not None and _NIR_PATTERN.fullmatch(number) is None:
            findings.append(
                Finding(
                    "INSI-REPONSE-VALEUR",
                    f"NumIdentifiant {number[:20]!r} hors motif \\d{{6}}[A-Za-z0-9]\\d{{6}}",
                    Severity.ERROR,
                    location,
                )
            )
        if key is not None and re.fullmatch(r"[0-9]{2}", key) is None:
            findings.append(
                Finding("INSI-REPONSE-VALEUR", f"Cle {key[:10]!r} hors motif [0-9]{{2}}", Severity.ERROR, location)
            )
    oid = _leaf(found, f"{{{ns}}}OID", location, code, findings)
    start = _leaf(found, f"{{{ns}}}DateDeb", location, code, findings)
    end = _leaf(found, f"{{{ns}}}DateFin", location, code, findings)
    for label, value in (("DateDeb", start), ("DateFin", end)):
        if value is not None and not _is_xsd_date(value):
            findings.append(
                Finding(
                    "INSI-REPONSE-VALEUR", f"{label} {value[:20]!r} n'est pas un xsd:date", Severity.ERROR, location
                )
            )
    if number is None or oid is None:
        return None
    return InsRef(number=number, key=key, oid=oid, start=start, end=end)


def _result_from(root: etree._Element, findings: list[Finding]) -> InsiResult | None:
    ns = NS["res"]
    code = "INSI-REPONSE-STRUCTURE"
    if root.tag != f"{{{ns}}}RESULTAT":
        findings.append(
            Finding(code, f"élément {_clark_to_text(root.tag)} : RESULTAT de {ns} attendu", Severity.ERROR, "RESULTAT")
        )
        return None
    found = _check_sequence(root, [(f"{{{ns}}}CR", 1, 1), (f"{{{ns}}}INDIVIDU", 0, 1)], "RESULTAT", code, findings)
    cr = _first(found, f"{{{ns}}}CR")
    result = InsiResult(code="", label="", findings=findings)
    if cr is not None:
        cr_found = _check_sequence(
            cr, [(f"{{{ns}}}CodeCR", 1, 1), (f"{{{ns}}}LibelleCR", 1, 1)], "RESULTAT/CR", code, findings
        )
        result.code = _leaf(cr_found, f"{{{ns}}}CodeCR", "RESULTAT/CR", code, findings) or ""
        result.label = _leaf(cr_found, f"{{{ns}}}LibelleCR", "RESULTAT/CR", code, findings) or ""
    individu = _first(found, f"{{{ns}}}INDIVIDU")
    if individu is not None:
        ind = _check_sequence(
            individu,
            [(f"{{{ns}}}INSACTIF", 1, 1), (f"{{{ns}}}INSHISTO", 0, None), (f"{{{ns}}}TIQ", 1, 1)],
            "RESULTAT/INDIVIDU",
            code,
            findings,
        )
        active = _first(ind, f"{{{ns}}}INSACTIF")
        if active is not None:
            result.active = _check_ins_entry(active, "RESULTAT/INDIVIDU/INSACTIF", findings)
        for index, entry in enumerate(ind[f"{{{ns}}}INSHISTO"], start=1):
            ref = _check_ins_entry(entry, f"RESULTAT/INDIVIDU/INSHISTO[{index}]", findings)
            if ref is not None:
                result.history.append(ref)
        tiq = _first(ind, f"{{{ns}}}TIQ")
        if tiq is not None:
            names = ("NomNaissance", "Prenom", "ListePrenom", "Sexe", "DateNaissance", "LieuNaissance")
            tiq_found = _check_sequence(
                tiq, [(f"{{{ns}}}{n}", 0, 1) for n in names], "RESULTAT/INDIVIDU/TIQ", code, findings
            )
            for name in names:
                value = _leaf(tiq_found, f"{{{ns}}}{name}", "RESULTAT/INDIVIDU/TIQ", code, findings)
                if value is not None:
                    result.tiq[name] = value
            if "Sexe" in result.tiq and re.fullmatch(r"[A-Z]", result.tiq["Sexe"]) is None:
                findings.append(
                    Finding("INSI-REPONSE-VALEUR", "TIQ/Sexe hors motif [A-Z]", Severity.ERROR, "RESULTAT/INDIVIDU/TIQ")
                )
            if (
                "DateNaissance" in result.tiq
                and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", result.tiq["DateNaissance"]) is None
            ):
                findings.append(
                    Finding(
                        "INSI-REPONSE-VALEUR",
                        "TIQ/DateNaissance hors motif \\d{4}-\\d{2}-\\d{2}",
                        Severity.ERROR,
                        "RESULTAT/INDIVIDU/TIQ",
                    )
                )
    if result.code not in ("00", "01", "02"):
        findings.append(
            Finding("INSI-REPONSE-CR", f"CodeCR {result.code!r} : 00, 01 ou 02 attendu", Severity.ERROR, "RESULTAT/CR")
        )
    elif (result.code == "00") != (individu is not None):
        findings.append(
            Finding(
                "INSI-REPONSE-CR",
                f"CodeCR {result.code} {'sans' if individu is None else 'avec'} INDIVIDU",
                Severity.ERROR,
                "RESULTAT",
            )
        )
    return result


def _body_payload(data: bytes, findings: list[Finding]) -> etree._Element | None:
    try:
        root = parse_xml(data, max_bytes=MAX_REQUEST_BYTES * 4)
    except XMLSafetyError as exc:
        findings.append(Finding(_XML_CODES.get(exc.code, "INSI-XML-MALFORME"), exc.message_fr, Severity.ERROR, "/"))
        return None
    if root.tag != _q("env", "Envelope"):
        findings.append(
            Finding(
                "INSI-SOAP-ENVELOPPE",
                f"racine {_clark_to_text(root.tag)} : enveloppe SOAP 1.2 attendue",
                Severity.ERROR,
                "/",
            )
        )
        return None
    bodies = [c for c in root if c.tag == _q("env", "Body")]
    if len(bodies) != 1:
        findings.append(Finding("INSI-SOAP-ENVELOPPE", "soap:Body absent ou répété", Severity.ERROR, "/Envelope"))
        return None
    payload = [c for c in bodies[0] if isinstance(c.tag, str)]
    if len(payload) != 1:
        findings.append(
            Finding("INSI-SOAP-ENVELOPPE", f"soap:Body avec {len(payload)} éléments", Severity.ERROR, "Body")
        )
        return None
    return payload[0]


def parse_result(data: bytes) -> InsiResult | InsiFault | None:
    """Parse a response envelope: its ``RESULTAT`` (with structural findings), its fault, or ``None`` if unusable."""
    findings: list[Finding] = []
    payload = _body_payload(data, findings)
    if payload is None:
        return None
    if payload.tag == _q("env", "Fault"):
        return _fault_from(payload)
    return _result_from(payload, findings)


def validate_result(data: bytes) -> list[Finding]:
    """Structural findings of an INSi response envelope against ``INSi_RESULTAT_INS.xsd`` (order, patterns, CR)."""
    findings: list[Finding] = []
    payload = _body_payload(data, findings)
    if payload is not None:
        if payload.tag == _q("env", "Fault"):
            findings.append(Finding("INSI-REPONSE-FAUTE", "la réponse est une faute SOAP", Severity.INFO, "Body"))
        else:
            _result_from(payload, findings)
    return findings


def _fault_from(fault: etree._Element) -> InsiFault:
    def qname_local(value: str | None) -> str:
        return (value or "").rpartition(":")[2]

    code = fault.findtext(f"{_q('env', 'Code')}/{_q('env', 'Value')}")
    subcode = fault.findtext(f"{_q('env', 'Code')}/{_q('env', 'Subcode')}/{_q('env', 'Value')}")
    reason = fault.findtext(f"{_q('env', 'Reason')}/{_q('env', 'Text')}") or ""
    erreur = fault.find(f"{_q('env', 'Detail')}/{_q('siram', 'Erreur')}")
    return InsiFault(
        code=qname_local(code),
        subcode=qname_local(subcode) if subcode else None,
        reason=reason.strip(),
        error_code=erreur.get("code") if erreur is not None else None,
        error_text=_text(erreur) if erreur is not None else None,
        severity=erreur.get("severite") if erreur is not None else None,
    )


def parse_fault(data: bytes) -> InsiFault | None:
    """The SOAP 1.2 fault of a response envelope, or ``None`` when it is not a fault."""
    parsed = parse_result(data)
    return parsed if isinstance(parsed, InsiFault) else None
