"""The few HTML pages of the PSC simulator (French): login chooser for manual recette, errors, logout."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from mock_services.psc.model import Client, Professional

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;color:#1e1e1e}"
    "h1{color:#000091;font-size:1.5rem}button{margin:.25rem 0;padding:.5rem 1rem;width:100%;text-align:left;"
    "background:#f5f5fe;border:1px solid #000091;border-radius:4px;cursor:pointer}"
    ".pro small{color:#555}.erreur{border-left:4px solid #ce0500;padding-left:1rem}code{background:#eee;padding:0 .25rem}"
)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><p><strong>Pro Santé Connect</strong> — simulateur de recette "
        f"(socle-harness)</p>{body}</body></html>"
    )


def login_page(action: str, request_id: str, client: Client, users: Iterable[Professional]) -> str:
    """The professional chooser shown when no login is pre-selected (stands for the e-CPS / CPS step)."""
    rows = []
    for user in users:
        sites = ", ".join(user.finess_sites) or "aucun FINESS"
        rows.append(
            f'<button class="pro" name="login" value="{escape(user.login)}">{escape(user.display_name)} '
            f"<small>— idNat_PS {escape(user.id_nat_ps)} — activités: {escape(sites)}</small></button>"
        )
    body = (
        f"<h1>Se connecter avec Pro Santé Connect</h1><p>Le service <strong>{escape(client.name)}</strong> demande "
        "votre identification. Choisissez le professionnel d'essai qui s'authentifie (cette étape remplace "
        "l'application e-CPS ou la carte CPS).</p>"
        f'<form method="post" action="{escape(action)}"><input type="hidden" name="request_id" '
        f'value="{escape(request_id)}">{"".join(rows)}'
        '<p><button name="cancel" value="1" style="background:#fff">Annuler</button></p></form>'
    )
    return _page("Connexion Pro Santé Connect", body)


def error_page(error: str, description: str) -> str:
    body = (
        f'<h1>Requête refusée</h1><div class="erreur"><p>Erreur <code>{escape(error)}</code></p>'
        f"<p>{escape(description)}</p></div><p>Vous n'êtes pas redirigé vers le service demandeur.</p>"
    )
    return _page("Erreur Pro Santé Connect", body)


def logged_out_page(detail: str) -> str:
    return _page("Déconnexion Pro Santé Connect", f"<h1>Vous êtes déconnecté</h1><p>{escape(detail)}</p>")


def down_page() -> str:
    return _page(
        "Pro Santé Connect indisponible",
        "<h1>Service momentanément indisponible</h1>"
        "<p>Pro Santé Connect ne répond pas (panne simulée). Réessayez plus tard.</p>",
    )
