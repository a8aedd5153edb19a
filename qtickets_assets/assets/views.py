"""BI views. Their definitions live in clickhouse_migrations/ (`CREATE OR REPLACE VIEW`); materializing a
view asset proves it is queryable over fresh data with the contract's columns and records its size."""

import dagster as dg

from ..warehouse.resource import ClickHouseResource
from ..warehouse.writes import identifier

# ARCHITECTURE.md §4 and docs/BI.md: the columns the dashboards read (only ever added to, never renamed).
CONTRACT = {
    "v_sales_14d": ["sales_date", "event_id", "tickets_sold", "revenue"],
    "v_sales_latest": [
        "event_id",
        "event_name",
        "tickets_sold_total",
        "revenue_total",
        "tickets_sold_today",
        "revenue_today",
        "capacity",
        "free_seats",
        "sold_seats",
        "capacity_on_sale",
        "shows_on_sale",
        "shows_final",
    ],
    "v_show_occupancy": [
        "event_id",
        "event_name",
        "show_id",
        "city",
        "venue",
        "show_start_at",
        "capacity",
        "sold_seats",
        "free_seats",
        "occupancy",
        "status",
        "is_final",
        "snapshot_at",
    ],
    "v_sales_pace": [
        "event_id",
        "event_name",
        "show_id",
        "show_start_at",
        "sales_date",
        "days_before_show",
        "tickets_sold",
        "revenue",
        "tickets_sold_cumulative",
        "revenue_cumulative",
    ],
}


def count_view(client, name: str) -> int:
    """Row count of a view, selecting every contract column (a missing one is an error)."""
    columns = ", ".join(identifier(c) for c in CONTRACT[name])
    return client.query(f"SELECT count() FROM (SELECT {columns} FROM {identifier(name)})").result_rows[0][0]


def _view_asset(name: str, deps: list[str], description: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name, deps=deps, group_name="bi_views", kinds={"clickhouse", "view"}, description=description
    )
    def _view(clickhouse: ClickHouseResource) -> dg.MaterializeResult:
        with clickhouse.get_client() as client:
            rows = count_view(client, name)
        return dg.MaterializeResult(metadata={"dagster/row_count": rows})

    return _view


v_sales_14d = _view_asset(
    "v_sales_14d",
    ["fact_qtickets_sales_daily"],
    "Tickets sold and revenue per (Moscow sales date, event) over the last 14 days.",
)
v_sales_latest = _view_asset(
    "v_sales_latest",
    ["fact_qtickets_sales_daily", "dim_events", "fact_qtickets_inventory_latest"],
    "Per event: name, tickets and revenue in total and today (Moscow); capacity and sold seats over all "
    "shows, free seats of the shows on sale.",
)
v_show_occupancy = _view_asset(
    "v_show_occupancy",
    ["fact_qtickets_inventory_latest", "dim_events"],
    "Per show: capacity, sold and free seats, occupancy; on sale (live) or final (its last snapshot).",
)
v_sales_pace = _view_asset(
    "v_sales_pace",
    ["fact_qtickets_sales_daily", "dim_events"],
    "Per (event, show, sales date): tickets and revenue cumulated by days before the show.",
)
