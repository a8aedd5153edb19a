"""Raw assets: QTickets API -> ClickHouse staging tables (written by the ClickHouse IO manager)."""

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from itertools import islice

import dagster as dg
import orjson
import pyarrow as pa

from ..partitions import daily_partitions
from ..qtickets.client import MSK, current_shows, started_shows
from ..qtickets.models import Event, Order, parse
from ..qtickets.resource import QTicketsResource
from ..transform import event_rows, inventory_rows, order_rows
from ..warehouse import sales_days
from ..warehouse.io_manager import ID_COLUMN, KEEP, KEY, WINDOW_COLUMN
from ..warehouse.writes import Rows, RowStream
from ..webhooks.drain import applied_hooks_metadata
from .order_reads import OrderReads

# ~1.1k tickets per insert: enough for ClickHouse, small for memory (bench/memory.py, 28k orders: peak
# RSS +247 MB over the process floor with 500 orders a chunk, +376 MB with 2k, same wall time; 10k
# measured 1.3 GB in all). The working set is the chunk's raw dicts, models and columns.
ORDERS_PER_CHUNK = 500


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="clickhouse_io",
    group_name="qtickets_staging",
    kinds={"clickhouse", "python"},
    pool="stg_qtickets_api_orders_raw",  # one writer per table (server mode: deploy/dagster.yaml)
    # Rows of the manual fallback (assets/manual.py) stay until the API serves the same tickets.
    metadata={KEY: ["order_id", "basket_id"], WINDOW_COLUMN: "order_created_at", KEEP: "source = 'manual'",
              ID_COLUMN: "order_id"},
)
def stg_qtickets_api_orders_raw(
    context: dg.AssetExecutionContext, qtickets: QTicketsResource
) -> RowStream:
    """One row per ticket (basket) of the orders created in the partition's Moscow days, plus the orders
    paid in those days but created earlier, the orders changed since the last landed change, and the
    orders QTickets pushed by webhook, whatever their day (order_reads.py). Sales days these rewrites
    touch outside the partitions are marked for the fact to rebuild.

    Streams: the IO manager writes chunk by chunk, so a backfill of any range runs in flat memory."""
    window = context.partition_time_window
    hooks = qtickets.pending_hooks()
    reads = OrderReads(window, hook_ids=hooks.order_ids)
    context.add_output_metadata(applied_hooks_metadata(hooks))
    warehouse = OrderChanges(reads, timedelta(seconds=qtickets.watermark_overlap_s), context.run.run_id,
                             context.log)
    return RowStream(_order_chunks(qtickets, reads, context.log), replaced_ids=reads.outside,
                     before_write=warehouse)


class OrderChanges:
    """The warehouse side of the orders staging, run by the IO manager with its client (a dry run, which
    has no warehouse, skips it): before the first API read, the watermark (the newest landed
    `order_updated_at`) sets the changed-orders read; before each insert replaces its orders, and for the
    orders gone from the API, their Moscow payment days, old (staging, before the rewrite) and new, are
    marked for the fact when they lie outside the window's own days."""

    def __init__(self, reads: OrderReads, overlap: timedelta, run_id: str, log):
        self.first = reads.window.start.astimezone(MSK).date()
        self.last = reads.window.end.astimezone(MSK).date()
        self.reads, self.overlap, self.run_id, self.log = reads, overlap, run_id, log
        self.marked: set[date] = set()
        self.new_days: set[date] = set()  # of the chunks not inserted yet
        self.order_ids: set[int] = set()  # likewise

    def start(self, client) -> None:
        landed = sales_days.watermark(client)
        self.reads.changed_since = landed - self.overlap if landed else None
        self.log.info(f"watermark: {landed.isoformat() if landed else 'nothing landed yet'}")

    def chunk(self, rows: Rows) -> None:
        # Each distinct instant once: an order's baskets share its payed_at (half the conversions).
        self.new_days |= {moment.astimezone(MSK).date() for moment in set(rows.columns["payed_at"])
                          if moment is not None}
        self.order_ids.update(rows.columns["order_id"])

    def before_insert(self, client) -> None:
        # One read of the old days per insert (not per chunk): the rows it replaces are still there.
        self._mark(client, self.new_days | sales_days.paid_days(client, self.order_ids))
        self.new_days, self.order_ids = set(), set()

    def done(self, client) -> None:
        self._mark(client, sales_days.paid_days(client, self.reads.gone))

    def _mark(self, client, days: set[date]) -> None:
        days = {day for day in days if not self.first <= day < self.last} - self.marked
        sales_days.mark(client, days, self.run_id)
        self.marked |= days


def _order_chunks(qtickets: QTicketsResource, reads: OrderReads, log) -> Iterator[Rows]:
    with qtickets.get_client() as client:
        for rows, _ in order_chunks(reads.orders(client)):
            yield rows
    window = reads.window
    log.info(f"{window.start:%Y-%m-%d}..{window.end:%Y-%m-%d}: {reads.summary()}")


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while API answers are fetched and parsed: that allocates many
    objects and no cycles, and the models live long enough to reach the oldest generation, whose full
    pass over the process's heap (Dagster's included) held the GIL, and so every request, for ~0.5 s."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def order_chunks(orders: Iterable[Order], size: int = ORDERS_PER_CHUNK) -> Iterator[tuple[Rows, int]]:
    """Staging rows of `orders`, `size` orders a chunk (with the number of orders in it)."""
    orders = iter(orders)
    while True:
        # One collector pass per chunk instead of hundreds (the collector off measured +26% end to end,
        # bench/README.md).
        with collector_paused():
            batch = list(islice(orders, size))
            rows = order_rows(batch)
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
    with qtickets.get_client() as client, collector_paused():
        # `concurrency` calls in flight (QTicketsResource.concurrency); answers come back in show order
        # and each show's rows are built while the later shows' answers are awaited.
        seats = client.seats_of(show_id for _, show_id in shows)
        rows = inventory_rows(((event_id, show_id, seat_rows) for (event_id, _), (show_id, seat_rows)
                               in zip(shows, seats, strict=True)), snapshot_at=now)
    context.add_output_metadata(api_metadata(client))
    polled = {show_id for _, show_id in shows}
    final = sorted({show.id for _, show in started_shows(events, now)} - polled)
    context.log.info(f"{len(polled)} shows polled, {len(final)} started shows keep their last snapshot")
    rows.scope = ("show_id NOT IN {final_shows:Array(UInt64)}", {"final_shows": final})
    return rows
