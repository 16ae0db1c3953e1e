"""The DUI side of the Pro Santé Connect service plugin (:mod:`mock_services.psc.plugin`): the control-API actions with
their answers' data and the guided-recette instructions, imported when the reference DUI, the control API or a check
first asks for them (:func:`harness.sut.plugins.dui_side`), never by ``socle-harness serve`` (issue 18, cold start)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.config import package_root
from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.plugins import ActionSpec, DuiSide, fact
from harness.sut.psc_actions import PSC_DEFECTS, PscActions
from mock_services.psc.model import Professional, load_fixtures


def _login(action: base.PscLogin, env: SutEnvironment | None) -> str:
    return (
        f"Déconnectez-vous du DUI si besoin, puis connectez-vous au DUI de « {action.establishment.name} » avec "
        "« Pro Santé Connect » (le simulateur vous connecte avec le professionnel indiqué par le scénario)."
    )


def _refresh(action: None, env: SutEnvironment | None) -> str:
    return (
        "Restez connecté au DUI et poursuivez votre travail jusqu'au renouvellement de la session "
        "Pro Santé Connect (ou déclenchez-le depuis le DUI s'il le propose)."
    )


def _logout(action: None, env: SutEnvironment | None) -> str:
    return "Déconnectez-vous du DUI (bouton de déconnexion) : la session Pro Santé Connect doit être fermée aussi."


def example_professional(finess: str) -> Professional:
    """The first test professional of the simulator's fixtures (``fixtures/psc/users.json``) working at ``finess``:
    the control-API document's login example is what the simulator serves for them."""
    users = load_fixtures(package_root() / "fixtures" / "psc").users
    return next(u for u in users if finess in u.finess_sites)


def _claim(description: str, read: Any) -> Any:
    return fact(description, real=lambda s: read(example_professional(s.establishment.finess), s))


@dataclass(frozen=True)
class PscLoginData:
    id_nat_ps: str = _claim("idNat_PS from the userinfo", lambda p, s: p.id_nat_ps)
    rpps: str | None = _claim("RPPS (null for a non-RPPS professional)", lambda p, s: p.rpps)
    finess: str = _claim("FINESS of the activity retained", lambda p, s: s.establishment.finess)
    nom: str = _claim(
        "the professional's name the DUI shows (userinfo given_name, family_name)", lambda p, s: p.display_name
    )
    sub: str = _claim("id token sub", lambda p, s: p.sub)
    kid: str | None = fact(
        "kid of the key that verified the id token (RFC 7638 thumbprint of a key the simulator makes at start)",
        example="NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
    )
    sid: str | None = fact("PSC session id", example="8a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")


@dataclass(frozen=True)
class PscLogoutData:
    sid: str | None = fact("PSC session id closed", example="8a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")


ACTIONS = (
    ActionSpec(
        name="psc-login",
        method="psc_login",
        request=base.PscLogin,
        summary="A professional logs in to the DUI with Pro Santé Connect (OIDC code flow + PKCE, acr eidas1) to "
        "work for the establishment. The professional is pre-selected at the simulator: the DUI follows "
        "the redirects itself, as a browser would.",
        instruction=_login,
        data=PscLoginData,
    ),
    ActionSpec(
        name="psc-refresh",
        method="psc_refresh",
        request=None,
        summary="Refresh the current PSC session (refresh_token grant, rotation: use the newest refresh token).",
        instruction=_refresh,
    ),
    ActionSpec(
        name="psc-logout",
        method="psc_logout",
        request=None,
        summary="Log the professional out: RP-initiated logout at Pro Santé Connect, then close the local session.",
        instruction=_logout,
        data=PscLogoutData,
    ),
)


def side() -> DuiSide:
    """The DUI side: the actions above, the reference DUI's mixin and its named defects."""
    return DuiSide(actions=ACTIONS, reference=PscActions, defects=PSC_DEFECTS)
