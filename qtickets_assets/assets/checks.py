"""Asset checks that replace the old smoke SQL.

Blocking where a failure would put wrong numbers in front of BI: a failed blocking check stops the
views (and everything else downstream) in the same run. Each check reports what it counted.
"""

import dagster as dg

from ..partitions import daily_partitions
from ..warehouse.resource import ClickHouseResource
from ..warehouse.writes import identifier
from . import marts, raw, views

SAMPLE = 5  # offending keys shown in a failed check's metadata


def _result(client, bad_rows_sql: str, parameters: dict | None = None, **metadata) -> dg.AssetCheckResult:
    """Passes when `bad_rows_sql` returns no rows; otherwise shows their count and a few of them."""
    parameters = parameters or {}
    count = client.query(f"SELECT count() FROM ({bad_rows_sql})", parameters=parameters).result_rows[0][0]
    sample = (
        client.query(f"{bad_rows_sql} LIMIT {SAMPLE}", parameters=parameters).result_rows if count else []
    )
    return dg.AssetCheckResult(
        passed=count == 0,
        metadata={
            "offending_rows": count,
            "sample": dg.MetadataValue.json([[str(v) for v in r] for r in sample]),
            **metadata,
        },
    )


def _unique_keys_check(
    asset: dg.AssetsDefinition, key: list[str], blocking: bool
) -> dg.AssetChecksDefinition:
    table = identifier(asset.key.path[-1])
    columns = ", ".join(identifier(c) for c in key)

    @dg.asset_check(
        asset=asset,
        name="keys_unique",
        blocking=blocking,
        description=f"({columns}) identifies one live row after FINAL.",
    )
    def _check(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
        with clickhouse.get_client() as client:
            return _result(
                client, f"SELECT {columns}, count() AS n FROM {table} FINAL GROUP BY {columns} HAVING n > 1"
            )

    return _check


# Orders staging blocks: a duplicated ticket would be counted twice by a fact that still "agrees" with it.
unique_keys = [
    _unique_keys_check(raw.stg_qtickets_api_orders_raw, ["order_id", "basket_id"], blocking=True),
    _unique_keys_check(raw.stg_qtickets_api_events_raw, ["event_id", "show_id"], blocking=False),
    _unique_keys_check(raw.stg_qtickets_api_inventory_raw, ["show_id", "offer_id"], blocking=False),
    _unique_keys_check(marts.fact_qtickets_sales_daily, ["sales_date", "event_id", "show_id"], blocking=True),
    _unique_keys_check(marts.dim_events, ["event_id", "show_id"], blocking=True),
    _unique_keys_check(marts.fact_qtickets_inventory_latest, ["show_id"], blocking=True),
]


@dg.asset_check(asset=marts.fact_qtickets_sales_daily, blocking=True)
def counts_non_negative(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    """Money is never negative, and a row never counts more paid orders than tickets sold."""
    with clickhouse.get_client() as client:
        return _result(
            client,
            """
            SELECT sales_date, event_id, show_id, tickets_sold, revenue, orders_count, refunds_amount
            FROM fact_qtickets_sales_daily FINAL
            WHERE revenue < 0 OR refunds_amount < 0 OR orders_count > tickets_sold
               OR (tickets_sold = 0 AND revenue != 0)
        """,
        )


@dg.asset_check(
    asset=marts.fact_qtickets_sales_daily,
    partitions_def=daily_partitions,
    blocking=True,
    additional_deps=[raw.stg_qtickets_api_orders_raw],
)
def agrees_with_staging(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource):
    """The fact rows of the checked days equal a fresh computation from order staging, both ways."""
    params = marts.window_parameters(context.partition_time_window)
    columns = ", ".join(marts.SALES_COLUMNS)
    fact = f"SELECT {columns} FROM fact_qtickets_sales_daily FINAL WHERE {marts.SALES_DATES}"
    fresh = f"SELECT {columns} FROM ({marts.SALES_DAILY})"
    with clickhouse.get_client() as client:
        return _result(
            client,
            f"SELECT 'missing or different in fact' AS problem, * FROM ({fresh} EXCEPT {fact}) "
            f"UNION ALL SELECT 'not in staging' AS problem, * FROM ({fact} EXCEPT {fresh})",
            params,
            days=len(context.partition_keys),
        )


@dg.asset_check(
    asset=marts.fact_qtickets_inventory_latest,
    blocking=True,
    additional_deps=[marts.fact_qtickets_sales_daily],
)
def sold_within_capacity(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    """Per show: paid seats and free seats each fit in the capacity, and so do the tickets the sales
    fact counts as sold."""
    with clickhouse.get_client() as client:
        return _result(
            client,
            """
            SELECT inventory.show_id, capacity, free_seats, sold_seats, sales.tickets_sold
            FROM fact_qtickets_inventory_latest AS inventory FINAL
            LEFT JOIN (
                SELECT show_id, sum(tickets_sold) AS tickets_sold
                FROM fact_qtickets_sales_daily FINAL GROUP BY show_id
            ) AS sales ON sales.show_id = inventory.show_id
            WHERE sold_seats > capacity OR free_seats > capacity OR sales.tickets_sold > capacity
        """,
        )


def _view_check(view: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    name = view.key.path[-1]

    @dg.asset_check(asset=view, name="queryable", description="The view answers with every contract column.")
    def _check(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
        with clickhouse.get_client() as client:
            try:
                rows = views.count_view(client, name)
            except Exception as error:  # the failure is the check's finding, not a crash
                return dg.AssetCheckResult(passed=False, metadata={"error": str(error)[:1000]})
        return dg.AssetCheckResult(passed=True, metadata={"rows": rows})

    return _check


view_checks = [_view_check(v) for v in (views.v_sales_14d, views.v_sales_latest, views.v_show_occupancy,
                                            views.v_sales_pace)]
