"""meta_job_runs (ok and failed runs, written by the run's own process), `load`, `health`, on chDB."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest
import respx

from qtickets_assets import cli
from qtickets_assets.definitions import build_definitions
from qtickets_assets.runs import record_sensors
from qtickets_assets.settings import Settings, get_settings
from qtickets_assets.warehouse.resource import ClickHouseResource
from tests.builders import AS_OF, sensor_daemon

RANGE = {"dagster/asset_partition_range_start": "2026-11-20",
         "dagster/asset_partition_range_end": "2026-11-21"}
API = "https://qtickets.example.com/api/rest/v1/"
TOKEN = "tok-Very-Secret-0042"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The CLI's environment: this test's data dir, a frozen sandbox, no developer instance."""
    monkeypatch.setenv("QTICKETS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QTICKETS_SANDBOX_AS_OF", AS_OF.isoformat())
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def meta_rows(clickhouse):
    with clickhouse.get_client() as client:
        result = client.query("SELECT run_id, job_name, status, partition_range, rows, error, started_at, "
                              "finished_at FROM meta_job_runs ORDER BY started_at")
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


@pytest.mark.slow
def test_a_run_records_one_row_with_rows_per_asset(tmp_path, clickhouse):
    defs = build_definitions(Settings(qtickets_data_dir=tmp_path, qtickets_sandbox_as_of=AS_OF))
    job = defs.resolve_job_def("qtickets_refresh")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, tags=RANGE)
    assert result.success
    written = {}
    for event in result.get_asset_materialization_events():
        # Each partition of a range reports its own rows; the whole write's are rows_written_by_run.
        metadata = event.materialization.metadata
        count = metadata.get("rows_written_by_run") or metadata.get("dagster/row_count")
        if count is not None:
            written[event.asset_key.to_user_string()] = int(count.value)

    [row] = meta_rows(clickhouse)  # not FINAL: exactly one write per run
    assert (row["run_id"], row["job_name"]) == (result.run_id, "qtickets_refresh")
    assert (row["status"], row["error"]) == ("ok", "")
    assert row["partition_range"] == "2026-11-20...2026-11-21"
    assert row["rows"] == written
    assert written["fact_qtickets_sales_daily"] > 0 and written["stg_qtickets_api_orders_raw"] > 100
    assert {"stg_qtickets_api_events_raw", "stg_qtickets_api_inventory_raw", "v_sales_latest"} <= set(written)
    assert row["started_at"] <= row["finished_at"] <= datetime.now(UTC)


