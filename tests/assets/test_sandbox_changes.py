"""Changes to old sales reach the facts in one tick: the sandbox account loaded over 20 days at T0, then its
clock moves on 48 hours (cancellations, late payments, refunds of orders created up to 20 days earlier)
and ONE refresh over the tick's range (yesterday..today) makes the fact, v_sales_14d and v_sales_latest
equal the sandbox's truth on every day. Refunds do not move `updated_at`: they arrive as webhook ids.
A run that fails leaves those ids pending; the next successful one clears them."""

from collections import defaultdict
from datetime import datetime, time, timedelta

import dagster as dg
import pytest

from qtickets_assets import automation
from qtickets_assets.assets import marts
from qtickets_assets.qtickets.client import MSK
from qtickets_assets.qtickets.resource import QTicketsResource
from qtickets_assets.webhooks.store import HookStore
from tests.builders import OPENED_ON, query, refresh_job_run

# v_sales_14d follows the real clock, so the account's last days are recent: T1 is yesterday's noon (Moscow).
T0 = datetime.combine(datetime.now(MSK).date() - timedelta(days=3), time(12), MSK)
T1 = T0 + timedelta(hours=48)
FIRST = T0.date() - timedelta(days=20)
TICK = automation.day_range(T1 - timedelta(hours=24), T1)  # yesterday..today at T1
COLUMNS = ("tickets_sold", "revenue", "orders_count", "refunded_tickets", "refunds_amount")

pytestmark = pytest.mark.slow


def refresh(clickhouse, store: HookStore, now: datetime, keys: dg.PartitionKeyRange, instance):
    """The 15-minute job over `keys` with the sandbox's clock at `now`."""
    qtickets = QTicketsResource(sandbox_opened_on=OPENED_ON, sandbox_as_of=now.isoformat(), per_page=1000,
                                webhook_store=str(store.path), clear_hooks_at_run_end=True)
    return refresh_job_run(clickhouse, qtickets, keys, instance)


def warehouse_fact(clickhouse) -> dict:
    rows = query(clickhouse, f"SELECT sales_date, event_id, show_id, {', '.join(COLUMNS)} "
                             "FROM fact_qtickets_sales_daily FINAL")
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}


def truth(qtickets_sandbox, now) -> dict:
    return {key: tuple(v[c] for c in COLUMNS) for key, v in qtickets_sandbox.expected_sales_daily(now).items()
            if key[0] >= FIRST}


def test_one_tick_after_old_changes_equals_the_truth_on_every_day(clickhouse, tmp_path):
    store = HookStore(tmp_path / "hooks.sqlite3")
    sandbox = QTicketsResource(sandbox_opened_on=OPENED_ON).sandbox()
    yesterday = datetime.fromisoformat(TICK.start).date()
    with dg.instance_for_test() as instance:
        assert refresh(clickhouse, store, T0, dg.PartitionKeyRange(FIRST.isoformat(), T0.date().isoformat()),
                       instance).success
        assert warehouse_fact(clickhouse) == truth(sandbox, T0)

        # What moved between T0 and T1 in orders created before the tick's days.
        plans = [p for p in sandbox.account.orders_until(T1)
                 if p.created_at.astimezone(MSK).date() < yesterday]
        cancelled = [p for p in plans
                     if p.payed_at and p.deleted_at and p.payed_at <= T0 < p.deleted_at <= T1]
        paid_late = [p for p in plans if p.payed_at and T0 < p.payed_at <= T1]
        refunded = sorted({p.id for p in plans for b in p.baskets
                           if b.refunded_at and T0 < b.refunded_at <= T1})
        assert cancelled and paid_late and refunded
        assert min(p.created_at for p in cancelled + paid_late).date() < yesterday - timedelta(days=2)
        stale = {k[0] for k, v in truth(sandbox, T1).items() if warehouse_fact(clickhouse).get(k) != v}
        assert min(stale) < yesterday  # the old days are wrong until something re-reads those orders

        # The webhook receiver would have stored the refunds (and a stray id of nothing we know).
        for order_id in [*refunded, 999_999_999]:
            store.add(order_id, "refunded")
        pending = store.pending().order_ids

        # A run that fails after staging (a broken BI view) applies nothing for good: the ids stay.
        view = query(clickhouse,
                     "SELECT create_table_query FROM system.tables WHERE name = 'v_sales_14d'")[0][0]
        with clickhouse.get_client() as client:
            client.command("CREATE OR REPLACE VIEW v_sales_14d AS SELECT 1 AS event_id")
        failed = refresh(clickhouse, store, T1, TICK, instance)
        assert not failed.success
        assert store.pending().order_ids == pending
        with clickhouse.get_client() as client:
            client.command(view.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))

        result = refresh(clickhouse, store, T1, TICK, instance)
        assert result.success
        assert store.depth()[0] == 0  # applied by a successful run, then cleared

    want = truth(sandbox, T1)
    assert warehouse_fact(clickhouse) == want

    # Every rewritten day outside the tick's range is reported as materialized, with its own row count
    # (the failed run's fact step had succeeded: the days it rebuilt are not rebuilt again).
    reported = {e.partition: e.materialization.metadata["dagster/row_count"].value
                for run in (failed, result) for e in run.get_asset_materialization_events()
                if e.asset_key == marts.fact_qtickets_sales_daily.key}
    rows_per_day = defaultdict(int)
    for day, _, _ in want:
        rows_per_day[day.isoformat()] += 1
    extra = {day: rows for day, rows in reported.items() if day < TICK.start}
    assert {p.payed_at.astimezone(MSK).date().isoformat() for p in cancelled} <= set(extra)
    assert extra == {day: rows_per_day[day] for day in extra}

    # The views follow: v_sales_14d (its last 14 days of the real clock) and v_sales_latest's totals.
    cutoff = datetime.now(MSK).date() - timedelta(days=14)
    per_day_event = defaultdict(lambda: [0, 0])
    per_event = defaultdict(lambda: [0, 0])
    for (day, event, _), values in want.items():
        per_event[event][0] += values[0]
        per_event[event][1] += values[1]
        if day > cutoff:
            per_day_event[(day, event)][0] += values[0]
            per_day_event[(day, event)][1] += values[1]
    view_14d = {(r[0], r[1]): [r[2], r[3]] for r in query(
        clickhouse, "SELECT sales_date, event_id, tickets_sold, revenue FROM v_sales_14d")}
    assert per_day_event and view_14d == dict(per_day_event)
    latest = {r[0]: [r[1], r[2]] for r in query(
        clickhouse, "SELECT event_id, tickets_sold_total, revenue_total FROM v_sales_latest "
                    "WHERE tickets_sold_total IS NOT NULL AND event_id IN {ids:Array(UInt64)}",
        ids=sorted(per_event))}
    assert latest == dict(per_event)
