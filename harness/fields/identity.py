"""INS (Identifiant National de Santé): parsing, validation, renderings and test identities.

The INS matricule is the NIR (or the provisional NIA) of the person: 13 characters and a 2-digit key
(Référentiel INS, ANS; NIR structure per INSEE):

====  =======  ==========================================================
pos   length   content
====  =======  ==========================================================
1     1        sex: 1/2 (3/4 and 7/8 for special and provisional numbers)
2-3   2        year of birth
4-5   2        month of birth: 01-12, or a pseudo-month 20-99 when unknown
6-7   2        department: digits, 2A/2B (Corsica), 96-99 for abroad
8-10  3        commune (or country code)
11-13 3        order number
====  =======  ==========================================================

Key = 97 - (N mod 97), N being the 13 characters read as a number with 2A -> 19 and 2B -> 18.
The assigning authority OIDs are those of the ANS "liste des OID des autorités d'affectation des INS".
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "HL7_AUTHORITY_NAMES",
    "INS",
    "INS_OIDS",
    "OID_INS_NIA",
    "OID_INS_NIR_DEMO",
    "OID_INS_NIR",
    "OID_INS_NIR_TEST",
    "InsError",
    "InsKind",
    "compute_key",
    "generate_test_ins",
    "is_valid_ins",
    "parse_ins",
    "parse_xds_patient_id",
    "refuse_production",
    "PRODUCTION_INS_CODE",
    "PRODUCTION_INS_SETTING",
    "ProductionInsPolicy",
    "ProductionIns",
    "production_ins",
    "production_ins_policy",
]


class InsKind(StrEnum):
    """The four INS assigning authorities (names as in the FR Core ``identifier`` slices)."""

    NIR = "INS-NIR"
    NIA = "INS-NIA"
    NIR_TEST = "INS-NIR-TEST"
    NIR_DEMO = "INS-NIR-DEMO"


OID_INS_NIR = "1.2.250.1.213.1.4.8"
OID_INS_NIA = "1.2.250.1.213.1.4.9"
OID_INS_NIR_TEST = "1.2.250.1.213.1.4.10"
OID_INS_NIR_DEMO = "1.2.250.1.213.1.4.11"

INS_OIDS: Mapping[str, InsKind] = MappingProxyType(
    {
        OID_INS_NIR: InsKind.NIR,
        OID_INS_NIA: InsKind.NIA,
        OID_INS_NIR_TEST: InsKind.NIR_TEST,
        OID_INS_NIR_DEMO: InsKind.NIR_DEMO,
    }
)

# HL7 v2 assigning authority namespace (IHE PAM France, CI-SIS guide INS): test OIDs keep the same names.
HL7_AUTHORITY_NAMES: Mapping[InsKind, str] = MappingProxyType(
    {
        InsKind.NIR: "ASIP-SANTE-INS-NIR",
        InsKind.NIR_TEST: "ASIP-SANTE-INS-NIR",
        InsKind.NIA: "ASIP-SANTE-INS-NIA",
        InsKind.NIR_DEMO: "ASIP-SANTE-INS-NIR",
    }
)

_NUMBER_RE = re.compile(r"[123478][0-9]{2}(?:0[1-9]|1[0-2]|[2-9][0-9])(?:[0-9]{2}|2[AB])[0-9]{6}")
_KEY_RE = re.compile(r"[0-9]{2}")
_DEPARTMENT_RE = re.compile(r"[0-9]{2}|2[AB]")
_COMMUNE_RE = re.compile(r"[0-9]{3}")
_CORSICA = {"2A": "19", "2B": "18"}
# ITI TF-3 §4.2.3.1.7 / CI-SIS: an XDS patientId is "value^^^&oid&ISO"; the CI-SIS adds the type NH.
_XDS_CX_RE = re.compile(r"([^\^&\s]+)\^\^\^&([0-9]+(?:\.[0-9]+)+)&ISO\^NH")


class InsError(ValueError):
    """An invalid INS. ``code``: INS-FORMAT, INS-KEY, INS-OID or INS-PRODUCTION; French message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _check_number(number13: str) -> None:
    if not isinstance(number13, str) or _NUMBER_RE.fullmatch(number13) is None:
        raise InsError(
            "INS-FORMAT",
            f"matricule INS mal formé : 13 caractères attendus (sexe, année, mois, département, commune, "
            f"ordre), reçu {number13!r}",
        )


