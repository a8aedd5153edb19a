"""The whole webhook path on the real engine: a day of sandbox changes (refunds of old sales included)
posted as signed hooks to the receiver app, the sensor's run request, that run (orders staging draining
the store, the touched fact days rebuilt), and every fact day equal to the sandbox's truth after it."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest
from starlette.testclient import TestClient

from qtickets_assets.assets import checks, marts, raw, views
from qtickets_assets.automation import MOSCOW
from qtickets_assets.qtickets.resource import QTicketsResource
from qtickets_assets.sandbox import Sandbox
from qtickets_assets.sandbox.webhooks import HookSender, changes
from qtickets_assets.service import create_app
from qtickets_assets.settings import get_settings
from qtickets_assets.warehouse.io_manager import ClickHouseIOManager
from qtickets_assets.warehouse.resource import ClickHouseResource
from qtickets_assets.webhooks.sensor import pending_webhooks, webhook_job
from qtickets_assets.webhooks.store import HookStore
from tests.builders import AS_OF, OPENED_ON

ASSETS = dg.load_assets_from_modules([raw, marts, views])
CHECKS = dg.load_asset_checks_from_modules([checks])
BEFORE, AFTER = AS_OF - timedelta(days=1), AS_OF  # history loaded at BEFORE; a day of hooks until AFTER
FIRST = BEFORE.astimezone(MOSCOW).date() - timedelta(days=29)
SECRET = "path-secret-41"


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def resources(clickhouse, at, store: HookStore) -> dict:
    # As build_resources sets it up in embedded mode: the run drains the store and clears it at its end.
    qtickets = QTicketsResource(sandbox_opened_on=OPENED_ON, sandbox_as_of=at.isoformat(), per_page=1000,
                                webhook_store=str(store.path), clear_hooks_at_run_end=True)
    return {"clickhouse": clickhouse, "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
            "qtickets": qtickets}


def facts(clickhouse) -> dict:
    with clickhouse.get_client() as client:
        rows = client.query("SELECT sales_date, event_id, show_id, tickets_sold, revenue, orders_count, "
                            "refunded_tickets, refunds_amount FROM fact_qtickets_sales_daily FINAL "
                            "WHERE tickets_sold > 0 OR refunded_tickets > 0").result_rows
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}


def truth(sandbox: Sandbox, at, first: date) -> dict:
    columns = ("tickets_sold", "revenue", "orders_count", "refunded_tickets", "refunds_amount")
    return {key: tuple(v[name] for name in columns) for key, v in sandbox.expected_sales_daily(at).items()
            if key[0] >= first and (v["tickets_sold"] or v["refunded_tickets"])}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("QTICKETS_WEBHOOK_STORE", str(tmp_path / "hooks.sqlite3"))
    monkeypatch.setenv("QTICKETS_SANDBOX_AS_OF", AFTER.isoformat())  # the sensor's "today"
    get_settings.cache_clear()
    yield HookStore(tmp_path / "hooks.sqlite3")
    get_settings.cache_clear()


@pytest.mark.slow
def test_a_day_of_hooks_brings_every_fact_day_to_the_truth(tmp_path, store):
    clickhouse = ClickHouseResource(dsn=f"chdb://{tmp_path / 'clickhouse'}", lock_timeout_s=5)
    sandbox = Sandbox(opened_on=date.fromisoformat(OPENED_ON), clock=Clock(BEFORE))

    history = dg.materialize([*ASSETS, *CHECKS], resources=resources(clickhouse, BEFORE, store), tags={
        "dagster/asset_partition_range_start": FIRST.isoformat(),
        "dagster/asset_partition_range_end": BEFORE.astimezone(MOSCOW).date().isoformat()})
    assert history.success and facts(clickhouse) == truth(sandbox, BEFORE, FIRST)

    # What the day changed on days older than the 15-minute window: only hooks (or the reconcile) see it.
    old = AFTER.astimezone(MOSCOW).date() - timedelta(days=2)
    before, after = truth(sandbox, BEFORE, FIRST), truth(sandbox, AFTER, FIRST)
    assert {k for k in before.keys() | after.keys() if k[0] < old and before.get(k) != after.get(k)}, \
        "no old sales day changed: the test would prove nothing"
    assert any(event == "refunded" for _, _, event in changes(sandbox.account, BEFORE, AFTER))

    client = TestClient(create_app(SECRET, store, lambda: pytest.fail("no instance needed"), []))
    sender = HookSender(sandbox, "http://testserver/webhooks/qtickets", SECRET, client=client)
    sandbox.clock.now = AFTER
    assert sender.tick() > 50 and not sender.queue

    with dg.DagsterInstance.ephemeral() as instance:
        [request] = pending_webhooks.evaluate_tick(dg.build_sensor_context(instance=instance)).run_requests
        run = dg.materialize([*ASSETS, *CHECKS], resources=resources(clickhouse, AFTER, store),
                             instance=instance, selection=webhook_job.selection, tags=request.tags)
        assert run.success
        assert not pending_webhooks.evaluate_tick(dg.build_sensor_context(instance=instance)).run_requests
    assert store.depth() == (0, None)  # cleared once the run had succeeded
    assert facts(clickhouse) == after
