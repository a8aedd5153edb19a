"""The QTickets resource: the real API when configured, else the built-in sandbox in-process."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr

from ..settings import get_settings
from .client import QTicketsClient, RetryBudget, RetryPolicy

if TYPE_CHECKING:
    from ..sandbox import Sandbox


class QTicketsResource(dg.ConfigurableResource):
    base_url: str = Field("", description="Real API base URL; empty means the built-in sandbox.")
    token: str = Field("", description="Bearer token (set from the QTICKETS_API_TOKEN env var).")
    timeout_s: float = 60.0
    per_page: int = 100
    concurrency: int = Field(1, ge=1, le=8, description="Requests in flight; the vendor publishes no limits.")
    rejects_dir: str = Field("", description="Where raw pages with malformed records are kept; "
                                             "empty: <QTICKETS_DATA_DIR>/qtickets_rejects.")
    sandbox_seed: int = 42
    sandbox_opened_on: str = "2026-10-01"
    sandbox_orders_per_day: int = 120
    sandbox_event_every_days: float = 4.0
    sandbox_fault_rate: float = Field(0.0, ge=0, le=1, description="Share of sandbox answers that are "
                                      "injected faults (429, 5xx, slow, truncated, HTML); shows the retries.")
    sandbox_as_of: str = Field("", description="Freeze the sandbox clock at this ISO instant (replays).")

    _budget: RetryBudget | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # One retry budget for every client of the run: a dead API fails the run fast.
        self._budget = RetryBudget(RetryPolicy())

    @property
    def uses_sandbox(self) -> bool:
        return not self.base_url

    def sandbox(self) -> Sandbox:
        from ..sandbox import Faults, Sandbox  # production never imports the stand-in

        frozen = datetime.fromisoformat(self.sandbox_as_of) if self.sandbox_as_of else None
        faults = Faults(self.sandbox_fault_rate, seed=self.sandbox_seed) if self.sandbox_fault_rate else None
        return Sandbox(
            seed=self.sandbox_seed,
            opened_on=datetime.fromisoformat(self.sandbox_opened_on).date(),
            orders_per_day=self.sandbox_orders_per_day,
            clock=(lambda: frozen) if frozen else None,
            event_every_days=self.sandbox_event_every_days,
            faults=faults,
        )

    def get_client(self) -> QTicketsClient:
        """A client that spends the run's retry budget."""
        rejects = Path(self.rejects_dir or get_settings().qtickets_data_dir / "qtickets_rejects")
        options = dict(timeout_s=self.timeout_s, per_page=self.per_page, concurrency=self.concurrency,
                       rejects_dir=rejects, budget=self._budget)
        if self.uses_sandbox:
            from ..sandbox import SANDBOX_BASE_URL, SANDBOX_TOKEN

            transport = self.sandbox().transport()
            return QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN, transport=transport, **options)
        return QTicketsClient(self.base_url, self.token, **options)
