"""Sales-fact business rules (ARCHITECTURE.md §4) on chDB.

Hand-made orders, written as the API would send them, go through the real path: pydantic models ->
transform.order_rows -> the ClickHouse IO manager (an order-staging asset whose source is the list below,
filtered by the partition window as the API filters by created_at/payed_at) -> the fact SQL.
"""

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.builders import MSK, NSK, D, Source, at, basket, fact, materialize, order, physical_rows


@pytest.mark.slow
def test_same_partition_three_times_gives_identical_rows(resources, clickhouse):
    source = Source(
        order(1, 10, at(D, 9), [basket(1, 100, 1500), basket(2, 100, 900)], payed=at(D, 9, 10)),
        order(2, 10, at(D, 11), [basket(3, 101, 2200)], payed=at(D, 11, 5)),
        order(3, 11, at(D, 13), [basket(4, 110, 3000)]),  # unpaid: no sale
    )
    results = [materialize(resources, source, D) for _ in range(3)]
    want = {
        (D, 10, 100): (2, Decimal("2400.00"), 1, 0, Decimal(0)),
        (D, 10, 101): (1, Decimal("2200.00"), 1, 0, 0),
    }
    assert fact(clickhouse) == want
    with clickhouse.get_client() as client:
        live = client.query("SELECT count() FROM stg_qtickets_api_orders_raw FINAL").result_rows[0][0]
    assert live == 4  # one row per basket, nothing duplicated
    for result in results:
        staged = result.asset_materializations_for_node("stg_qtickets_api_orders_raw")[0].metadata
        facts = result.asset_materializations_for_node("fact_qtickets_sales_daily")[0].metadata
        assert staged["dagster/row_count"].value == 4
        assert facts["dagster/row_count"].value == 2
        assert facts["tickets_sold"].value == 3
    versions = [
        r.asset_materializations_for_node("fact_qtickets_sales_daily")[0].metadata["clickhouse/version"].value
        for r in results
    ]
    assert versions == sorted(set(versions))  # every write is a new, larger version


def test_late_payment_moves_the_sale_to_its_payment_date(resources, clickhouse):
    created = at(D, 22, 30)
    source = Source(order(1, 10, created, [basket(1, 100, 1500)]))
    materialize(resources, source, D)
    assert fact(clickhouse) == {}  # reserved, not paid

    source.put(order(1, 10, created, [basket(1, 100, 1500)], payed=at(D + timedelta(days=1), 1, 15)))
    materialize(resources, source, D + timedelta(days=1))  # the payment day's partition picks it up
    assert fact(clickhouse) == {(D + timedelta(days=1), 10, 100): (1, Decimal("1500.00"), 1, 0, 0)}

    materialize(resources, source, D)  # re-running the creation day changes nothing
    assert fact(clickhouse) == {(D + timedelta(days=1), 10, 100): (1, Decimal("1500.00"), 1, 0, 0)}


def test_refund_after_the_fact_lowers_sales_and_raises_refunds(resources, clickhouse):
    paid = at(D, 10)
    baskets = [basket(1, 100, 1500), basket(2, 100, 1500), basket(3, 100, 900)]
    source = Source(order(1, 10, at(D, 9, 50), baskets, payed=paid))
    materialize(resources, source, D)
    assert fact(clickhouse, D) == {(D, 10, 100): (3, Decimal("3900.00"), 1, 0, 0)}

    refunded = [
        basket(1, 100, 1500),
        basket(2, 100, 1500, refunded_at=at(D + timedelta(days=4)), refunded_amount=1350),
        basket(3, 100, 900),
    ]
    source.put(order(1, 10, at(D, 9, 50), refunded, payed=paid))
    materialize(resources, source, D)
    # Still on the order's sales date, not the refund date.
    assert fact(clickhouse) == {(D, 10, 100): (2, Decimal("2400.00"), 1, 1, Decimal("1350.00"))}


def test_cancellation_removes_the_sale(resources, clickhouse):
    paid = at(D, 10)
    source = Source(
        order(1, 10, at(D, 9), [basket(1, 100, 1500), basket(2, 100, 1500)], payed=paid),
        order(2, 10, at(D, 9, 30), [basket(3, 100, 900), basket(4, 100, 900)], payed=paid),
    )
    materialize(resources, source, D)
    assert fact(clickhouse) == {(D, 10, 100): (4, Decimal("4800.00"), 2, 0, 0)}

    # Order 1 cancelled as a whole, one ticket of order 2 cancelled.
    source.put(
        order(1, 10, at(D, 9), [basket(1, 100, 1500), basket(2, 100, 1500)], payed=paid, deleted=at(D, 18)),
        order(
            2, 10, at(D, 9, 30), [basket(3, 100, 900), basket(4, 100, 900, deleted_at=at(D, 18))], payed=paid
        ),
    )
    materialize(resources, source, D)
    assert fact(clickhouse) == {(D, 10, 100): (1, Decimal("900.00"), 1, 0, 0)}


