"""The QTickets resource: the real API when configured, else the built-in sandbox in-process."""

from datetime import datetime

import dagster as dg
from pydantic import Field

from .client import QTicketsClient
from .sandbox import SANDBOX_BASE_URL, SANDBOX_TOKEN, Sandbox


class QTicketsResource(dg.ConfigurableResource):
    base_url: str = Field("", description="Real API base URL; empty means the built-in sandbox.")
    token: str = Field("", description="Bearer token (set from the QTICKETS_API_TOKEN env var).")
    timeout_s: float = 60.0
    per_page: int = 100
    sandbox_seed: int = 42
    sandbox_opened_on: str = "2026-10-01"
    sandbox_orders_per_day: int = 120
    sandbox_as_of: str = Field("", description="Freeze the sandbox clock at this ISO instant (replays, demos).")

    @property
    def uses_sandbox(self) -> bool:
        return not self.base_url

    def sandbox(self) -> Sandbox:
        frozen = datetime.fromisoformat(self.sandbox_as_of) if self.sandbox_as_of else None
        return Sandbox(
            seed=self.sandbox_seed,
            opened_on=datetime.fromisoformat(self.sandbox_opened_on).date(),
            orders_per_day=self.sandbox_orders_per_day,
            clock=(lambda: frozen) if frozen else None,
        )

    def get_client(self) -> QTicketsClient:
        if self.uses_sandbox:
            return QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN, transport=self.sandbox().transport(),
                                  timeout_s=self.timeout_s, per_page=self.per_page)
        return QTicketsClient(self.base_url, self.token, timeout_s=self.timeout_s, per_page=self.per_page)
