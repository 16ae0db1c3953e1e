"""Pro Santé Connect simulator: the national OpenID Connect provider of health and social-care professionals.

Mounted at ``/psc`` on the harness's HTTPS port; the realm is ``/psc/auth/realms/esante-wallet`` (discovery at
``.well-known/openid-configuration`` and PSC's ``.well-known/wallet-openid-configuration``). See
:mod:`mock_services.psc.provider` for the endpoints, flows, faults and specifications followed, and
:mod:`mock_services.psc.model` for the professionals and their PSC claims. The MSSanté simulator accepts a PSC
access token for SASL XOAUTH2 (SMTP and IMAP, personal mailboxes), checked in-process through the
``psc.access_token`` capability this simulator provides; the DMP's VIHF stays the structure's (authentification
indirecte) and does not carry the PSC identity.

With a PostgreSQL journal the realm's state (professionals and next login, pending requests, sessions, codes,
tokens, signing keys) is shared by the serving processes (:class:`mock_services.psc.realm.Realm`): a code issued
by one is redeemed once on any.

Settings (``[settings.psc]``): ``fixtures_dir`` (folder with ``users.json`` / ``clients.json``; default the
harness's ``fixtures/psc``) and the fields of :class:`mock_services.psc.realm.Settings`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.types import ASGIApp

from harness.core.config import package_root
from harness.host.simulator import Simulator, SimulatorContext
from mock_services.psc.model import load_fixtures
from mock_services.psc.provider import PROTOCOL, REALM, Provider, Settings
from mock_services.psc.realm import FAULT_CATALOGUE, SESSION_FAULTS

logger = logging.getLogger(__name__)


class PSCSimulator(Simulator):
    fault_catalogue = FAULT_CATALOGUE
    session_faults = SESSION_FAULTS  # all but psc.down, which answers before any request is read
    name = "psc"
    title = "Pro Santé Connect (fournisseur d'identité OpenID Connect des professionnels)"
    http_error_shape = "oauth"

    def __init__(self, ctx: SimulatorContext) -> None:
        super().__init__(ctx)
        settings = Settings.from_mapping(ctx.settings)
        folder = Path(settings.fixtures_dir or package_root() / "fixtures" / "psc")
        self.provider = Provider(ctx, load_fixtures(folder), settings)
        # In-process access-token check for the other simulators (MSSanté SASL XOAUTH2): RFC 7662-shaped answer.
        ctx.services.provide("psc.access_token", self.provider.introspection)

    def http_app(self) -> ASGIApp:
        return Starlette(routes=self.provider.routes())

    def serving(self) -> None:
        # the signing keys (RSA 2048: ~0.1 s of CPU) are generated once every port answers, not before: a request
        # that needs them first waits on the key ring's lock and gets the same keys
        threading.Thread(target=self._warm_keys, name="psc-keys", daemon=True).start()

    def _warm_keys(self) -> None:
        try:
            self.provider.keys.warm()
        except Exception as exc:  # the host stopping meanwhile (shared state: its database pool closed)
            logger.warning("clés PSC non préparées (%s) : la première requête les crée / PSC keys not warmed", exc)

    def http_endpoints(self) -> dict[str, str]:
        return {
            "issuer": REALM,
            "discovery": REALM + "/.well-known/openid-configuration",
            "wallet_discovery": REALM + "/.well-known/wallet-openid-configuration",
            "authorize": PROTOCOL + "/auth",
            "token": PROTOCOL + "/token",
            "userinfo": PROTOCOL + "/userinfo",
            "introspect": PROTOCOL + "/token/introspect",
            "logout": PROTOCOL + "/logout",
            "jwks": PROTOCOL + "/certs",
            "admin": "/_admin",
        }