def compute_key(number13: str) -> str:
    """The 2-digit key ``97 - (N mod 97)``, Corsica 2A/2B counted as 19/18; always in ``"01"``..``"97"``."""
    _check_number(number13)
    department = number13[5:7]
    numeric = number13[:5] + _CORSICA.get(department, department) + number13[7:]
    return f"{97 - int(numeric) % 97:02d}"


@dataclass(frozen=True)
class INS:
    """A valid INS matricule with its assigning authority; construction validates OID, format and key."""

    number: str
    key: str
    oid: str

    def __post_init__(self) -> None:
        if not isinstance(self.oid, str) or self.oid not in INS_OIDS:  # an unhashable oid would raise TypeError
            raise InsError(
                "INS-OID",
                f"l'OID {self.oid!r} n'est pas une autorité d'affectation INS (identifiant local / IPP ?)",
            )
        _check_number(self.number)
        if not isinstance(self.key, str) or _KEY_RE.fullmatch(self.key) is None:
            raise InsError("INS-FORMAT", f"clé INS mal formée : 2 chiffres attendus, reçu {self.key!r}")
        expected = compute_key(self.number)
        if self.key != expected:
            raise InsError(
                "INS-KEY",
                f"clé de contrôle INS incorrecte pour {self.number} : attendue {expected}, reçue {self.key}",
            )

    @property
    def value(self) -> str:
        """The 15-character matricule (number + key)."""
        return self.number + self.key

    @property
    def kind(self) -> InsKind:
        return INS_OIDS[self.oid]

    @property
    def is_test(self) -> bool:
        return self.kind in (InsKind.NIR_TEST, InsKind.NIR_DEMO)

    def to_cda_id(self) -> dict[str, str]:
        """Attributes of the CDA ``recordTarget/patientRole/id`` (CI-SIS structuration minimale)."""
        return {"root": self.oid, "extension": self.value}

    def to_xds(self) -> str:
        """XDS ``patientId`` / ``sourcePatientId`` CX as required by the CI-SIS: ``value^^^&oid&ISO^NH``."""
        return f"{self.value}^^^&{self.oid}&ISO^NH"

    def to_hl7v2_cx(self, type_code: str = "INS") -> str:
        """HL7 v2 PID-3 repetition (IHE PAM France): ``value^^^ASIP-SANTE-INS-NIR&oid&ISO^INS``.

        The namespace is ASIP-SANTE-INS-NIR for NIR and ASIP-SANTE-INS-NIA for NIA; the test OIDs keep
        the same names. PAM France types the INS as ``INS`` (CX-5); pass ``type_code="NH"`` for partners
        still expecting the generic HL7 table 0203 code.
        """
        authority = HL7_AUTHORITY_NAMES[self.kind]
        return f"{self.value}^^^{authority}&{self.oid}&ISO^{type_code}"

    def to_fhir_identifier(self) -> dict[str, str]:
        """FHIR ``Patient.identifier`` (FR Core Patient INS): ``system`` is the OID URN."""
        return {"system": f"urn:oid:{self.oid}", "value": self.value}

    def patient_mailbox(self) -> str:
        """The patient's MSSanté mailbox (Mon espace santé): ``<matricule INS>@patient.mssante.fr``."""
        return f"{self.value}@patient.mssante.fr"


def parse_ins(value: str, oid: str = OID_INS_NIR_TEST) -> INS:
    """Parse a 15-character matricule (spaces allowed, ``2a`` accepted as ``2A``) under ``oid``."""
    if not isinstance(value, str):
        raise InsError("INS-FORMAT", f"matricule INS attendu sous forme de texte, reçu {type(value).__name__}")
    compact = "".join(value.split()).upper()
    if len(compact) != 15:
        raise InsError("INS-FORMAT", f"matricule INS de 15 caractères attendu, reçu {value!r}")
    return INS(number=compact[:13], key=compact[13:], oid=oid)


def parse_xds_patient_id(cx: str) -> INS:
    """Parse an XDS patient identifier ``value^^^&oid&ISO^NH``; anything else raises :class:`InsError`."""
    match = _XDS_CX_RE.fullmatch(cx.strip()) if isinstance(cx, str) else None
    if match is None:
        raise InsError("INS-FORMAT", f"identifiant patient XDS mal formé (attendu valeur^^^&oid&ISO^NH) : {cx!r}")
    return parse_ins(match.group(1), match.group(2))


def is_valid_ins(value: str, oid: str = OID_INS_NIR_TEST) -> bool:
    """Whether :func:`parse_ins` accepts ``value`` under ``oid``."""
    try:
        parse_ins(value, oid)
    except InsError:
        return False
    return True


