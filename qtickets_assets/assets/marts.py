"""Marts computed inside ClickHouse from staging (read with FINAL): no warehouse data goes through Python."""


import dagster as dg

from ..partitions import daily_partitions
from ..warehouse.io_manager import new_version
from ..warehouse.resource import ClickHouseResource

# ARCHITECTURE.md §4. A ticket is sold when its order is paid and neither the order nor the basket is
# cancelled and the basket is not refunded; refunds of paid orders count on the order's sales date.
SALES_DAILY = """
SELECT
    toDate(payed_at, 'Europe/Moscow') AS sales_date,
    event_id,
    show_id,
    sumIf(quantity, is_sold) AS tickets_sold,
    sumIf(price, is_sold) AS revenue,
    uniqExactIf(order_id, is_sold) AS orders_count,
    sumIf(quantity, is_refunded) AS refunded_tickets,
    sumIf(refunded_amount, is_refunded) AS refunds_amount
FROM (
    SELECT *,
        refunded_at IS NOT NULL AS is_refunded,
        order_deleted_at IS NULL AND basket_deleted_at IS NULL AND NOT is_refunded AS is_sold
    FROM stg_qtickets_api_orders_raw FINAL
    WHERE payed = 1 AND basket_id != 0
      AND payed_at >= fromUnixTimestamp64Milli({start:Int64})
      AND payed_at < fromUnixTimestamp64Milli({end:Int64})
)
GROUP BY sales_date, event_id, show_id
"""


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["stg_qtickets_api_orders_raw"],
    group_name="qtickets_marts",
    kinds={"clickhouse", "sql"},
)
def fact_qtickets_sales_daily(context: dg.AssetExecutionContext, clickhouse: ClickHouseResource):
    """Tickets sold, revenue, paid orders and refunds per (Moscow sales date, event, show)."""
    window = context.partition_time_window
    params = {
        "start": int(window.start.timestamp() * 1000),
        "end": int(window.end.timestamp() * 1000),
        "version": new_version(),
    }
    with clickhouse.get_client() as client:
        client.command(
            f"""
            INSERT INTO fact_qtickets_sales_daily
                (sales_date, event_id, show_id, tickets_sold, revenue, orders_count, refunded_tickets,
                 refunds_amount, _loaded_at, _ver, _dedup_key)
            SELECT *, now64(3), {{version:UInt64}}, cityHash64(sales_date, event_id, show_id)
            FROM ({SALES_DAILY})
            """,
            parameters=params,
            settings={"async_insert": 0},
        )
        # Keys of these dates that the fresh computation no longer produces become tombstones.
        stale = """
            SELECT * FROM fact_qtickets_sales_daily FINAL
            WHERE sales_date >= toDate(fromUnixTimestamp64Milli({start:Int64}), 'Europe/Moscow')
              AND sales_date < toDate(fromUnixTimestamp64Milli({end:Int64}), 'Europe/Moscow')
              AND _ver < {version:UInt64}
        """
        client.command(
            f"INSERT INTO fact_qtickets_sales_daily SELECT * REPLACE ({{version:UInt64}} AS _ver, "
            f"1 AS _deleted) FROM ({stale})",
            parameters=params,
            settings={"async_insert": 0},
        )
        rows, tickets, revenue = client.query(
            "SELECT count(), sum(tickets_sold), sum(revenue) FROM fact_qtickets_sales_daily FINAL "
            "WHERE _ver = {version:UInt64}",
            parameters=params,
        ).result_rows[0]
    return dg.MaterializeResult(
        metadata={"dagster/row_count": rows, "tickets_sold": int(tickets), "revenue": float(revenue)}
    )
