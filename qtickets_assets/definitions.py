"""The one Definitions object that workspace.yaml loads.

Cross-cutting policy is applied here, once: resources built from settings, and the executor. On the
embedded engine every run executes in one process (the in-process executor), because chDB lets one
process own its data directory; against a ClickHouse server steps may run in parallel subprocesses.
"""


import dagster as dg

from . import automation
from .assets import checks, marts, raw, views
from .qtickets.resource import QTicketsResource
from .settings import Settings, get_settings
from .warehouse.io_manager import ClickHouseIOManager
from .warehouse.resource import ClickHouseResource


def build_resources(settings: Settings) -> dict[str, object]:
    clickhouse = ClickHouseResource(
        # A server DSN may carry a password: pass it as an EnvVar so it never shows in the UI.
        dsn=dg.EnvVar("CLICKHOUSE_DSN") if settings.clickhouse_dsn else settings.resolved_clickhouse_dsn,
        database=settings.clickhouse_database,
        lock_timeout_s=settings.clickhouse_lock_timeout_s,
        cluster=settings.clickhouse_cluster or "",
        compress=settings.clickhouse_compress,
        connect_timeout_s=settings.clickhouse_connect_timeout_s,
        send_receive_timeout_s=settings.clickhouse_send_receive_timeout_s,
    )
    qtickets = QTicketsResource(
        base_url=str(settings.qtickets_api_base_url or ""),
        token=dg.EnvVar("QTICKETS_API_TOKEN") if not settings.uses_sandbox else "",
        sandbox_seed=settings.qtickets_sandbox_seed,
        sandbox_opened_on=settings.qtickets_partitions_start.isoformat(),
        sandbox_orders_per_day=settings.qtickets_sandbox_orders_per_day,
        sandbox_as_of=settings.qtickets_sandbox_as_of.isoformat() if settings.qtickets_sandbox_as_of else "",
    )
    return {
        "clickhouse": clickhouse,
        "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
        "qtickets": qtickets,
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_modules([raw, marts, views]),
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        schedules=automation.schedules,
        sensors=automation.sensors,
        resources=build_resources(settings),
        executor=dg.in_process_executor if settings.embedded else dg.multiprocess_executor,
    )


defs = build_definitions(get_settings())
