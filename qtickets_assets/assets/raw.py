"""Raw assets: QTickets API -> ClickHouse staging tables (written by the ClickHouse IO manager)."""

import gc
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import chain, islice

import dagster as dg
import orjson
import pyarrow as pa

from ..partitions import daily_partitions
from ..qtickets.client import current_shows, started_shows
from ..qtickets.models import Event, Order, parse
from ..qtickets.resource import QTicketsResource
from ..transform import event_rows, inventory_rows, order_rows
from ..warehouse.io_manager import KEEP, KEY, WINDOW_COLUMN
from ..warehouse.writes import Rows, RowStream

# ~5k tickets per insert: large for ClickHouse, small for memory (bench/memory.py: a backfill peaks at
# ~0.7 GB RSS with 2k orders a chunk, ~1.3 GB with 10k; the working set is the chunk's models and columns).
ORDERS_PER_CHUNK = 2_000


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="clickhouse_io",
    group_name="qtickets_staging",
    kinds={"clickhouse", "python"},
    pool="stg_qtickets_api_orders_raw",  # one writer per table (server mode: deploy/dagster.yaml)
    # Rows of the manual fallback (assets/manual.py) stay until the API serves the same tickets.
    metadata={KEY: ["order_id", "basket_id"], WINDOW_COLUMN: "order_created_at", KEEP: "source = 'manual'"},
)
def stg_qtickets_api_orders_raw(
    context: dg.AssetExecutionContext, qtickets: QTicketsResource
) -> RowStream:
    """One row per ticket (basket) of the orders created in the partition's Moscow days, plus the
    orders paid in those days but created earlier (a late payment updates its older row).

    Streams: the IO manager writes chunk by chunk, so a backfill of any range runs in flat memory."""
    return RowStream(_order_chunks(qtickets, context.partition_time_window, context.log))


def _order_chunks(qtickets: QTicketsResource, window: dg.TimeWindow, log) -> Iterator[Rows]:
    with qtickets.get_client() as client:
        created = client.orders_between("created_at", window.start, window.end)
        # Created inside the window: already in `created`; the server is asked for the others only.
        paid_late = client.orders_between("payed_at", window.start, window.end, created_before=window.start)
        total = 0
        for rows, orders in order_chunks(chain(created, paid_late)):
            total += orders
            yield rows
    log.info(f"{total} orders for {window.start:%Y-%m-%d}..{window.end:%Y-%m-%d}")


def order_chunks(orders: Iterable[Order], size: int = ORDERS_PER_CHUNK) -> Iterator[tuple[Rows, int]]:
    """Staging rows of `orders`, `size` orders a chunk (with the number of orders in it)."""
    orders = iter(orders)
    while True:
        # Fetching and parsing allocate many short-lived objects and no cycles: one collector pass per
        # chunk instead of hundreds (the collector off measured +26% end to end, bench/README.md).
        collecting = gc.isenabled()
        gc.disable()
        try:
            batch = list(islice(orders, size))
            rows = order_rows(batch)
        finally:
            if collecting:
                gc.enable()
        if not batch:
            return
        yield rows, len(batch)


def api_metadata(client) -> dict[str, int]:
    """The API calls an asset made (what `/metrics` reports per asset)."""
    return {"qtickets/api_requests": client.requests_made, "qtickets/api_retries": client.retries_made}


@dg.asset(
    io_manager_key="clickhouse_io",
    group_name="qtickets_staging",
    kinds={"clickhouse", "python"},
    pool="stg_qtickets_api_events_raw",
    metadata={KEY: ["event_id", "show_id"]},  # no scope: each run is a full snapshot of the account
)
def stg_qtickets_api_events_raw(context: dg.AssetExecutionContext, qtickets: QTicketsResource) -> Rows:
    """Every event with its shows (soft-deleted ones included, flagged), one row per (event, show)."""
    with qtickets.get_client() as client:
        events = list(client.events())
    context.add_output_metadata(api_metadata(client))
    context.log.info(f"{len(events)} events, {sum(len(e.shows) for e in events)} shows")
    return event_rows(sorted(events, key=lambda e: e.id))


@dg.asset(
    io_manager_key="clickhouse_io",
    group_name="qtickets_staging",
    kinds={"clickhouse", "python"},
    pool="stg_qtickets_api_inventory_raw",
    # A snapshot per run over the whole table, except the shows that have started: they are no longer
    # polled and keep their last snapshot (their final occupancy). A show deleted before its start leaves.
    metadata={KEY: ["show_id", "offer_id"]},
)
def stg_qtickets_api_inventory_raw(
    context: dg.AssetExecutionContext, qtickets: QTicketsResource, stg_qtickets_api_events_raw: pa.Table
) -> Rows:
    """Seat/offer counters (capacity, free, ordered, paid) of every active or future show, now; shows that
    have started keep the rows of their last poll.

    The shows come from the events staging table (one row per event and show, the API's JSON kept), so a
    run reads the events once."""
    now = datetime.now(UTC)
    events = [parse(Event, orjson.loads(raw), source="stg_qtickets_api_events_raw")
              for raw in stg_qtickets_api_events_raw.column("event_json").to_pylist()]
    # One call per show: only live shows that are on sale or still to start.
    shows = sorted({(event.id, show.id) for event, show in current_shows(events, now)})
    with qtickets.get_client() as client:
        # `concurrency` calls in flight (QTicketsResource.concurrency); answers come back in show order.
        seats = client.seats_of(show_id for _, show_id in shows)
        snapshot = [(event_id, show_id, rows)
                    for (event_id, _), (show_id, rows) in zip(shows, seats, strict=True)]
    context.add_output_metadata(api_metadata(client))
    polled = {show_id for _, show_id in shows}
    final = sorted({show.id for _, show in started_shows(events, now)} - polled)
    context.log.info(f"{len(snapshot)} shows polled, {len(final)} started shows keep their last snapshot")
    rows = inventory_rows(snapshot, snapshot_at=now)
    rows.scope = ("show_id NOT IN {final_shows:Array(UInt64)}", {"final_shows": final})
    return rows
