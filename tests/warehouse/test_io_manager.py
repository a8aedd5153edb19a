"""The versioned IO manager and the event/inventory marts on chDB, with hand-made API records.

Covers the two write scopes (Moscow partition window, whole table), the technical
columns, metadata counted from our own data, bad input that loses nothing, root_id dedup in the
inventory fact and v_sales_latest listing an event that has inventory but no sales (migration 0004).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest

from qtickets_assets.assets import marts, views
from qtickets_assets.transform import event_rows, inventory_rows
from qtickets_assets.warehouse.io_manager import KEY, WINDOW_COLUMN
from qtickets_assets.warehouse.writes import Rows, identifier, ms
from tests.builders import (
    EVENTS,
    INVENTORY,
    MSK,
    ORDERS,
    SNAPSHOT,
    D,
    Source,
    at,
    basket,
    event,
    materialize,
    order,
    query,
    rows_asset,
    seat,
    write,
)


def test_snapshot_scope_replaces_shows_no_longer_polled(resources, clickhouse):
    first = inventory_rows(
        [
            (
                10,
                100,
                [
                    seat("full_A-1;1", "A-1;1", 1, 0, 1),
                    seat("child_A-1;1", "A-1;1", 1, 0, 1),
                    seat("full_A-1;2", "A-1;2", 1, 1, 0),
                ],
            ),
            (10, 101, [seat("full_A-1;1", "A-1;1", 1, 1, 0)]),
        ],
        SNAPSHOT,
    )
    result = write(resources, "stg_qtickets_api_inventory_raw", first, INVENTORY)
    assert (
        result.asset_materializations_for_node("stg_qtickets_api_inventory_raw")[0]
        .metadata["dagster/row_count"]
        .value
        == 4
    )

    # Each run is a snapshot of the current shows: show 100 is no longer polled and show 101 is re-read
    # with a different offer set, so all four earlier rows become tombstones.
    second = inventory_rows(
        [(10, 101, [seat("full_A-1;2", "A-1;2", 1, 0, 1)])], SNAPSHOT + timedelta(hours=1)
    )
    result = write(resources, "stg_qtickets_api_inventory_raw", second, INVENTORY)
    metadata = result.asset_materializations_for_node("stg_qtickets_api_inventory_raw")[0].metadata
    assert (metadata["dagster/row_count"].value, metadata["tombstoned_rows"].value) == (1, 4)
    live = query(
        clickhouse, "SELECT show_id, offer_id FROM stg_qtickets_api_inventory_raw FINAL ORDER BY ALL"
    )
    assert live == [(101, "full_A-1;2")]


def test_inventory_fact_counts_each_root_once(resources, clickhouse):
    rows = inventory_rows(
        [
            (
                10,
                100,
                [
                    seat("full_A-1;1", "A-1;1", 1, 0, 1),
                    seat("child_A-1;1", "A-1;1", 1, 0, 1),
                    seat("full_A-1;2", "A-1;2", 1, 1, 0),
                    seat("child_A-1;2", "A-1;2", 1, 1, 0),
                    seat("full_A-1;3", "A-1;3", 1, 0, 0, ordered=1),
                ],
            ),  # reserved, not paid
            (
                11,
                110,
                [
                    seat("full_dancefloor", "dancefloor", 400, 300, 90, ordered=97),
                    seat("vip_dancefloor", "dancefloor", 400, 300, 90, ordered=97),
                ],
            ),
        ],
        SNAPSHOT,
    )
    dg.materialize(
        [rows_asset("stg_qtickets_api_inventory_raw", rows, INVENTORY), marts.fact_qtickets_inventory_latest],
        resources=resources,
    )
    got = query(
        clickhouse,
        "SELECT event_id, show_id, capacity, free_seats, sold_seats, snapshot_at "
        "FROM fact_qtickets_inventory_latest FINAL ORDER BY show_id",
    )
    assert got == [(10, 100, 3, 1, 1, SNAPSHOT), (11, 110, 400, 300, 90, SNAPSHOT)]


def test_whole_table_scope_tombstones_vanished_events_and_keeps_soft_deleted(resources, clickhouse):
    deleted_at = datetime(2026, 11, 5, 12, 0, tzinfo=MSK)
    write(
        resources,
        "stg_qtickets_api_events_raw",
        event_rows([event(1, "Щелкунчик", [11, 12]), event(2, "Рок-фест", [21]), event(3, "Джаз", [])]),
        EVENTS,
    )
    second = event_rows([event(1, "Щелкунчик", [11]), event(2, "Рок-фест", [21], deleted=deleted_at)])
    result = write(resources, "stg_qtickets_api_events_raw", second, EVENTS)
    assert (
        result.asset_materializations_for_node("stg_qtickets_api_events_raw")[0]
        .metadata["tombstoned_rows"]
        .value
        == 2
    )  # show 12 and the showless event 3
    dg.materialize([marts.dim_events], resources=resources)
    got = query(
        clickhouse,
        "SELECT event_id, show_id, city, city_timezone, is_active, is_deleted "
        "FROM dim_events FINAL ORDER BY ALL",
    )
    assert got == [
        (1, 11, "Новосибирск", "Asia/Novosibirsk", 1, 0),
        (2, 21, "Новосибирск", "Asia/Novosibirsk", 0, 1),
    ]
    raw_json = query(
        clickhouse, "SELECT event_json FROM stg_qtickets_api_events_raw FINAL WHERE event_id = 1"
    )
    assert '"shows":[{"id":11' in raw_json[0][0]  # the row keeps its own show's JSON only


def test_partition_window_is_moscow_days(resources, clickhouse):
    day_start = at(D, 0, 0, 0)  # 21:00 UTC the day before: a UTC window would put it in D-1
    source = Source(
        order(1, 10, day_start, [basket(1, 100, 1000)]),
        order(2, 10, day_start - timedelta(seconds=1), [basket(2, 100, 1000)]),
    )
    materialize(resources, source, D - timedelta(days=1), D)
    source.remove(1)
    source.remove(2)
    result = materialize(resources, source, D)  # partition D now empty: only order 1 is replaced
    assert (
        result.asset_materializations_for_node("stg_qtickets_api_orders_raw")[0]
        .metadata["tombstoned_rows"]
        .value
        == 1
    )
    assert query(clickhouse, "SELECT order_id FROM stg_qtickets_api_orders_raw FINAL") == [(2,)]


def test_technical_columns(resources, clickhouse):
    source = Source(order(1, 10, at(D, 9), [basket(1, 100, 1000), basket(2, 100, 1000)], payed=at(D, 9, 2)))
    materialize(resources, source, D)
    source.put(order(1, 10, at(D, 9), [basket(1, 100, 700), basket(2, 100, 1000)], payed=at(D, 9, 2)))
    materialize(resources, source, D)  # a price change keeps the key hash
    rows = query(
        clickhouse,
        "SELECT basket_id, _dedup_key, _ver, _deleted, price FROM stg_qtickets_api_orders_raw "
        "ORDER BY _ver, basket_id",
    )
    # The key hash comes from ClickHouse (the column's DEFAULT, migration 0025): the business key only.
    keys = query(clickhouse, "SELECT cityHash64(1::UInt64, 1::UInt64), cityHash64(1::UInt64, 2::UInt64)")
    assert [r[1] for r in rows] == list(keys[0]) * 2 and keys[0][0] != keys[0][1]
    assert len({r[2] for r in rows[:2]}) == 1 and rows[0][2] < rows[2][2]  # one version per write
    assert [r[4] for r in rows] == [Decimal(1000), Decimal(1000), Decimal(700), Decimal(1000)]
    loaded = query(clickhouse, "SELECT toTimeZone(_loaded_at, 'UTC') FROM stg_qtickets_api_orders_raw")
    assert all(abs(datetime.now(UTC) - r[0].replace(tzinfo=UTC)) < timedelta(minutes=5) for r in loaded)


def test_bad_input_is_refused_and_loses_nothing(resources, clickhouse):
    good = Rows(
        {
            "order_id": [1],
            "basket_id": [1],
            "order_created_at": [at(D, 9)],
            "order_updated_at": [at(D, 9)],
            "price": [Decimal("10.00")],
        }
    )
    assert write(resources, "stg_qtickets_api_orders_raw", good, ORDERS, D.isoformat()).success
    bad_rows = [
        Rows({"order_id": [1, 2], "basket_id": [1]}),  # ragged columns
        Rows({"order_id": [1], "basket_id": [1], "price; DROP TABLE x": [1]}),  # not an identifier
        Rows(
            {
                "order_id": [1],
                "basket_id": [1],
                "order_created_at": ["yesterday"],
                "order_updated_at": [at(D, 9)],
            }
        ),  # the engine refuses the value
    ]
    for bad in bad_rows:
        result = write(
            resources, "stg_qtickets_api_orders_raw", bad, ORDERS, D.isoformat(), raise_on_error=False
        )
        assert not result.success
    assert query(clickhouse, "SELECT order_id, price FROM stg_qtickets_api_orders_raw FINAL") == [
        (1, Decimal(10))
    ]
    assert not write(
        resources,
        "stg_qtickets_api_orders_raw",
        good,
        {**ORDERS, WINDOW_COLUMN: "x y"},
        D.isoformat(),
        raise_on_error=False,
    ).success
    with pytest.raises(ValueError, match="identifier"):
        identifier("zakaz.t")
    with pytest.raises(ValueError, match="offset"):
        ms(datetime(2026, 11, 10))
    assert KEY in ORDERS


def test_v_sales_latest_lists_events_with_inventory_but_no_sales(resources, clickhouse):
    source = Source(order(1, 1, at(D, 9), [basket(1, 11, 1500)], payed=at(D, 9, 3)))
    events = event_rows([event(1, "Щелкунчик", [11]), event(2, "Рок-фест", [21])])
    seats = inventory_rows(
        [
            (1, 11, [seat("full_A-1;1", "A-1;1", 1, 0, 1), seat("full_A-1;2", "A-1;2", 1, 1, 0)]),
            (2, 21, [seat("full_A-1;1", "A-1;1", 1, 1, 0)]),
        ],
        SNAPSHOT,
    )
    materialize(resources, source, D)
    result = dg.materialize(
        [
            rows_asset("stg_qtickets_api_events_raw", events, EVENTS),
            rows_asset("stg_qtickets_api_inventory_raw", seats, INVENTORY),
            marts.dim_events,
            marts.fact_qtickets_inventory_latest,
            views.v_sales_latest,
        ],
        resources=resources,
    )
    assert (
        result.asset_materializations_for_node("v_sales_latest")[0].metadata["dagster/row_count"].value == 2
    )
    got = query(
        clickhouse,
        "SELECT event_id, event_name, tickets_sold_total, revenue_total, capacity, free_seats "
        "FROM v_sales_latest ORDER BY event_id",
    )
    assert got == [(1, "Щелкунчик", 1, Decimal(1500), 2, 1), (2, "Рок-фест", 0, Decimal(0), 1, 1)]
