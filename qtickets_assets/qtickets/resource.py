"""The QTickets resource: the real API when configured, else the built-in sandbox in-process."""

from datetime import date
from functools import cache

import dagster as dg
from pydantic import Field

from .client import QTicketsClient
from .sandbox import SANDBOX_BASE_URL, SANDBOX_TOKEN, Sandbox


@cache
def shared_sandbox(seed: int, opened_on: date, orders_per_day: int) -> Sandbox:
    """One sandbox per process and seed: its account is planned once, then rendered as of each call."""
    return Sandbox(seed=seed, opened_on=opened_on, orders_per_day=orders_per_day)


class QTicketsResource(dg.ConfigurableResource):
    base_url: str = Field("", description="Real API base URL; empty means the built-in sandbox.")
    token: str = Field("", description="Bearer token (set from the QTICKETS_API_TOKEN env var).")
    timeout_s: float = 60.0
    per_page: int = 100
    sandbox_seed: int = 42
    sandbox_opened_on: str = "2026-10-01"
    sandbox_orders_per_day: int = 120

    @property
    def uses_sandbox(self) -> bool:
        return not self.base_url

    def sandbox(self) -> Sandbox:
        return shared_sandbox(self.sandbox_seed, date.fromisoformat(self.sandbox_opened_on),
                              self.sandbox_orders_per_day)

    def get_client(self) -> QTicketsClient:
        if self.uses_sandbox:
            return QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN, transport=self.sandbox().transport(),
                                  timeout_s=self.timeout_s, per_page=self.per_page)
        return QTicketsClient(self.base_url, self.token, timeout_s=self.timeout_s, per_page=self.per_page)
