"""Marts computed inside ClickHouse from staging (read with FINAL): no warehouse data goes through Python.

Each asset replaces its scope with a fresh computation (`rebuild`: new `_ver`, tombstones for keys that
vanished, within the resource's mass-deletion guard), so re-materializing gives exactly what a first
materialization gives. A mart is defined twice only: its table in the migrations (columns, sorting key =
business key) and its SELECT here, whose result columns name the table's columns they fill.
"""

from collections.abc import Iterable
from datetime import date
from zoneinfo import ZoneInfo

import dagster as dg

from ..partitions import TIMEZONE, daily_partitions
from ..qtickets.resource import QTicketsResource
from ..warehouse import sales_days
from ..warehouse.resource import ClickHouseResource
from ..warehouse.writes import DeleteGuard, daily_counts, ms, rebuild
from .repair import repair_over_capacity

MSK = ZoneInfo(TIMEZONE)

# ARCHITECTURE.md §4. A ticket is sold when its order is paid and neither the order nor the basket is
# cancelled and the basket is not refunded; refunds of paid orders count on the order's sales date.
# The window is on payed_at: partition D holds every sale paid on Moscow day D, whenever it was created.
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
# The same over a set of Moscow days (the days a run's rewrites touched outside its partitions).
SALES_ON_DAYS = SALES_DAILY.replace(
    """payed_at >= fromUnixTimestamp64Milli({start:Int64})
      AND payed_at < fromUnixTimestamp64Milli({end:Int64})""",
    "toDate(payed_at, 'Europe/Moscow') IN {days:Array(Date)}",
)
SALES_DATES = """
    sales_date >= toDate(fromUnixTimestamp64Milli({start:Int64}), 'Europe/Moscow')
    AND sales_date < toDate(fromUnixTimestamp64Milli({end:Int64}), 'Europe/Moscow')
"""

# One row per (event, show). `is_active`: the show is on sale (QTickets turns a show off once it has
# started or its event is deleted). `is_deleted`: the event or show is soft-deleted in QTickets; its
# sales history stays in the facts.
DIM_EVENTS = """
SELECT
    event_id,
    show_id,
    event_name,
    city,
    city_timezone,
    venue,
    show_start_at,
    show_finish_at,
    event_is_active AND show_is_active AS is_active,
    event_deleted_at IS NOT NULL OR show_deleted_at IS NOT NULL AS is_deleted
FROM stg_qtickets_api_events_raw FINAL
"""

# One physical seat appears once per tariff (offer): count each root_id once, with the max of its counters.
# Staging keeps a started show's last snapshot (raw.py); `is_final`: the show is no longer on sale in the
# latest events snapshot (started, switched off or deleted), so its counters will not change any more.
INVENTORY_LATEST = """
SELECT
    seats.event_id AS event_id,
    seats.show_id AS show_id,
    sum(seat_capacity) AS capacity,
    sum(seat_free) AS free_seats,
    sum(seat_sold) AS sold_seats,
    max(seat_snapshot_at) AS snapshot_at,
    NOT any(shows.on_sale) AS is_final
FROM (
    SELECT
        show_id,
        any(event_id) AS event_id,
        root_id,
        max(max_quantity) AS seat_capacity,
        max(free_quantity) AS seat_free,
        max(payed_quantity) AS seat_sold,
        max(snapshot_at) AS seat_snapshot_at
    FROM stg_qtickets_api_inventory_raw FINAL
    GROUP BY show_id, root_id
) AS seats
LEFT JOIN (
    SELECT
        show_id,
        max(event_is_active AND show_is_active AND event_deleted_at IS NULL AND show_deleted_at IS NULL)
            AS on_sale
    FROM stg_qtickets_api_events_raw FINAL
    GROUP BY show_id
) AS shows ON shows.show_id = seats.show_id
GROUP BY seats.event_id, seats.show_id
"""


SALES_KEY = dg.AssetKey("fact_qtickets_sales_daily")


def window_parameters(window: dg.TimeWindow) -> dict[str, int]:
    return {"start": ms(window.start), "end": ms(window.end)}


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["stg_qtickets_api_orders_raw"],
    group_name="qtickets_marts",
    kinds={"clickhouse", "sql"},
    pool="fact_qtickets_sales_daily",  # one writer per table (server mode: deploy/dagster.yaml)
)
def fact_qtickets_sales_daily(context: dg.AssetExecutionContext, clickhouse: ClickHouseResource):
    """Tickets sold, revenue, paid orders and refunds per (Moscow sales date, event, show).

    Also rebuilds the days marked in `meta_sales_days_to_rebuild` (sales of orders rewritten outside the
    partitions of the run that rewrote them) and reports each as a materialization of its partition."""
    window = context.partition_time_window
    params = window_parameters(window)
    with clickhouse.get_client() as client:
        marks = sales_days.marked(client)
        guard = clickhouse.delete_guard("fact_qtickets_sales_daily", context.run.tags)
        metadata = rebuild(client, "fact_qtickets_sales_daily", SALES_DAILY, where=SALES_DATES,
                           parameters=params, guard=guard)
        days = daily_counts(client, "fact_qtickets_sales_daily", "sales_date", SALES_DATES, params,
                            metadata["clickhouse/version"])
        totals = client.query(
            "SELECT sales_date, sum(tickets_sold), sum(revenue) FROM fact_qtickets_sales_daily FINAL "
            f"WHERE {SALES_DATES} GROUP BY sales_date",
            parameters=params,
        ).result_rows
        rebuild_marked_days(context, client, marks, window, guard)
        sales_days.unmark(client, marks, context.run.run_id)
    sales = {day.isoformat(): (int(tickets), float(revenue)) for day, tickets, revenue in totals}
    # A range run materializes each day: each one reports its own numbers.
    for key in context.partition_keys:
        tickets, revenue = sales.get(key, (0, 0.0))
        context.add_asset_metadata(
            {**days.get(key, {"dagster/row_count": 0, "tombstoned_rows": 0}), "tickets_sold": tickets,
             "revenue": revenue},
            partition_key=key,
        )
    return dg.MaterializeResult(metadata={**metadata, "rows_written_by_run": metadata["dagster/row_count"]})


