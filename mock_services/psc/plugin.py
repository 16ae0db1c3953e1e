"""The Pro Santé Connect service plugin (see :mod:`harness.sut.plugins`); imported only through its entry point."""

from __future__ import annotations

from harness.host.simulator import fault_specs
from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.plugins import ActionSpec, DuiSide, ServicePlugin
from harness.sut.psc_actions import PSC_DEFECTS, PscActions
from mock_services.psc import PSCSimulator
from mock_services.psc.realm import Settings


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


ACTIONS = (
    ActionSpec(
        name="psc-login",
        method="psc_login",
        request=base.PscLogin,
        summary="A professional logs in to the DUI with Pro Santé Connect (OIDC code flow + PKCE, acr eidas1) to "
        "work for the establishment. The professional is pre-selected at the simulator: the DUI follows "
        "the redirects itself, as a browser would.",
        instruction=_login,
        data={
            "id_nat_ps": "idNat_PS from the userinfo",
            "rpps": "RPPS (null for a non-RPPS professional)",
            "finess": "FINESS of the activity retained",
            "nom": "family name",
            "sub": "id token sub",
            "kid": "kid of the key that verified the id token",
            "sid": "PSC session id",
        },
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
        data={"sid": "PSC session id closed"},
    ),
)


PLUGIN = ServicePlugin(
    name="psc",
    title=PSCSimulator.title,
    simulator=PSCSimulator,
    settings=(Settings,),
    faults=fault_specs(PSCSimulator.fault_catalogue),
    dui=DuiSide(actions=ACTIONS, reference=PscActions, defects=PSC_DEFECTS),
    steps="harness.steps.psc",
)