@respx.mock
def test_a_failing_load_exits_non_zero_and_records_the_failure_without_the_token(env, clickhouse, capsys):
    env.setenv("QTICKETS_API_BASE_URL", API)
    env.setenv("QTICKETS_API_TOKEN", TOKEN)
    respx.route(host="qtickets.example.com").respond(401, json={"error": "Unauthorized"})

    assert cli.main(["load", "--since-hours", "6"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "failed" and summary["job"] == "qtickets_refresh"

    [row] = meta_rows(clickhouse)
    assert (row["run_id"], row["status"]) == (summary["run_id"], "failed")
    assert "stg_qtickets_api_orders_raw" in row["error"] and "QTICKETS_API_TOKEN" in row["error"]
    assert TOKEN not in row["error"] and TOKEN not in json.dumps(summary)


def test_dry_run_counts_staging_rows_and_writes_nothing(env, tmp_path, capsys):
    assert cli.main(["load", "--dry-run"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dry_run"] is True and summary["partitions"] == "2026-11-20...2026-11-21"
    assert set(summary["rows"]) == {"stg_qtickets_api_orders_raw", "stg_qtickets_api_events_raw",
                                    "stg_qtickets_api_inventory_raw"}
    assert all(count > 0 for count in summary["rows"].values())
    assert not (tmp_path / "clickhouse").exists()


@pytest.mark.slow
def test_health_is_ok_after_a_load_and_fails_when_facts_are_old_or_missing(env, clickhouse, capsys):
    assert cli.main(["health"]) == 1  # empty warehouse: no facts at all
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"] is False
    missing = {"age_s": None, "fresh": False, "refreshed_at": None}
    assert report["facts"]["fact_qtickets_sales_daily"] == missing

    assert cli.main(["load", "--since-hours", "6"]) == 0
    capsys.readouterr()
    assert cli.main(["health"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"] is True and report["last_run"]["status"] == "ok"
    assert all(fact["age_s"] < 120 for fact in report["facts"].values())

    # Three hours without a load: what the old /healthz/qtickets_api reported as down.
    old = datetime.now(UTC) - timedelta(hours=3)
    with clickhouse.get_client() as client:
        for table in ("fact_qtickets_sales_daily", "fact_qtickets_inventory_latest", "meta_job_runs"):
            client.command(f"TRUNCATE TABLE {table}")
        columns = ["sales_date", "event_id", "show_id", "tickets_sold", "revenue", "orders_count",
                   "refunded_tickets", "refunds_amount", "_loaded_at", "_ver", "_dedup_key"]
        row = [AS_OF.date(), 1, 1, 2, Decimal("10.00"), 1, 0, Decimal(0), old, 1, 1]
        client.insert("fact_qtickets_sales_daily", [row], column_names=columns, settings={"async_insert": 0})
    assert cli.main(["health"]) == 1
    report = json.loads(capsys.readouterr().out)
    sales = report["facts"]["fact_qtickets_sales_daily"]
    assert sales["fresh"] is False and 3 * 3600 - 60 < sales["age_s"] < 3 * 3600 + 60

    # A fresh tombstone (a write that removed the row) does not make the fact fresh (issue 11 item 2).
    with clickhouse.get_client() as client:
        client.insert("fact_qtickets_sales_daily", [row[:8] + [datetime.now(UTC), 2, 1, 1]],
                      column_names=[*columns, "_deleted"], settings={"async_insert": 0})
    assert cli.main(["health"]) == 1
    assert json.loads(capsys.readouterr().out)["facts"]["fact_qtickets_sales_daily"]["fresh"] is False

    # A run over days without sales writes no fact row, but it did refresh the facts.
    facts = {"fact_qtickets_sales_daily": 0, "fact_qtickets_inventory_latest": 0}
    recent = datetime.now(UTC) - timedelta(minutes=5)
    with clickhouse.get_client() as client:
        client.insert("meta_job_runs", [["r1", "qtickets_refresh", recent, recent, "ok", "", facts, "", 1]],
                      column_names=["run_id", "job_name", "started_at", "finished_at", "status",
                                    "partition_range", "rows", "error", "_ver"], settings={"async_insert": 0})
    assert cli.main(["health"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["last_run"]["run_id"] == "r1"
    assert all(240 < fact["age_s"] < 400 for fact in report["facts"].values())


def test_the_daemon_never_opens_chdb_in_embedded_mode(tmp_path):
    embedded = build_definitions(Settings(qtickets_data_dir=tmp_path))
    server = build_definitions(Settings(clickhouse_dsn="http://localhost:8123"))
    dg.Definitions.validate_loadable(server)  # the record sensors' resources resolve
    names = {sensor.name for sensor in embedded.sensors}
    # Alerts call webhooks, pending_webhooks reads the hook store: none of them opens the warehouse.
    assert names == {"freshness_alerts", "run_failure_alerts", "check_failure_alerts", "pending_webhooks"}
    assert {"meta_job_runs_ok", "meta_job_runs_failed"} <= {sensor.name for sensor in server.sensors}
    assert embedded.resources["clickhouse"].record_runs is True
    assert server.resources["clickhouse"].record_runs is False


# Server mode's record sensors on chDB (DSN from the environment, so each test picks its directory).
RECORD_DEFS = dg.Definitions(
    sensors=record_sensors,
    resources={"clickhouse": ClickHouseResource(dsn=dg.EnvVar("QTICKETS_TEST_RECORDS_DSN"),
                                                lock_timeout_s=5)},
)


@pytest.mark.slow
def test_server_mode_sensors_record_every_finished_run_also_after_a_warehouse_outage(clickhouse, resources,
                                                                                     monkeypatch):
    from qtickets_assets.assets import marts, raw

    monkeypatch.setenv("QTICKETS_TEST_RECORDS_DSN", "http://127.0.0.1:9/")  # nothing listens: refused
    with dg.instance_for_test() as instance, sensor_daemon(instance, __name__, "RECORD_DEFS") as tick:
        tick()  # the run-status sensors start watching from here

        def materialize(day: str) -> str:
            return dg.materialize([raw.stg_qtickets_api_orders_raw, marts.fact_qtickets_sales_daily],
                                  instance=instance, resources=resources, partition_key=day).run_id

        first = materialize("2026-11-20")
        tick()  # the warehouse is down: Dagster moves the sensor's cursor past the run anyway
        assert meta_rows(clickhouse) == []

        monkeypatch.setenv("QTICKETS_TEST_RECORDS_DSN", clickhouse.dsn)
        second = materialize("2026-11-21")
        tick()  # the next finished run: both are recorded
        ended = datetime.fromtimestamp(instance.get_run_record_by_id(first).end_time, UTC)
    rows = {row["run_id"]: row for row in meta_rows(clickhouse)}
    assert set(rows) == {first, second}
    assert (rows[first]["status"], rows[first]["partition_range"]) == ("ok", "2026-11-20")
    assert set(rows[first]["rows"]) == {"stg_qtickets_api_orders_raw", "fact_qtickets_sales_daily"}
    assert abs((rows[first]["finished_at"] - ended).total_seconds()) < 0.01  # the run's end, not the sensor's
