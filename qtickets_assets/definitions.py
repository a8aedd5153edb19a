"""The one Definitions object that workspace.yaml loads.

Cross-cutting policy is applied here, once: resources built from settings, and the executor. On the
embedded engine every run executes in one process (the in-process executor), because chDB lets one
process own its data directory; against a ClickHouse server steps may run in parallel subprocesses.
"""


import dagster as dg

from . import automation
from .assets import checks, manual, marts, raw, views
from .notify import Notifier
from .qtickets.resource import QTicketsResource
from .runs import RunRecordingClickHouseResource, record_sensors
from .settings import Settings, get_settings
from .warehouse import schema
from .warehouse.io_manager import ClickHouseIOManager
from .webhooks.drain import webhook_hooks_applied
from .webhooks.sensor import pending_webhooks, webhook_job


def build_resources(settings: Settings) -> dict[str, object]:
    clickhouse = RunRecordingClickHouseResource(
        # A server DSN may carry a password: pass it as an EnvVar so it never shows in the UI.
        dsn=dg.EnvVar("CLICKHOUSE_DSN") if settings.clickhouse_dsn else settings.resolved_clickhouse_dsn,
        database=settings.clickhouse_database,
        lock_timeout_s=settings.clickhouse_lock_timeout_s,
        record_runs=settings.embedded,  # meta_job_runs from the run's own process; server: record_sensors
        cluster=settings.clickhouse_cluster or "",
        compress=settings.clickhouse_compress,
        connect_timeout_s=settings.clickhouse_connect_timeout_s,
        send_receive_timeout_s=settings.clickhouse_send_receive_timeout_s,
        max_delete_share=settings.qtickets_max_delete_share,
        max_delete_floor=settings.qtickets_max_delete_floor,
        repair_max_days=settings.qtickets_repair_max_days,
    )
    qtickets = QTicketsResource(
        base_url=str(settings.qtickets_api_base_url or ""),
        token=dg.EnvVar("QTICKETS_API_TOKEN") if not settings.uses_sandbox else "",
        concurrency=settings.qtickets_concurrency,
        rejects_retention_days=settings.qtickets_rejects_retention_days,
        sandbox_seed=settings.qtickets_sandbox_seed,
        sandbox_opened_on=settings.qtickets_partitions_start.isoformat(),
        sandbox_orders_per_day=settings.qtickets_sandbox_orders_per_day,
        sandbox_event_every_days=settings.qtickets_sandbox_event_every_days,
        sandbox_as_of=settings.qtickets_sandbox_as_of.isoformat() if settings.qtickets_sandbox_as_of else "",
        sandbox_resales=settings.qtickets_sandbox_resales,
        watermark_overlap_s=settings.qtickets_watermark_overlap_s,
        repair_max_shows=settings.qtickets_repair_max_shows,
        repair_max_orders=settings.qtickets_repair_max_orders,
        repair_max_events=settings.qtickets_repair_max_events,
        webhook_store=str(settings.webhook_store_path),
        # Embedded: every step of a run in one process; server mode clears from a sensor (webhooks/drain.py).
        clear_hooks_at_run_end=settings.embedded,
        shared_budget=not settings.embedded,  # the multiprocess executor: one process per step
    )
    return {
        "clickhouse": clickhouse,
        "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
        "qtickets": qtickets,
        "notifier": build_notifier(settings),
    }


def build_notifier(settings: Settings) -> Notifier:
    # Secrets travel as EnvVars: the UI shows the variable's name, never its value.
    def secret(name: str, value: object) -> object:
        return dg.EnvVar(name) if value else ""

    return Notifier(
        webhook_url=secret("ALERT_WEBHOOK_URL", settings.alert_webhook_url),
        telegram_bot_token=secret("ALERT_TELEGRAM_BOT_TOKEN", settings.alert_telegram_bot_token),
        telegram_chat_id=settings.alert_telegram_chat_id or "",
        slack_webhook_url=secret("ALERT_SLACK_WEBHOOK_URL", settings.alert_slack_webhook_url),
        ui_url=settings.dagster_ui_url,
    )


def table_metadata(database: str):
    """For map_asset_specs: each asset's table or view in Dagster's terms (`dagster/table_name`,
    `dagster/column_schema`), the columns as the migrations declare them (views: their BI contract)."""
    tables = schema.tables()

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        name = spec.key.path[-1]
        columns = tables[name].columns if name in tables else views.CONTRACT.get(name)
        if columns is None:
            return spec
        column_schema = dg.TableSchema(columns=[dg.TableColumn(c, kind) for c, kind in columns.items()])
        return spec.merge_attributes(
            metadata={"dagster/table_name": f"{database}.{name}", "dagster/column_schema": column_schema}
        )

    return apply


def build_definitions(settings: Settings) -> dg.Definitions:
    assets = dg.load_assets_from_modules([raw, marts, views, manual])
    # Policies are applied here, once, over the asset specs.
    for policy in (automation.with_freshness_policy, table_metadata(settings.clickhouse_database)):
        assets = dg.map_asset_specs(policy, assets)
    return dg.Definitions(
        assets=assets,
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        jobs=[*automation.jobs, webhook_job],
        schedules=automation.schedules,
        # The daemon must not open chDB: in embedded mode each run records itself (runs.py).
        sensors=[*automation.sensors, pending_webhooks,
                 *([] if settings.embedded else [*record_sensors, webhook_hooks_applied])],
        resources=build_resources(settings),
        executor=dg.in_process_executor if settings.embedded else dg.multiprocess_executor,
    )


defs = build_definitions(get_settings())