def rebuild_days(context, client, days: list[date], guard: DeleteGuard, description: str) -> None:
    """Rebuild the fact's rows of these Moscow sales days in one pass, each day reported as a runtime
    materialization of its partition with its own counts (so the UI never shows a rebuilt day missing)."""
    rebuild(client, "fact_qtickets_sales_daily", SALES_ON_DAYS, where="sales_date IN {days:Array(Date)}",
            parameters={"days": days}, guard=guard)
    counts = {row[0]: row[1:] for row in client.query(
        "SELECT sales_date, count(), sum(tickets_sold), sum(revenue) FROM fact_qtickets_sales_daily FINAL "
        "WHERE sales_date IN {days:Array(Date)} GROUP BY sales_date", parameters={"days": days}).result_rows}
    for day in days:
        rows, tickets, revenue = counts.get(day, (0, 0, 0))
        context.log_event(dg.AssetMaterialization(
            asset_key=SALES_KEY, partition=day.isoformat(), description=description,
            metadata={"dagster/row_count": int(rows), "tickets_sold": int(tickets),
                      "revenue": float(revenue)},
        ))


def staged_in_full(client, days: Iterable[date], window: dg.TimeWindow | None = None) -> list[date]:
    """Those of `days` (in their order) whose every sale order staging holds, so the fact may be rebuilt
    from it: daily partitions inside the range the fact has been built over (its oldest to newest day,
    tombstones count) or inside `window` (a run's own days, read in full). A day outside was never read in
    full: its partition stays missing until a backfill computes it."""
    oldest, newest, built = client.query(
        "SELECT min(sales_date), max(sales_date), count() FROM fact_qtickets_sales_daily").result_rows[0]
    first, last = (window.start.astimezone(MSK).date(), window.end.astimezone(MSK).date()) if window \
        else (None, None)
    return [day for day in days if daily_partitions.has_partition_key(day.isoformat()) and (
        (built and oldest <= day <= newest) or (first is not None and first <= day < last))]


def rebuild_marked_days(context: dg.AssetExecutionContext, client, marks: dict[date, int],
                         window: dg.TimeWindow, guard: DeleteGuard) -> None:
    """Rebuild the marked days outside the run's window (the window is rebuilt anyway) that staging holds
    in full (`staged_in_full`), each reported as a runtime materialization of its partition with its own
    counts. Skipped days are unmarked all the same."""
    first, last = window.start.astimezone(MSK).date(), window.end.astimezone(MSK).date()
    days = [day for day in staged_in_full(client, sorted(marks)) if not first <= day < last]
    if not days:
        return
    rebuild_days(context, client, days, guard,
                 "rebuilt: orders paid on this day were rewritten outside their run's partitions")
    context.log.info(f"rebuilt {len(days)} sales days outside the run's partitions: "
                     f"{', '.join(d.isoformat() for d in days)}")


@dg.asset(
    deps=["stg_qtickets_api_events_raw"],
    group_name="qtickets_marts",
    kinds={"clickhouse", "sql"},
    pool="dim_events",
)
def dim_events(context: dg.AssetExecutionContext, clickhouse: ClickHouseResource) -> dg.MaterializeResult:
    """Events and their shows: name, city and its time zone, venue, show times, active/deleted flags."""
    with clickhouse.get_client() as client:
        metadata = rebuild(client, "dim_events", DIM_EVENTS,
                           guard=clickhouse.delete_guard("dim_events", context.run.tags))
    return dg.MaterializeResult(metadata=metadata)


# After the sales fact: the repair compares the two.
@dg.asset(
    deps=["stg_qtickets_api_inventory_raw", "stg_qtickets_api_events_raw", "fact_qtickets_sales_daily"],
    group_name="qtickets_marts",
    kinds={"clickhouse", "sql"},
    pool="fact_qtickets_inventory_latest",
)
def fact_qtickets_inventory_latest(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource, qtickets: QTicketsResource
) -> dg.MaterializeResult:
    """Latest capacity, free and sold seats per show (each physical seat counted once); a show that has
    started keeps its last snapshot, flagged `is_final`. Shows the sales fact counts over capacity get their
    paid orders re-read first (repair.py), so the check sees what is still wrong after that."""
    with clickhouse.get_client() as client:
        metadata = rebuild(client, "fact_qtickets_inventory_latest", INVENTORY_LATEST,
                           guard=clickhouse.delete_guard("fact_qtickets_inventory_latest", context.run.tags))
        metadata |= repair_over_capacity(context, clickhouse, client, qtickets)
    return dg.MaterializeResult(metadata=metadata)
