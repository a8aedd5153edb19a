"""Sandbox orders -> staging -> daily facts -> v_sales_14d, on chDB, compared with the sandbox's truth."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from qtickets_assets.assets import marts, raw, views
from qtickets_assets.qtickets.resource import QTicketsResource
from tests.builders import AS_OF, OPENED_ON

MSK = ZoneInfo("Europe/Moscow")
FACT_COLUMNS = ["tickets_sold", "revenue", "orders_count", "refunded_tickets", "refunds_amount"]
ASSETS = [raw.stg_qtickets_api_orders_raw, marts.fact_qtickets_sales_daily, views.v_sales_14d]


def materialize(resources, partition_key):
    result = dg.materialize(ASSETS, resources=resources, partition_key=partition_key)
    assert result.success
    return result


def facts(clickhouse, day):
    with clickhouse.get_client() as client:
        rows = client.query(
            "SELECT event_id, show_id, tickets_sold, revenue, orders_count, refunded_tickets, refunds_amount "
            "FROM fact_qtickets_sales_daily FINAL WHERE sales_date = {d:Date} ORDER BY event_id, show_id",
            parameters={"d": day},
        ).result_rows
    return {(r[0], r[1]): r[2:] for r in rows}


def expected(qtickets, day):
    truth = qtickets.sandbox().expected_sales_daily(AS_OF)
    return {
        (event, show): tuple(v[name] for name in FACT_COLUMNS)
        for (sales_date, event, show), v in sorted(truth.items())
        if sales_date == day
    }


@pytest.mark.parametrize("day", [date(2026, 11, 20), date(2026, 11, 21)])
def test_fact_rows_equal_what_the_sandbox_sold(resources, clickhouse, qtickets, day):
    materialize(resources, day.isoformat())
    got, want = facts(clickhouse, day), expected(qtickets, day)
    assert want, "the sandbox sold nothing that day: the test would prove nothing"
    assert got == want
    assert sum(v[0] for v in got.values()) > 50
    assert all(isinstance(v[1], Decimal) for v in got.values())


@pytest.mark.slow
def test_rematerializing_is_idempotent(resources, clickhouse, qtickets):
    day = date(2026, 11, 20)

    def staging():
        with clickhouse.get_client() as client:
            return client.query(
                "SELECT count(), uniqExact(order_id, basket_id), sum(cityHash64(order_json, basket_json)) "
                "FROM stg_qtickets_api_orders_raw FINAL"
            ).result_rows[0]

    first = materialize(resources, day.isoformat())
    with clickhouse.get_client() as client:
        created_that_day = client.query(
            "SELECT count() FROM stg_qtickets_api_orders_raw FINAL "
            "WHERE toDate(order_created_at, 'Europe/Moscow') = {day:Date}", parameters={"day": day},
        ).result_rows[0][0]
    materialize(resources, day.isoformat())  # + the orders changed since the first run's watermark
    after_second = staging()
    materialize(resources, day.isoformat())
    assert facts(clickhouse, day) == expected(qtickets, day)
    live, keys, _ = staging()
    assert staging() == after_second and live == keys
    staged = first.asset_materializations_for_node("stg_qtickets_api_orders_raw")[0]
    assert staged.metadata["rows_written_by_run"].value < live
    # The first run wrote the day's orders and the late payments of older ones; its partition holds the
    # former.
    written = staged.metadata["rows_written_by_run"].value
    assert staged.metadata["dagster/row_count"].value == created_that_day < written


def test_v_sales_14d_shows_recent_days_per_event(clickhouse, resources):
    # The view keeps the last 14 Moscow days of the engine's clock, so the day loaded must be recent: the
    # sandbox is frozen at noon of the day before today. A fixed instant, not "now": if Moscow midnight
    # passes during the test, the loaded day is two days old and still inside the view's window.
    day = datetime.now(MSK).date() - timedelta(days=1)
    frozen = datetime.combine(day, time(12), MSK)
    recent = QTicketsResource(sandbox_opened_on=OPENED_ON, sandbox_as_of=frozen.isoformat())
    materialize({**resources, "qtickets": recent}, day.isoformat())
    truth = recent.sandbox().expected_sales_daily(frozen)
    want = {}
    for (sales_date, event, _show), v in truth.items():
        if sales_date == day:
            tickets, revenue = want.get(event, (0, Decimal(0)))
            want[event] = (tickets + v["tickets_sold"], revenue + v["revenue"])
    with clickhouse.get_client() as client:
        rows = client.query(
            "SELECT event_id, tickets_sold, revenue FROM v_sales_14d WHERE sales_date = {d:Date}",
            parameters={"d": day},
        ).result_rows
    assert want and {event: (tickets, revenue) for event, tickets, revenue in rows} == want
