"""Pro Santé Connect data: test professionals (with the PSC userinfo claims) and registered clients.

The userinfo claim names follow what PSC publishes for relying parties (``SubjectNameID`` = idNat_PS,
``SubjectRole``, ``Secteur_Activite``, ``Palier_Authentification``, ``SubjectRefPro.exercices[].activities[]``
with the 30 fields of :data:`ACTIVITY_FIELDS`), as the samples of the PSC test environment show them (JSON schema
``psc-data.json`` and its test data in ansforge/PSC-POC, ``remote-cache``). The fixtures are ``fixtures/psc/users.json`` and ``fixtures/psc/clients.json``; both are synthetic.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: OIDs PSC qualifies its coded claims with.
OID_PROFESSION = "1.2.250.1.213.1.1.5.5"  # TRE_G15 profession codes (SubjectRole)
OID_SECTEUR = "1.2.250.1.71.4.2.4"  # TRE_R02 activity sectors (Secteur_Activite)
PSI_LOCALE = "1.2.250.1.213.1.3.1.1"

_ID_NAT_PS = re.compile(r"^(8\d{11}|0\d{9}|[1-6]\d{9}/[0-9A-Za-z]{1,30}|3\d{9}/[0-9A-Za-z]{1,30})$")
#: Namespace of the simulator's ``sub`` values (``f:<uuid>:<idNat_PS>``, the shape PSC's federated subs have).
SUB_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:socle-harness:psc-simulator")


class FixtureError(ValueError):
    """A professional or client description is invalid."""


#: The 30 fields of ``SubjectRefPro.exercices[].activities[]``, in the order PSC publishes them (ANS, PSC userinfo
#: of the test environment: JSON schema ``psc-data.json`` and its sample in ansforge/PSC-POC ``remote-cache``).
ACTIVITY_FIELDS = (
    "codeModeExercice",
    "codeSecteurDactivite",
    "codeSectionPharmacien",
    "codeRole",
    "codeGenreActivite",
    "numeroSiretSite",
    "numeroSirenSite",
    "numeroFinessSite",
    "numeroFinessetablissementJuridique",
    "identifiantTechniqueDeLaStructure",
    "raisonSocialeSite",
    "enseigneCommercialeSite",
    "complementDestinataire",
    "complementPointGeographique",
    "numeroVoie",
    "indiceRepetitionVoie",
    "codeTypeDeVoie",
    "libelleVoie",
    "mentionDistribution",
    "bureauCedex",
    "codePostal",
    "codeCommune",
    "codePays",
    "telephone",
    "telephone2",
    "telecopie",
    "adresseEMail",
    "codeDepartement",
    "ancienIdentifiantDeLaStructure",
    "autoriteDenregistrement",
)
_TYPED_ACTIVITY_FIELDS = {
    "numeroFinessSite": "finess_site",
    "numeroFinessetablissementJuridique": "finess_juridique",
    "identifiantTechniqueDeLaStructure": "structure_id",
    "raisonSocialeSite": "raison_sociale",
    "codeSecteurDactivite": "secteur",
    "codeModeExercice": "mode_exercice",
    "codeRole": "role",
}


@dataclass(frozen=True)
class Activity:
    """One activity (``SubjectRefPro.exercices[].activities[]``): where and in which sector the professional works.

    The fields the harness reads are typed; the other published fields (address, telephone, ``codeGenreActivite``...)
    are kept in ``others`` and given back in :meth:`claims` (empty strings when the fixture has none, as PSC does).
    """

    finess_site: str = ""  # numeroFinessSite (FINESS géographique)
    finess_juridique: str = ""  # numeroFinessetablissementJuridique
    structure_id: str = ""  # identifiantTechniqueDeLaStructure
    raison_sociale: str = ""  # raisonSocialeSite
    secteur: str = ""  # codeSecteurDactivite (TRE_R02, e.g. SA17)
    mode_exercice: str = ""  # codeModeExercice (L libéral, S salarié...)
    role: str = ""  # codeRole
    others: tuple[tuple[str, str], ...] = ()  # the other ACTIVITY_FIELDS present in the fixture

    @classmethod
    def from_claims(cls, raw: Mapping[str, Any]) -> Activity:
        typed = {attr: str(raw.get(name, "")) for name, attr in _TYPED_ACTIVITY_FIELDS.items()}
        others = tuple(
            (name, str(raw[name])) for name in ACTIVITY_FIELDS if name not in _TYPED_ACTIVITY_FIELDS and name in raw
        )
        return cls(**typed, others=others)

    def fixture(self) -> dict[str, str]:
        """The fields this activity was read from (:meth:`from_claims` gives it back unchanged)."""
        return {**dict(self.others), **{name: getattr(self, attr) for name, attr in _TYPED_ACTIVITY_FIELDS.items()}}

    def claims(self) -> dict[str, str]:
        """The 30 published fields, in PSC's order."""
        values = dict(self.others)
        values.update({name: getattr(self, attr) for name, attr in _TYPED_ACTIVITY_FIELDS.items()})
        return {name: values.get(name, "") for name in ACTIVITY_FIELDS}


