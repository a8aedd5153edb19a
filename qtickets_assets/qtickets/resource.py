"""The QTickets resource: the real API when configured, else the built-in sandbox in-process."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr

from ..settings import get_settings
from ..webhooks.drain import clear_applied, run_failed
from ..webhooks.store import HookStore, Pending
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

    watermark_overlap_s: float = Field(600, ge=0, description="The watermark read re-reads the orders "
                                       "changed this long before the newest landed change (skew, ties).")
    webhook_store: str = Field("", description="SQLite file of pending webhook ids that runs re-read; "
                                               "empty: no webhooks.")
    clear_hooks_at_run_end: bool = Field(False, description="Clear the applied hook ids when the run's "
                                         "resources are torn down (only when one process runs every step).")

    _budget: RetryBudget | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # One retry budget for every client of the run: a dead API fails the run fast.
        self._budget = RetryBudget(RetryPolicy())

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # With the in-process executor resources are torn down once, at the run's end (runs.py).
        run, instance = context.run, context.instance
        if not (self.clear_hooks_at_run_end and self.webhook_store and run and instance):
            return
        if run_failed(instance, run.run_id):
            context.log.info("run failed: its webhook ids stay pending")
            return
        cleared = clear_applied(instance, run.run_id, HookStore(self.webhook_store))
        if cleared:
            context.log.info(f"cleared {cleared} applied webhook hooks")

    def pending_hooks(self, limit: int = 5_000) -> Pending:
        """Order ids pushed by webhooks and not yet applied by a successful run."""
        if not self.webhook_store:
            return Pending([], 0, None)
        return HookStore(self.webhook_store).pending(limit)

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
