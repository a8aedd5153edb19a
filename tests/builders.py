"""Builders shared by the tests: API records, a controllable order source, one-call materializations and
warehouse reads. Fixed instants only: nothing here reads the real clock."""

from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import orjson

from qtickets_assets.assets import marts, raw
from qtickets_assets.partitions import daily_partitions
from qtickets_assets.qtickets.models import Event, Order, SeatRow, parse
from qtickets_assets.qtickets.query import matches
from qtickets_assets.qtickets.resource import QTicketsResource
from qtickets_assets.transform import order_rows
from qtickets_assets.warehouse.writes import Rows

AS_OF = datetime.fromisoformat("2026-11-21T12:00:00+03:00")  # the frozen sandbox clock of the tests
OPENED_ON = "2026-10-01"
MSK = ZoneInfo("Europe/Moscow")
NSK = ZoneInfo("Asia/Novosibirsk")
STAGING_METADATA = raw.stg_qtickets_api_orders_raw.specs_by_key[raw.stg_qtickets_api_orders_raw.key].metadata
D = date(2026, 11, 10)


def at(day: date, hh: int = 12, mm: int = 0, ss: int = 0, tz: ZoneInfo = MSK) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=tz)


def api_time(moment: datetime | None) -> str | None:
    """The API writes every instant with the Moscow offset."""
    return None if moment is None else moment.astimezone(MSK).isoformat()


def basket(
    basket_id: int,
    show_id: int,
    price: int,
    *,
    refunded_at: datetime | None = None,
    refunded_amount: int | None = None,
    deleted_at: datetime | None = None,
) -> dict:
    return {
        "id": basket_id,
        "show_id": show_id,
        "price": price,
        "original_price": price,
        "quantity": 1,
        "seat_id": f"PARTERRE-1;{basket_id % 20 + 1}",
        "deleted_at": api_time(deleted_at),
        "refunded_at": api_time(refunded_at),
        "refunded_amount": refunded_amount if refunded_at else None,
    }


def order(
    order_id: int,
    event_id: int,
    created: datetime,
    baskets: list[dict],
    *,
    payed: datetime | None = None,
    deleted: datetime | None = None,
) -> Order:
    updated = max(m for m in (created, payed, deleted) if m is not None)
    record = {
        "id": order_id,
        "event_id": event_id,
        "payed": int(payed is not None),
        "payed_at": api_time(payed),
        "created_at": api_time(created),
        "updated_at": api_time(updated),
        "deleted_at": api_time(deleted),
        "utm": [],
        "custom": "",
        "fields": [],
        "integrations": [],
        "baskets": baskets,
    }
    return parse(Order, record)


class Source:
    """The orders the API currently returns; tests change it between materializations."""

    def __init__(self, *orders: Order):
        self.orders = {o.id: o for o in orders}

    def put(self, *orders: Order) -> None:
        self.orders.update({o.id: o for o in orders})

    def remove(self, order_id: int) -> None:
        del self.orders[order_id]

    def asset(self) -> dg.AssetsDefinition:
        @dg.asset(
            name="stg_qtickets_api_orders_raw",
            partitions_def=daily_partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            io_manager_key="clickhouse_io",
            metadata=STAGING_METADATA,
        )
        def staging(context: dg.AssetExecutionContext) -> Rows:
            window = context.partition_time_window

            def inside(moment):
                return moment is not None and window.start <= moment < window.end

            return order_rows(o for o in self.orders.values() if inside(o.created_at) or inside(o.payed_at))

        return staging


def materialize(
    resources, source: Source, first: date, last: date | None = None
) -> dg.ExecuteInProcessResult:
    """One run over the Moscow days first..last (a single-run backfill when last > first)."""
    keys = dg.PartitionKeyRange(first.isoformat(), (last or first).isoformat())
    result = dg.materialize(
        [source.asset(), marts.fact_qtickets_sales_daily],
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": keys.start,
            "dagster/asset_partition_range_end": keys.end,
        },
    )
    assert result.success
    return result


def fact(clickhouse, day: date | None = None) -> dict[tuple, tuple]:
    """(sales_date, event, show) -> (tickets_sold, revenue, orders_count, refunded_tickets, refunds_amt)."""
    with clickhouse.get_client() as client:
        rows = client.query(
            "SELECT sales_date, event_id, show_id, tickets_sold, revenue, orders_count, refunded_tickets, "
            "refunds_amount FROM fact_qtickets_sales_daily FINAL "
            "WHERE {day:Nullable(Date)} IS NULL OR sales_date = {day:Nullable(Date)}",
            parameters={"day": day},
        ).result_rows
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}


def physical_rows(clickhouse, table: str) -> int:
    with clickhouse.get_client() as client:
        return client.query(f"SELECT count() FROM {table}").result_rows[0][0]

SNAPSHOT = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


def metadata_of(asset: dg.AssetsDefinition) -> dict:
    return dict(asset.specs_by_key[asset.key].metadata)


def rows_asset(name: str, rows: Rows, metadata: dict, partitioned: bool = False) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        io_manager_key="clickhouse_io",
        metadata=metadata,
        partitions_def=daily_partitions if partitioned else None,
    )
    def _asset() -> Rows:
        return rows

    return _asset


def write(resources, name: str, rows: Rows, metadata: dict, partition_key: str | None = None, **kwargs):
    return dg.materialize(
        [rows_asset(name, rows, metadata, partition_key is not None)],
        resources=resources,
        partition_key=partition_key,
        **kwargs,
    )


def query(clickhouse, sql: str, **parameters) -> list[tuple]:
    with clickhouse.get_client() as client:
        return client.query(sql, parameters=parameters).result_rows