@dataclass(frozen=True)
class Exercice:
    """One professional practice (``SubjectRefPro.exercices[]``): a profession and its activities."""

    profession: str  # codeProfession (TRE_G15)
    categorie: str = "C"  # codeCategorieProfessionnelle
    savoir_faire: str = ""
    type_savoir_faire: str = ""
    activities: tuple[Activity, ...] = ()

    @classmethod
    def from_claims(cls, raw: Mapping[str, Any]) -> Exercice:
        acts = raw.get("activities", [])
        if not isinstance(acts, list):
            raise FixtureError("activities doit être une liste")
        return cls(
            profession=str(raw.get("codeProfession", "")),
            categorie=str(raw.get("codeCategorieProfessionnelle", "C")),
            savoir_faire=str(raw.get("codeSavoirFaire", "")),
            type_savoir_faire=str(raw.get("codeTypeSavoirFaire", "")),
            activities=tuple(Activity.from_claims(a) for a in acts),
        )


@dataclass(frozen=True)
class Professional:
    """A test professional as PSC knows them."""

    login: str  # what the login page, login_hint and the steps use ("claire.durand")
    id_nat_ps: str  # SubjectNameID
    given_name: str
    family_name: str
    civilite: str = ""
    roles: tuple[str, ...] = ()  # SubjectRole ("10^1.2.250.1.213.1.1.5.5")
    secteur_activite: str = ""  # Secteur_Activite ("SA17^1.2.250.1.71.4.2.4")
    palier: str = ""  # Palier_Authentification
    exercices: tuple[Exercice, ...] = ()
    acr: str = "eidas1"  # the authentication level this professional's e-CPS / CPS login reaches

    @property
    def rpps(self) -> str | None:
        """The 11-digit RPPS number when the idNat_PS is an RPPS one ("8" + RPPS)."""
        if len(self.id_nat_ps) == 12 and self.id_nat_ps.startswith("8"):
            return self.id_nat_ps[1:]
        return None

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def sub(self) -> str:
        return f"f:{SUB_NAMESPACE}:{self.id_nat_ps}"

    @property
    def finess_sites(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.finess_site for e in self.exercices for a in e.activities if a.finess_site))

    def without_activity_at(self, finess: str | None) -> Professional:
        """A copy without the activities at ``finess`` (all FINESS activities when ``finess`` is None)."""

        def keep(a: Activity) -> bool:
            return not a.finess_site if finess is None else a.finess_site != finess

        return replace(
            self,
            exercices=tuple(replace(e, activities=tuple(a for a in e.activities if keep(a))) for e in self.exercices),
        )

    def other_ids(self) -> list[dict[str, Any]]:
        """``otherIds`` as PSC gives it in userinfo, access tokens and introspection."""
        return [{"identifiant": self.id_nat_ps, "origine": "RPPS" if self.rpps else "EDIT", "qualite": 1}]

    def userinfo(self) -> dict[str, Any]:
        """The PSC userinfo claims of this professional."""
        first = next((a for e in self.exercices for a in e.activities), None)
        return {
            "sub": self.sub,
            "SubjectNameID": self.id_nat_ps,
            "preferred_username": self.id_nat_ps,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "email_verified": False,
            "SubjectRole": list(self.roles),
            "Secteur_Activite": self.secteur_activite,
            "SubjectOrganization": first.raison_sociale if first else "",
            "SubjectOrganizationID": first.structure_id if first else "",
            "Palier_Authentification": self.palier,
            "PSI_Locale": PSI_LOCALE,
            "UITVersion": "1.0",
            "Mode_Acces_Raison": "",
            "Acces_Regulation_Medicale": "FAUX",
            "otherIds": self.other_ids(),
            "SubjectRefPro": {
                "codeCivilite": self.civilite,
                "exercices": [
                    {
                        "codeProfession": e.profession,
                        "codeCategorieProfessionnelle": e.categorie,
                        "codeCiviliteDexercice": self.civilite,
                        "nomDexercice": self.family_name,
                        "prenomDexercice": self.given_name,
                        "codeTypeSavoirFaire": e.type_savoir_faire,
                        "codeSavoirFaire": e.savoir_faire,
                        "activities": [a.claims() for a in e.activities],
                    }
                    for e in self.exercices
                ],
            },
        }

    def fixture(self) -> dict[str, Any]:
        """The fixture form of this professional (:meth:`from_fixture` gives it back unchanged): what a shared-state
        operation carries (a session keeps the professional as they were at login)."""
        return {
            "login": self.login,
            "SubjectNameID": self.id_nat_ps,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "codeCivilite": self.civilite,
            "SubjectRole": list(self.roles),
            "Secteur_Activite": self.secteur_activite,
            "Palier_Authentification": self.palier,
            "exercices": [
                {
                    "codeProfession": e.profession,
                    "codeCategorieProfessionnelle": e.categorie,
                    "codeSavoirFaire": e.savoir_faire,
                    "codeTypeSavoirFaire": e.type_savoir_faire,
                    "activities": [a.fixture() for a in e.activities],
                }
                for e in self.exercices
            ],
            "acr": self.acr,
        }

    @classmethod
    def from_fixture(cls, raw: Mapping[str, Any]) -> Professional:
        """Build from the fixture form (PSC claim names; see ``fixtures/psc/users.json``)."""
        if not isinstance(raw, Mapping):
            raise FixtureError("un professionnel est un objet JSON")
        try:
            login = str(raw["login"]).strip()
            id_nat = str(raw["SubjectNameID"]).strip()
            given, family = str(raw["given_name"]), str(raw["family_name"])
        except KeyError as exc:
            raise FixtureError(f"champ obligatoire absent: {exc.args[0]}") from None
        if not login or len(login) > 100:
            raise FixtureError("login vide ou trop long")
        if not _ID_NAT_PS.match(id_nat):
            raise FixtureError(f"SubjectNameID (idNat_PS) invalide: {id_nat!r}")
        roles = raw.get("SubjectRole", [])
        exercices = raw.get("exercices", raw.get("SubjectRefPro", {}).get("exercices", []))
        if not isinstance(roles, list) or not isinstance(exercices, list):
            raise FixtureError("SubjectRole et exercices doivent être des listes")
        return cls(
            login=login,
            id_nat_ps=id_nat,
            given_name=given,
            family_name=family,
            civilite=str(raw.get("codeCivilite", "")),
            roles=tuple(str(r) for r in roles),
            secteur_activite=str(raw.get("Secteur_Activite", "")),
            palier=str(raw.get("Palier_Authentification", "")),
            exercices=tuple(Exercice.from_claims(e) for e in exercices),
            acr=str(raw.get("acr", "eidas1")),
        )