def test_a_key_that_vanishes_from_the_source_is_tombstoned(resources, clickhouse):
    source = Source(
        order(1, 10, at(D, 9), [basket(1, 100, 1500)], payed=at(D, 9, 5)),
        order(2, 11, at(D, 9), [basket(2, 110, 900)], payed=at(D, 9, 5)),
    )
    materialize(resources, source, D)
    assert set(fact(clickhouse)) == {(D, 10, 100), (D, 11, 110)}
    source.remove(2)  # e.g. an id that the API no longer returns for this account
    materialize(resources, source, D)
    assert fact(clickhouse) == {(D, 10, 100): (1, Decimal("1500.00"), 1, 0, 0)}
    with clickhouse.get_client() as client:
        staged = client.query("SELECT order_id FROM stg_qtickets_api_orders_raw FINAL").result_rows
    assert staged == [(1,)]
    assert physical_rows(clickhouse, "fact_qtickets_sales_daily") >= 3  # history kept as versions + tombstone


def test_multi_show_order_counts_once_per_show(resources, clickhouse):
    source = Source(
        order(
            1,
            10,
            at(D, 9),
            [basket(1, 100, 1500), basket(2, 101, 2200), basket(3, 101, 2200)],
            payed=at(D, 9, 3),
        )
    )
    materialize(resources, source, D)
    assert fact(clickhouse) == {
        (D, 10, 100): (1, Decimal("1500.00"), 1, 0, 0),
        (D, 10, 101): (2, Decimal("4400.00"), 1, 0, 0),
    }


def test_moscow_midnight_boundary(resources, clickhouse):
    nxt = D + timedelta(days=1)
    source = Source(
        order(1, 10, at(D, 23, 50), [basket(1, 100, 1000)], payed=at(D, 23, 59, 59)),
        order(2, 10, at(D, 23, 55), [basket(2, 100, 2000)], payed=at(nxt, 0, 0, 0)),
    )
    materialize(resources, source, D)
    assert fact(clickhouse) == {(D, 10, 100): (1, Decimal("1000.00"), 1, 0, 0)}
    materialize(resources, source, nxt)
    assert fact(clickhouse) == {
        (D, 10, 100): (1, Decimal("1000.00"), 1, 0, 0),
        (nxt, 10, 100): (1, Decimal("2000.00"), 1, 0, 0),
    }


def test_novosibirsk_event_counts_on_its_moscow_sales_date(resources, clickhouse):
    # 22:30 Moscow is already 02:30 of the next day in Novosibirsk: the sale belongs to the Moscow day.
    paid = at(D + timedelta(days=1), 2, 30, tz=NSK)
    assert paid.astimezone(MSK).date() == D
    source = Source(order(1, 30, at(D, 22, 0), [basket(1, 300, 1200)], payed=paid))
    materialize(resources, source, D, D + timedelta(days=1))
    assert fact(clickhouse) == {(D, 30, 300): (1, Decimal("1200.00"), 1, 0, 0)}


@pytest.mark.parametrize("refund_share", [Decimal(1), Decimal("0.9")])
def test_refunded_basket_of_a_cancelled_order_counts_as_refund_only(resources, clickhouse, refund_share):
    amount = int(2000 * refund_share)
    source = Source(
        order(
            1,
            10,
            at(D, 9),
            [basket(1, 100, 2000, refunded_at=at(D, 15), refunded_amount=amount), basket(2, 100, 2000)],
            payed=at(D, 9, 1),
            deleted=at(D, 16),
        )
    )
    materialize(resources, source, D)
    assert fact(clickhouse) == {(D, 10, 100): (0, Decimal(0), 0, 1, Decimal(amount))}


@pytest.mark.slow
def test_range_backfill_equals_day_by_day(resources, clickhouse, tmp_path):
    days = [D + timedelta(days=i) for i in range(4)]
    orders = []
    for i, day in enumerate(days):
        orders += [
            order(10 * i + 1, 10, at(day, 9), [basket(10 * i + 1, 100, 1500)], payed=at(day, 9, 5)),
            order(
                10 * i + 2,
                11,
                at(day, 22),
                [basket(10 * i + 2, 110, 900)],  # paid the next day
                payed=at(day, 22) + timedelta(hours=3),
            ),
            order(
                10 * i + 3,
                10,
                at(day, 12),
                [basket(10 * i + 3, 101, 2200, refunded_at=at(day, 20), refunded_amount=2200)],
                payed=at(day, 12, 1),
            ),
        ]
    source = Source(*orders)
    for day in days:
        materialize(resources, source, day)
    day_by_day = fact(clickhouse)
    assert sum(v[0] for v in day_by_day.values()) == 7  # the last late payment falls outside the range

    backfill_clickhouse = type(clickhouse)(dsn=f"chdb://{tmp_path / 'backfill'}", lock_timeout_s=5)
    backfill = {
        **resources,
        "clickhouse": backfill_clickhouse,
        "clickhouse_io": type(resources["clickhouse_io"])(clickhouse=backfill_clickhouse),
    }
    result = materialize(backfill, source, days[0], days[-1])
    assert fact(backfill_clickhouse) == day_by_day
    assert len(result.asset_materializations_for_node("fact_qtickets_sales_daily")) == len(days)
