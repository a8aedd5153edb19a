"""Raw assets: QTickets API -> ClickHouse staging tables (written by the ClickHouse IO manager)."""


import dagster as dg

from ..partitions import daily_partitions
from ..qtickets.resource import QTicketsResource
from ..transform import order_rows
from ..warehouse.io_manager import KEY, WINDOW_COLUMN, Rows


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="clickhouse_io",
    group_name="qtickets_staging",
    kinds={"clickhouse", "python"},
    metadata={KEY: ["order_id", "basket_id"], WINDOW_COLUMN: "order_created_at"},
)
def stg_qtickets_api_orders_raw(context: dg.AssetExecutionContext, qtickets: QTicketsResource) -> Rows:
    """One row per ticket (basket) of the orders created in the partition's Moscow days, plus the
    orders paid in those days whatever their creation date (a late payment updates its older row)."""
    window = context.partition_time_window
    orders = {}
    with qtickets.get_client() as client:
        for column in ("created_at", "payed_at"):
            for order in client.orders_between(column, window.start, window.end):
                orders[order.id] = order
    context.log.info(f"{len(orders)} orders for {window.start:%Y-%m-%d}..{window.end:%Y-%m-%d}")
    return order_rows(orders[key] for key in sorted(orders))