@dataclass(frozen=True)
class Client:
    """A registered relying party (a DUI)."""

    client_id: str
    client_secret: str
    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    id_token_alg: str = "RS256"
    userinfo_alg: str | None = None  # None: JSON userinfo unless the DUI asks for application/jwt
    require_pkce: bool = True
    default_login: str | None = None  # pre-selected professional for this client (automated runs)

    @classmethod
    def from_fixture(cls, raw: Mapping[str, Any]) -> Client:
        try:
            return cls(
                client_id=str(raw["client_id"]),
                client_secret=str(raw["client_secret"]),
                name=str(raw.get("name", raw["client_id"])),
                redirect_uris=tuple(raw["redirect_uris"]),
                post_logout_redirect_uris=tuple(raw.get("post_logout_redirect_uris", ())),
                auth_methods=tuple(
                    raw.get("token_endpoint_auth_methods", ("client_secret_basic", "client_secret_post"))
                ),
                id_token_alg=str(raw.get("id_token_signed_response_alg", "RS256")),
                userinfo_alg=raw.get("userinfo_signed_response_alg"),
                require_pkce=bool(raw.get("require_pkce", True)),
                default_login=raw.get("default_login"),
            )
        except KeyError as exc:
            raise FixtureError(f"client: champ obligatoire absent: {exc.args[0]}") from None


@dataclass(frozen=True)
class PscFixtures:
    users: tuple[Professional, ...] = ()
    clients: tuple[Client, ...] = field(default_factory=tuple)


def load_fixtures(folder: Path) -> PscFixtures:
    """Load ``users.json`` and ``clients.json`` from ``folder`` (``fixtures/psc``); missing files mean none."""
    users: list[Professional] = []
    clients: list[Client] = []
    users_file, clients_file = folder / "users.json", folder / "clients.json"
    if users_file.is_file():
        users = [Professional.from_fixture(u) for u in json.loads(users_file.read_text(encoding="utf-8"))["users"]]
    if clients_file.is_file():
        clients = [Client.from_fixture(c) for c in json.loads(clients_file.read_text(encoding="utf-8"))["clients"]]
    return PscFixtures(users=tuple(users), clients=tuple(clients))