def seat(offer: str, root: str, max_q: int, free: int, payed: int, ordered: int | None = None) -> SeatRow:
    return parse(
        SeatRow,
        {
            "id": offer,
            "root_id": root,
            "zone_root_id": "PARTERRE",
            "admission": 0,
            "max_quantity": max_q,
            "free_quantity": free,
            "payed_quantity": payed,
            "ordered_quantity": payed if ordered is None else ordered,
            "in_basket_quantity": 0,
            "price": 1500.0,
            "multiprice_code": None,
        },
    )


def event(
    event_id: int,
    name: str,
    shows: list[int],
    *,
    deleted: datetime | None = None,
    city=("Новосибирск", "Asia/Novosibirsk"),
) -> Event:
    start = datetime(2026, 12, 1, 19, 0, tzinfo=MSK)
    return parse(
        Event,
        {
            "id": event_id,
            "name": name,
            "is_active": 0 if deleted else 1,
            "place_name": "Арена Север",
            "city": {"id": 3, "name": city[0], "timezone": city[1]},
            "deleted_at": deleted.isoformat() if deleted else None,
            "shows": [
                {
                    "id": s,
                    "is_active": 1,
                    "start_date": (start + timedelta(days=i)).isoformat(),
                    "finish_date": (start + timedelta(days=i, hours=2)).isoformat(),
                    "deleted_at": None,
                }
                for i, s in enumerate(shows)
            ],
        },
    )


INVENTORY = metadata_of(raw.stg_qtickets_api_inventory_raw)
EVENTS = metadata_of(raw.stg_qtickets_api_events_raw)
ORDERS = metadata_of(raw.stg_qtickets_api_orders_raw)



@contextmanager
def sensor_daemon(instance, module: str, attribute: str):
    """`tick()`: one pass of Dagster's sensor daemon over the sensors of the Definitions `module.attribute`,
    a minute after the previous one (past every sensor's minimum interval); cursors, ticks and the clock
    are Dagster's own."""
    import logging

    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name=module, attribute=attribute))
    clock = [datetime.now(UTC)]
    with create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance) as workspace:
        def tick() -> None:
            clock[0] += timedelta(seconds=61)
            with freeze_time(clock[0]):
                list(execute_sensor_iteration(workspace, logging.getLogger("sensor-daemon"), None, None))
        yield tick


# --- a controllable API: orders as the test holds them now (respx side effect) ------------------------

API = "https://qtickets.example.com/api/rest/v1/"
SALES = [raw.stg_qtickets_api_orders_raw, marts.fact_qtickets_sales_daily]


class FakeApi:
    """GET orders (JSON-body `where`, paging), GET orders/{id} and GET events/{id} over the records it
    holds now."""

    def __init__(self, *orders):
        self.records = {o.id: o.raw for o in orders}
        self.events: dict[int, dict] = {}
        self.requests: list[httpx.Request] = []

    def put(self, *orders):
        self.records.update({o.id: o.raw for o in orders})

    def put_events(self, *events):
        self.events.update({e.id: e.raw for e in events})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.split("/api/rest/v1/", 1)[1].strip("/")
        kind, _, record_id = path.partition("/")
        if record_id and kind in ("events", "orders"):  # one record: events/{id} or orders/{id}
            record = (self.events if kind == "events" else self.records).get(int(record_id))
            if record is None:
                return httpx.Response(404, json={"error": f'Resource "{kind[:-1].title()}" not found',
                                                 "status": 404, "code": "RESOURCE_NOT_FOUND"})
            return httpx.Response(200, json={"data": record})
        body = orjson.loads(request.content or b"{}")
        rows = sorted((r for r in self.records.values() if matches(r, body.get("where") or [])),
                      key=lambda r: r["id"])
        page, per_page = body.get("page", 1), body.get("perPage", 100)
        return httpx.Response(200, json={
            "data": rows[(page - 1) * per_page: page * per_page],
            "paging": {"perPage": per_page, "currentPage": page, "total": len(rows)}})


def run(clickhouse, hooks, first, last=None, instance=None, one_process=True) -> dg.ExecuteInProcessResult:
    from qtickets_assets.warehouse.io_manager import ClickHouseIOManager

    qtickets = QTicketsResource(base_url=API, token="t", webhook_store=str(hooks.path),
                                clear_hooks_at_run_end=one_process)
    result = dg.materialize(
        SALES, instance=instance,
        resources={"clickhouse": clickhouse, "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
                   "qtickets": qtickets},
        tags={"dagster/asset_partition_range_start": first.isoformat(),
              "dagster/asset_partition_range_end": (last or first).isoformat()},
    )
    assert result.success
    return result


def refresh_job_run(clickhouse, qtickets: QTicketsResource, keys: dg.PartitionKeyRange,
                    instance) -> dg.ExecuteInProcessResult:
    """The 15-minute job (automation.refresh_job, the whole graph) over `keys` in one run, as scheduled."""
    from qtickets_assets import automation
    from qtickets_assets.assets import checks, views
    from qtickets_assets.warehouse.io_manager import ClickHouseIOManager

    defs = dg.Definitions(
        assets=dg.load_assets_from_modules([raw, marts, views]),
        asset_checks=dg.load_asset_checks_from_modules([checks]), jobs=[automation.refresh_job],
        resources={"clickhouse": clickhouse, "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
                   "qtickets": qtickets},
    )
    return defs.resolve_job_def(automation.refresh_job.name).execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": keys.start,
              "dagster/asset_partition_range_end": keys.end})


def recorded_run(clickhouse, run_id: str) -> tuple:
    """The run's meta_job_runs row: status and its repairs."""
    return query(clickhouse, "SELECT status, repaired, repair_reread, repair_capped FROM meta_job_runs FINAL "
                             "WHERE run_id = {run:String}", run=run_id)[0]
