"""MSSanté simulator: the secure health messaging space as a DUI sees it.

One instance per run holds a mailbox store (:mod:`.store`) and the test directory (:mod:`.directory`), shared by:
- SMTP submission with STARTTLS (:mod:`.smtp`, :mod:`.smtp_auth`): validation of what the DUI sends, delivery
  into the store, MDN receipts (:mod:`.mailflow`);
- IMAP4rev1 with STARTTLS (:mod:`.imap`, pymap): the DUI reads its organisation / applicative mailbox;
- the directory lookup ``GET /mssante/fhir/PractitionerRole`` (Annuaire Santé FHIR search shape);
- the HL7 v2 relay over MLLP (:mod:`.hl7relay`) for DUIs that hand documents to an integration platform.

Endpoints: ``smtp``, ``imap``, ``mllp`` (host:port, ephemeral by default) and ``directory`` (HTTPS).
Organisation certificates ``MSS-<FINESS>`` (``OU`` = ``1`` + FINESS) are issued in the test PKI for each
establishment of the fixtures, for ``AUTHENTICATE EXTERNAL`` (mutual TLS).
"""

from __future__ import annotations

from typing import cast

from starlette.applications import Starlette
from starlette.types import ASGIApp

from harness.fields.identity import ProductionInsPolicy
from harness.host.simulator import Simulator, SimulatorContext, catalogue_of
from mock_services.mssante.auth_backoff import shared_backoff
from mock_services.mssante.directory import DirectoryApi, MailboxDirectory
from mock_services.mssante.faults import (
    FAULT_MAILBOX_FULL,
    FAULT_REPLY_LOST,
    FAULT_SMTP_REPLY,
    FAULT_TLS_REQUIRED,
    FAULTS,
)
from mock_services.mssante.hl7relay import Hl7Relay
from mock_services.mssante.imap import ImapServer
from mock_services.mssante.mailflow import MailFlow
from mock_services.mssante.settings import MssanteSettings
from mock_services.mssante.smtp import SmtpSettings, SubmissionServer
from mock_services.mssante.smtp_auth import refusing_context
from mock_services.mssante.store import BodyStore, MailStore, PayloadStore


def certificate_name(finess: str) -> str:
    """Name of the MSSanté organisation certificate of an establishment in the test PKI."""
    return f"MSS-{finess}"


class MSSanteSimulator(Simulator):
    name = "mssante"
    title = "MSSanté (messagerie sécurisée de santé)"
    http_error_shape = "fhir"
    tcp_ports = ("smtp", "imap", "mllp")
    fault_catalogue = catalogue_of(FAULTS)
    # taken once the SMTP client has authenticated (MAIL, RCPT, DATA): they may be aimed at one test session; the
    # TLS handshake refusal and the slow server (an IMAP greeting) come before any identity
    session_faults = frozenset({FAULT_MAILBOX_FULL, FAULT_TLS_REQUIRED, FAULT_SMTP_REPLY, FAULT_REPLY_LOST})

    def __init__(self, ctx: SimulatorContext) -> None:
        super().__init__(ctx)
        settings = SmtpSettings.from_mapping(dict(ctx.settings))
        # mailboxes replicated on stream mssante.mailboxes; with several serving processes (PostgreSQL journal) the
        # bodies are also kept in the journal's evidence so that every process reads them
        remote = cast(PayloadStore, ctx.journal) if ctx.state.shared else None
        self.store = MailStore(
            bodies=BodyStore(remote=remote),
            quota_bytes=MssanteSettings.from_mapping(ctx.settings).mailbox_quota_bytes or None,
            state=ctx.state,
        )
        self.directory = MailboxDirectory(ctx)
        # password back-off shared by SMTP and IMAP ([settings.mssante] auth_backoff)
        shared_backoff(ctx, MssanteSettings.from_mapping(ctx.settings).auth_backoff)
        self.store.ensure_mailboxes(mailbox.address for mailbox in self.directory.all())
        self.flow = MailFlow(ctx, self.store, self.directory, strict=settings.strict, hostname=settings.hostname)
        tls = ctx.pki.server_ssl_context()
        refusing = refusing_context(str(ctx.pki.server.chain_path), str(ctx.pki.server.key_path))
        self.smtp = SubmissionServer(ctx, self.directory, self.flow, tls)
        self.imap = ImapServer(ctx, self.store, self.directory, tls, refusing)
        self.relay = Hl7Relay(ctx, self.flow)
        self.api = DirectoryApi(ctx, self.directory)

    @property
    def production_ins(self) -> ProductionInsPolicy:
        """The production-INS policy of SMTP submission and of the HL7 relay (setting ``production_ins``)."""
        return self.smtp.handler.production_ins

    @production_ins.setter
    def production_ins(self, policy: ProductionInsPolicy) -> None:
        self.smtp.handler.production_ins = policy
        self.relay.production_ins = policy

    def http_app(self) -> ASGIApp:
        return Starlette(routes=self.api.routes())

    def http_endpoints(self) -> dict[str, str]:
        return {"directory": "/fhir"}

    async def start(self) -> dict[str, str]:
        for establishment in self.ctx.testdata.establishments:
            name = certificate_name(establishment.finess)
            if name not in self.ctx.pki.clients:
                self.ctx.pki.issue_client(name, establishment.name, structure_id="1" + establishment.finess)
        endpoints = {"smtp": await self.smtp.start(), "imap": await self.imap.start()}
        endpoints["mllp"] = await self.relay.start()
        return endpoints

    async def stop(self) -> None:
        await self.relay.stop()
        await self.imap.stop()
        await self.smtp.stop()
        self.store.close()
