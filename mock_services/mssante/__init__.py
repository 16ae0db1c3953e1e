"""MSSanté simulator: the secure health messaging space as a DUI sees it.

This package currently implements the SMTP submission side (the DUI sends a message); IMAP, receipts (MDN),
the directory lookup and the HL7 v2 relay come with the "MSSanté simulator, complete" issue.
"""

from __future__ import annotations

from harness.simulator import Simulator, SimulatorContext
from mock_services.mssante.smtp import SubmissionServer


class MSSanteSimulator(Simulator):
    name = "mssante"
    title = "MSSanté (messagerie sécurisée de santé)"
    tcp_ports = ("smtp",)

    def __init__(self, ctx: SimulatorContext) -> None:
        super().__init__(ctx)
        self.smtp = SubmissionServer(ctx)

    async def start(self) -> dict[str, str]:
        return {"smtp": await self.smtp.start()}

    async def stop(self) -> None:
        await self.smtp.stop()
