"""The capacity repair: before `sold_within_capacity` runs, shows whose sales fact counts more tickets than
their capacity get their paid orders re-read from the API.

The usual cause is stale staging, not a wrong API: a seat freed by a cancellation or refund of an older
order (refunds do not move `updated_at`, so the watermark read misses them) was sold again, and the old sale
is still counted until the nightly reconcile. The re-read orders land exactly as a run's webhook re-reads
(replaced in full, their old and new sales days marked) and the marked fact days are rebuilt, each reported
as a materialization of its partition. Bounded per run: QTICKETS_REPAIR_MAX_SHOWS shows and
QTICKETS_REPAIR_MAX_ORDERS orders, i.e. at most ceil(orders / per_page) extra requests.

Every repair reports the same way (`repair_metadata`), whatever it repairs: the keys it re-read as
"kind:key" (`show:300123`; other repairs e.g. `day:2026-12-01`, `event:24001`), the records re-read from the
API, whether it stopped at its cap, and a one-line summary. Put on the repairing asset's materialization,
they reach the run's metadata, the checks' results and `meta_job_runs` (runs.py: `repaired`,
`repair_reread`, `repair_capped`) with no other change: a new kind of repair only calls `repair_metadata`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from ..qtickets.resource import QTicketsResource
from ..warehouse import sales_days
from ..warehouse.io_manager import write
from ..warehouse.resource import ClickHouseResource
from ..warehouse.writes import RowStream
from . import raw
from .order_reads import OrderReads

REPAIR_KEYS, REPAIR_REREAD, REPAIR_CAPPED, REPAIR_SUMMARY = (
    "repair/keys", "repair/reread", "repair/capped", "repair/summary")
STAGING = raw.stg_qtickets_api_orders_raw
# Each show's inventory beside the tickets the sales fact counts on it: read by checks.sold_within_capacity
# too, which fails on what the repair (the `tickets_sold > capacity` part) could not explain.
INVENTORY_WITH_SALES = """
FROM fact_qtickets_inventory_latest AS inventory FINAL
LEFT JOIN (
    SELECT show_id, sum(tickets_sold) AS tickets_sold FROM fact_qtickets_sales_daily FINAL GROUP BY show_id
) AS sales ON sales.show_id = inventory.show_id
"""
OVER_CAPACITY = f"SELECT inventory.show_id {INVENTORY_WITH_SALES} WHERE sales.tickets_sold > capacity " \
                "ORDER BY inventory.show_id"
# Orders staging counts as sold on those shows (what the fact sums), API rows only.
SOLD_ORDERS = """
SELECT DISTINCT order_id FROM stg_qtickets_api_orders_raw FINAL
WHERE show_id IN {shows:Array(UInt64)} AND payed = 1 AND basket_id != 0 AND source != 'manual'
  AND order_deleted_at IS NULL AND basket_deleted_at IS NULL AND refunded_at IS NULL
ORDER BY order_id
LIMIT {limit:UInt64}
"""


def repair_metadata(keys: list[str], reread: int, capped: bool, summary: str) -> dict:
    """What a repair did, as materialization metadata (module docstring): `keys` are "kind:key"."""
    return {REPAIR_KEYS: dg.MetadataValue.json(keys), REPAIR_REREAD: reread, REPAIR_CAPPED: capped,
            REPAIR_SUMMARY: summary}


def repair_over_capacity(context: dg.AssetExecutionContext, clickhouse: ClickHouseResource, client,
                         qtickets: QTicketsResource) -> dict:
    """Re-read the paid orders of the shows sold over capacity and rebuild the sales days they touch;
    returns the materialization metadata that says what was re-read."""
    from .marts import rebuild_marked_days  # marts imports this module

    found = [row[0] for row in client.query(OVER_CAPACITY).result_rows]
    if not found:
        return repair_metadata([], 0, False, "no show sold over capacity")
    shows = found[:qtickets.repair_max_shows]
    ids = [row[0] for row in client.query(
        SOLD_ORDERS, parameters={"shows": shows, "limit": qtickets.repair_max_orders + 1}).result_rows]
    capped = len(found) > len(shows) or len(ids) > qtickets.repair_max_orders
    ids = ids[:qtickets.repair_max_orders]
    cap_hit = (f"cap hit (QTICKETS_REPAIR_MAX_SHOWS={qtickets.repair_max_shows}, "
               f"QTICKETS_REPAIR_MAX_ORDERS={qtickets.repair_max_orders})")
    if not ids:  # a cap of 0 turns the repair off
        message = f"sold over capacity: shows {found}; nothing re-read, {cap_hit}"
        context.log.warning(message)
        return repair_metadata([], 0, True, message)
    now = datetime.now(UTC)
    reads = OrderReads(dg.TimeWindow(now, now))  # an empty window: every order re-read lies outside it
    changes = raw.OrderChanges(reads, timedelta(0), context.run.run_id, context.log)
    with qtickets.get_client() as api:
        stream = RowStream((rows for rows, _ in raw.order_chunks(reads.by_ids(api, ids, "repair"))),
                           replaced_ids=reads.outside, before_write=changes)
        write(client, STAGING.key.path[-1], dict(STAGING.specs_by_key[STAGING.key].metadata), stream,
              reads.window, clickhouse.delete_guard(STAGING.key.to_user_string(), context.run.tags))
    marks = sales_days.marked(client)
    rebuild_marked_days(context, client, marks, reads.window,
                        clickhouse.delete_guard("fact_qtickets_sales_daily", context.run.tags))
    sales_days.unmark(client, marks, context.run.run_id)
    message = (f"sold over capacity: shows {found}; re-read {len(ids)} paid orders of shows {shows} "
               f"({reads.counts['repair']} answered), rebuilt sales days "
               f"{', '.join(d.isoformat() for d in sorted(marks)) or 'none'}")
    if capped:
        message += f"; {cap_hit}"
    context.log.warning(message)
    return repair_metadata([f"show:{show}" for show in shows], reads.counts["repair"], capped, message)
