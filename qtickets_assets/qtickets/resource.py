"""The QTickets resource: the real API when configured, else the built-in sandbox in-process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr

from ..local_store import sqlite_store
from ..settings import get_settings
from ..webhooks.drain import clear_applied, run_failed
from ..webhooks.store import HookStore, Pending
from .client import QTicketsClient, RetryBudget, RetryPolicy, prune_rejects

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
    rejects_retention_days: float = Field(14, gt=0, description="Kept pages (buyers' data) are removed "
                                          "this many days after they were written, at each run's start.")
    sandbox_seed: int = 42
    sandbox_opened_on: str = "2026-10-01"
    sandbox_orders_per_day: int = 120
    sandbox_event_every_days: float = 4.0
    sandbox_fault_rate: float = Field(0.0, ge=0, le=1, description="Share of sandbox answers that are "
                                      "injected faults (429, 5xx, slow, truncated, HTML); shows the retries.")
    sandbox_as_of: str = Field("", description="Freeze the sandbox clock at this ISO instant (replays).")
    sandbox_resales: str = Field("", description="SHOW_ID@ISO_INSTANT, comma-separated: at that instant "
                                 "older tickets of the show are refunded without a webhook and the show is "
                                 "sold out (sandbox.Resale).")

    watermark_overlap_s: float = Field(600, ge=0, description="The watermark read re-reads the orders "
                                       "changed this long before the newest landed change (skew, ties).")
    repair_max_shows: int = Field(5, ge=0, description="Shows sold over capacity whose orders a run "
                                  "re-reads before the check (assets/repair.py).")
    repair_max_orders: int = Field(2000, ge=0, description="Orders that repair re-reads at most per run.")
    repair_max_events: int = Field(10, ge=0, description="Events (one request each) that the check "
                                   "covers_ordered_shows re-reads per run for ordered shows missing from "
                                   "dim_events (assets/repair_events.py).")
    webhook_store: str = Field("", description="SQLite file of pending webhook ids that runs re-read; "
                                               "empty: no webhooks.")
    clear_hooks_at_run_end: bool = Field(False, description="Clear the applied hook ids when the run's "
                                         "resources are torn down (only when one process runs every step).")
    shared_budget: bool = Field(False, description="Steps of a run run in separate processes (server "
                                "mode): they share the run's retry budget through the instance's storage.")

    _budget: RetryBudget | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # One retry budget for every client of the run: a dead API fails the run fast.
        if self.shared_budget and context.instance and context.run:
            path = Path(context.instance.storage_directory()) / "retry_budgets.sqlite3"
            self._budget = RunRetryBudget(RetryPolicy(), path, context.run.run_id)
        else:
            self._budget = RetryBudget(RetryPolicy())
        removed = prune_rejects(self.rejects_path, self.rejects_retention_days)
        if removed:
            context.log.info(f"removed {len(removed)} kept pages older than {self.rejects_retention_days:g} "
                             f"days from {self.rejects_path} (QTICKETS_REJECTS_RETENTION_DAYS)")

    @property
    def rejects_path(self) -> Path:
        return Path(self.rejects_dir or get_settings().qtickets_data_dir / "qtickets_rejects")

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
        from ..sandbox import Faults, Sandbox, parse_resales  # production never imports the stand-in

        frozen = datetime.fromisoformat(self.sandbox_as_of) if self.sandbox_as_of else None
        faults = Faults(self.sandbox_fault_rate, seed=self.sandbox_seed) if self.sandbox_fault_rate else None
        return Sandbox(
            seed=self.sandbox_seed,
            opened_on=datetime.fromisoformat(self.sandbox_opened_on).date(),
            orders_per_day=self.sandbox_orders_per_day,
            clock=(lambda: frozen) if frozen else None,
            event_every_days=self.sandbox_event_every_days,
            faults=faults,
            resales=parse_resales(self.sandbox_resales),
        )

    def get_client(self) -> QTicketsClient:
        """A client that spends the run's retry budget."""
        options = dict(timeout_s=self.timeout_s, per_page=self.per_page, concurrency=self.concurrency,
                       rejects_dir=self.rejects_path, budget=self._budget)
        if self.uses_sandbox:
            from ..sandbox import SANDBOX_BASE_URL, SANDBOX_TOKEN

            transport = self.sandbox().transport()
            return QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN, transport=transport, **options)
        return QTicketsClient(self.base_url, self.token, **options)


BUDGETS = ("CREATE TABLE IF NOT EXISTS retry_budgets "
           "(run_id TEXT PRIMARY KEY, state TEXT NOT NULL, since REAL)")


class RunRetryBudget(RetryBudget):
    """The run's one retry budget when its steps are separate processes (the multiprocess executor sets up
    resources once per step). Its state lives in a SQLite row keyed by the run id: each change loads the
    row, applies RetryBudget's own arithmetic and stores it back in one transaction, so every step of the
    run spends (and, where answers earn some back, earns) the same budget."""

    def __init__(self, policy: RetryPolicy, path: Path, run_id: str):
        super().__init__(policy)
        self._path, self._run_id, self._shared_lock = path, run_id, threading.Lock()

    @contextmanager
    def _shared(self) -> Iterator[None]:
        with self._shared_lock, sqlite_store(self._path, BUDGETS) as db:
            db.execute("BEGIN IMMEDIATE")  # one process at a time between the load and the store
            try:
                row = db.execute("SELECT state FROM retry_budgets WHERE run_id = ?",
                                 (self._run_id,)).fetchone()
                if row:
                    vars(self).update(json.loads(row[0]))
                yield
                state = {name: value for name, value in vars(self).items()
                         if not name.startswith("_") and name != "policy"}
                db.execute("INSERT OR REPLACE INTO retry_budgets VALUES (?, ?, ?)",
                           (self._run_id, json.dumps(state), time.time()))
                db.execute("DELETE FROM retry_budgets WHERE since < ?", (time.time() - 7 * 86400,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise


def _on_shared_state(method):
    def shared(self: RunRetryBudget, *args, **kwargs):
        with self._shared():  # noqa: SLF001
            return method(self, *args, **kwargs)
    return shared


# Every public method of RetryBudget (spend, and whatever else changes its state) runs on the run's row.
for _name, _method in list(vars(RetryBudget).items()):
    if callable(_method) and not _name.startswith("_"):
        setattr(RunRetryBudget, _name, _on_shared_state(_method))