def generate_test_ins(
    rng: random.Random,
    *,
    sex: str,
    birth_date: date,
    department: str = "75",
    commune: str = "056",
) -> INS:
    """A valid INS under the test OID 1.2.250.1.213.1.4.10, random order number drawn from ``rng``."""
    sex_digit = {"M": "1", "F": "2"}.get(sex)
    if sex_digit is None:
        raise InsError("INS-FORMAT", f"sexe 'M' ou 'F' attendu, reçu {sex!r}")
    if _DEPARTMENT_RE.fullmatch(department) is None:
        raise InsError("INS-FORMAT", f"département de 2 caractères attendu (75, 2A...), reçu {department!r}")
    if _COMMUNE_RE.fullmatch(commune) is None:
        raise InsError("INS-FORMAT", f"code commune de 3 chiffres attendu, reçu {commune!r}")
    order = rng.randint(1, 999)
    number = f"{sex_digit}{birth_date.year % 100:02d}{birth_date.month:02d}{department}{commune}{order:03d}"
    return INS(number=number, key=compute_key(number), oid=OID_INS_NIR_TEST)


def refuse_production(ins: INS, allow: bool = False) -> None:
    """Refuse a production INS (NIR .4.8 or NIA .4.9) so that no real personal data enters a test run."""
    if not allow and not ins.is_test:
        raise InsError(
            "INS-PRODUCTION",
            f"INS de production (OID {ins.oid}) refusé : seules les identités de test (OID "
            f"{OID_INS_NIR_TEST} / {OID_INS_NIR_DEMO}) sont admises dans une campagne de test",
        )


# ---------------------------------------------------------------------------------------------------------------
# One production-INS policy for every simulator (MSSanté SMTP and HL7 relay, DMP, e-Prescription, cahier de liaison,
# TDDUI). A campaign runs on test identities (NIR de test .4.10, NIR de démonstration .4.11); an INS under the
# production OIDs (.4.8 NIR, .4.9 NIA) is either reported ("warn", the default: the official ANS examples
# eDISP-MED, OBP-SAP, OBP-SCM, OBP-SNM use .4.8 and must pass) or refused ("refuse"). INSi answering .4.8 for the
# qualification identities is the real service's behaviour and does not go through this policy.

PRODUCTION_INS_SETTING = "production_ins"  # the setting's name, in [settings.<service>] or as the harness default
PRODUCTION_INS_CODE = "INS-PRODUCTION"  # the finding code every service records


class ProductionInsPolicy(StrEnum):
    WARN = "warn"  # accepted; a warning finding "INS de production" in the journal and the reports
    REFUSE = "refuse"  # refused with the protocol's own refusal


@dataclass(frozen=True)
class ProductionIns:
    """What the policy says about one production INS: the finding to record and whether to refuse."""

    code: str
    message: str
    refuse: bool


def production_ins_policy(settings: Mapping[str, object] | None = None) -> ProductionInsPolicy:
    """The policy a service's settings select (``production_ins = "warn" | "refuse"``, default ``warn``); any other
    value is a configuration error (ValueError, French message)."""
    raw = (settings or {}).get(PRODUCTION_INS_SETTING, ProductionInsPolicy.WARN.value)
    try:
        return ProductionInsPolicy(str(raw).strip().lower())
    except ValueError:
        raise ValueError(f'réglage {PRODUCTION_INS_SETTING} = {raw!r} invalide : "warn" ou "refuse" attendu') from None


def production_ins(ins: INS, policy: ProductionInsPolicy = ProductionInsPolicy.WARN) -> ProductionIns | None:
    """``None`` for a test INS; for an INS under a production OID (.4.8 NIR, .4.9 NIA) the finding to record
    (code :data:`PRODUCTION_INS_CODE`) and, under ``refuse``, the decision to refuse the exchange."""
    if ins.kind not in (InsKind.NIR, InsKind.NIA):
        return None
    refuse = policy is ProductionInsPolicy.REFUSE
    message = (
        f"INS de production {ins.value} (OID {ins.oid}, {ins.kind.value}) : une campagne de test n'utilise que des "
        f"identités de test (OID {OID_INS_NIR_TEST} ou {OID_INS_NIR_DEMO})"
        + (' ; refusé (réglage production_ins = "refuse")' if refuse else "")
    )
    return ProductionIns(PRODUCTION_INS_CODE, message, refuse)
