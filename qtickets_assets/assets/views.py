"""BI views. Their definitions live in clickhouse_migrations/ (`CREATE OR REPLACE VIEW`); materializing a
view asset proves it is queryable over fresh data with the contract's columns and records its size."""

import dagster as dg

from ..warehouse.resource import ClickHouseResource
from ..warehouse.writes import identifier

# ARCHITECTURE.md §4 and docs/BI.md: the columns the dashboards read (only ever added to, never renamed),
# with their ClickHouse types.
MONEY = "Decimal(38, 2)"  # sum() of Decimal(18, 2)
MOSCOW_TIME = "DateTime64(3, 'Europe/Moscow')"
CONTRACT = {
    "v_sales_14d": {"sales_date": "Date", "event_id": "UInt64", "tickets_sold": "UInt64", "revenue": MONEY},
    "v_sales_latest": {
        "event_id": "UInt64",
        "event_name": "String",
        "tickets_sold_total": "UInt64",
        "revenue_total": MONEY,
        "tickets_sold_today": "UInt64",
        "revenue_today": MONEY,
        "capacity": "UInt64",
        "free_seats": "UInt64",
        "sold_seats": "UInt64",
        "capacity_on_sale": "UInt64",
        "shows_on_sale": "UInt64",
        "shows_final": "UInt64",
    },
    "v_show_occupancy": {
        "event_id": "UInt64",
        "event_name": "String",
        "show_id": "UInt64",
        "city": "String",
        "venue": "String",
        "show_start_at": f"Nullable({MOSCOW_TIME})",
        "capacity": "UInt64",
        "sold_seats": "UInt64",
        "free_seats": "UInt64",
        "occupancy": "Float64",
        "status": "String",
        "is_final": "UInt8",
        "snapshot_at": MOSCOW_TIME,
    },
    "v_sales_pace": {
        "event_id": "UInt64",
        "event_name": "String",
        "show_id": "UInt64",
        "show_start_at": MOSCOW_TIME,
        "sales_date": "Date",
        "days_before_show": "Int32",
        "tickets_sold": "UInt64",
        "revenue": MONEY,
        "tickets_sold_cumulative": "UInt64",
        "revenue_cumulative": MONEY,
    },
}


def count_view(client, name: str) -> int:
    """Row count of a view, selecting every contract column (a missing one is an error)."""
    columns = ", ".join(identifier(c) for c in CONTRACT[name])
    return client.query(f"SELECT count() FROM (SELECT {columns} FROM {identifier(name)})").result_rows[0][0]


def contract_mismatches(client, name: str) -> dict[str, str]:
    """Contract columns whose type in the view differs: column -> what the view has (or 'missing')."""
    found = {row[0]: row[1] for row in client.query(f"DESCRIBE TABLE {identifier(name)}").result_rows}
    return {c: found.get(c, "missing") for c, kind in CONTRACT[name].items() if found.get(c) != kind}


# The catalog's glance at each view: a few rows that answer its usual question (markdown in the UI).
PREVIEW_ROWS = 5
PREVIEWS = {
    "v_sales_14d": (
        "Last days, all events",
        "SELECT sales_date, sum(tickets_sold) AS tickets, sum(revenue) AS money FROM v_sales_14d "
        "GROUP BY sales_date ORDER BY sales_date DESC",
    ),
    "v_sales_latest": (
        "Today's top events",
        "SELECT event_name, tickets_sold_today, revenue_today, tickets_sold_total, revenue_total "
        "FROM v_sales_latest ORDER BY revenue_today DESC, revenue_total DESC",
    ),
    "v_show_occupancy": (
        "Next shows on sale, then the latest final ones",
        "SELECT event_name, city, show_start_at, sold_seats, capacity, occupancy, status "
        "FROM v_show_occupancy ORDER BY is_final, "
        "if(is_final, -toUnixTimestamp(show_start_at), toUnixTimestamp(show_start_at))",
    ),
    "v_sales_pace": (
        "Shows with the most tickets",
        "SELECT event_name, show_start_at, max(tickets_sold_cumulative) AS tickets, "
        "max(revenue_cumulative) AS money FROM v_sales_pace GROUP BY event_name, show_id, show_start_at "
        "ORDER BY tickets DESC",
    ),
}


def preview(client, name: str) -> str:
    """A markdown table of the view's first rows for its usual question."""
    title, sql = PREVIEWS[name]
    result = client.query(f"{sql} LIMIT {PREVIEW_ROWS}")
    lines = [f"**{title}**", "", "| " + " | ".join(result.column_names) + " |",
             "|" + "---|" * len(result.column_names)]
    lines += ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in result.result_rows]
    return "\n".join(lines if result.result_rows else [f"**{title}**", "", "(no rows)"])


def _view_asset(name: str, deps: list[str], description: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name, deps=deps, group_name="bi_views", kinds={"clickhouse", "view"}, description=description
    )
    def _view(clickhouse: ClickHouseResource) -> dg.MaterializeResult:
        with clickhouse.get_client() as client:
            rows = count_view(client, name)
            table = preview(client, name)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows, "preview": dg.MetadataValue.md(table)}
        )

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
