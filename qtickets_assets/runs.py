"""`meta_job_runs`: one row per Dagster run, and the health report that outside monitors read.

Who writes the row depends on the engine (chDB lets only the run's own process open the warehouse):
- embedded: the run's `clickhouse` resource, when the run tears its resources down. With the in-process
  executor resources are set up once per run, so teardown is the run's end, in the run's process; it still
  runs when a step failed. The row is built from the instance's event log of the run.
- server: run-status sensors (ok and failed) in the daemon, which also see runs that died without teardown.
A re-recorded run replaces its row (`ReplacingMergeTree(_ver)` ordered by job and run id).
"""

import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from .assets.repair import REPAIR_CAPPED, REPAIR_KEYS, REPAIR_REREAD
from .local_store import sqlite_store
from .notify import outbox_path, scrub
from .warehouse.engine import INSERT_SETTINGS
from .warehouse.resource import ClickHouseResource

log = logging.getLogger(__name__)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
ROW_COUNT = "dagster/row_count"
MAX_ERROR_CHARS = 4000
# Environment variables whose values must never reach meta_job_runs or an alert.
SECRET_ENV = ("QTICKETS_API_TOKEN", "CLICKHOUSE_DSN", "ALERT_WEBHOOK_URL", "ALERT_TELEGRAM_BOT_TOKEN",
              "ALERT_SLACK_WEBHOOK_URL")
FACTS = ("fact_qtickets_sales_daily", "fact_qtickets_inventory_latest")
MAX_FACT_AGE = timedelta(hours=2)  # the old /healthz/qtickets_api rule, also the freshness fail window


def scrub_secrets(text: str) -> str:
    return scrub(text, [os.environ.get(name, "") for name in SECRET_ENV])


def root_error(error) -> str:
    """The innermost cause of a Dagster error (the user's exception, not Dagster's wrapper)."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def partition_range(tags: Mapping[str, str]) -> str:
    if RANGE_START in tags:
        return f"{tags[RANGE_START]}...{tags[RANGE_END]}"
    return tags.get("dagster/partition", "")


def failed_check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    evaluations = (record.event_log_entry.dagster_event.event_specific_data for record in records)
    return [evaluation for evaluation in evaluations if not evaluation.passed]


def check_name(evaluation: dg.AssetCheckEvaluation) -> str:
    return f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"


def failed_checks(instance: dg.DagsterInstance, run_id: str,
                  evaluations: list[dg.AssetCheckEvaluation] | None = None) -> list[str]:
    """The run's failed asset checks, each as "asset:check: description" (the offending keys and, after a
    repair, what was re-read), without secrets."""
    if evaluations is None:
        evaluations = failed_check_evaluations(instance, run_id)
    return [scrub_secrets(f"{check_name(e)}: {e.description or 'failed'}")[:MAX_ERROR_CHARS]
            for e in evaluations]


def run_row(instance: dg.DagsterInstance, run_id: str, *, finished: bool) -> dict:
    """The meta_job_runs row of a run, from its run record and event log.

    `finished=False` means the run is still ending (resource teardown): its status is derived from the
    step failures so far and `finished_at` is now.
    """
    record = instance.get_run_record_by_id(run_id)
    run = record.dagster_run
    events = instance.get_records_for_run(
        run_id,
        of_type={dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION,
                 dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE},
    ).records
    rows: dict[str, int] = {}
    repaired: set[str] = set()
    reread: dict[str, int] = {}
    capped = False
    errors: list[str] = []

    def note_repair(name: str, metadata) -> None:
        nonlocal capped
        if REPAIR_KEYS in metadata:  # the same repair may show on several events of one asset: max
            repaired.update(metadata[REPAIR_KEYS].value)
            reread[name] = max(reread.get(name, 0), int(metadata[REPAIR_REREAD].value))
            capped = capped or bool(metadata[REPAIR_CAPPED].value)

    for entry in (event.event_log_entry for event in events):
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            metadata = event.step_materialization_data.materialization.metadata
            # A partition range materializes each day with its own count; the whole write's count is
            # repeated on each of them as rows_written_by_run.
            count = metadata.get("rows_written_by_run") or metadata.get(ROW_COUNT)
            name = event.asset_key.to_user_string()
            if count is not None:
                rows[name] = max(rows.get(name, 0), int(count.value))
            # Repairs (assets/repair.py), repeated like the counts on each partition of a range.
            note_repair(name, metadata)
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            # Repairs a check made before it looked again (assets/repair_days.py, repair_events.py).
            evaluation = event.asset_check_evaluation_data
            note_repair(evaluation.asset_key.to_user_string(), evaluation.metadata)
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            errors.append(f"{event.step_key}: {root_error(error) if error else entry.message}")
        elif not errors:  # a run failure without step failures (a resource that failed, a dead worker)
            error = event.job_failure_data.error if event.job_failure_data else None
            errors.append(root_error(error) if error else entry.message or "run failed")
    # No check blocks a run, but one that found numbers wrong (ERROR severity) makes the run's record
    # `failed`: dashboards and `health` read `ok` as "these numbers are right".
    checks = failed_check_evaluations(instance, run_id)
    wrong = [check_name(e) for e in checks if e.severity == dg.AssetCheckSeverity.ERROR]
    if wrong and not errors:
        errors.append(f"checks failed: {', '.join(wrong)}")
    failed = bool(errors) or run.status == dg.DagsterRunStatus.FAILURE
    now = time.time()
    return {
        "run_id": run_id,
        "job_name": run.job_name,
        "started_at": datetime.fromtimestamp(record.start_time or record.create_timestamp.timestamp(), UTC),
        "finished_at": datetime.fromtimestamp(record.end_time if finished and record.end_time else now, UTC),
        "status": "failed" if failed else "ok",
        "partition_range": partition_range(run.tags),
        "rows": rows,
        "error": scrub_secrets("\n".join(errors))[:MAX_ERROR_CHARS],
        "repaired": sorted(repaired),
        "repair_reread": sum(reread.values()),
        "repair_capped": int(capped),
        "failed_checks": failed_checks(instance, run_id, checks),
        "_ver": time.time_ns(),
    }


def record_run(clickhouse: ClickHouseResource, instance: dg.DagsterInstance, run_id: str, *,
               finished: bool) -> dict:
    row = run_row(instance, run_id, finished=finished)
    with clickhouse.get_client() as client:
        client.insert("meta_job_runs", [list(row.values())], column_names=list(row), settings=INSERT_SETTINGS)
    return row


_recorded_runs: set[str] = set()


class RunRecordingClickHouseResource(ClickHouseResource):
    """The warehouse resource, plus: when `record_runs`, the run it served is written to meta_job_runs at
    teardown (in the run's own process; see the module docstring)."""

    record_runs: bool = Field(False, description="Write meta_job_runs at the end of each run (embedded).")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        try:
            self._record(context)
        finally:
            super().teardown_after_execution(context)

    def _record(self, context: dg.InitResourceContext) -> None:
        run = context.run
        if not (self.record_runs and run and context.instance):
            return
        # The IO manager's nested copy of this resource is set up and torn down separately: record once.
        if run.run_id in _recorded_runs:
            return
        _recorded_runs.add(run.run_id)
        try:
            row = record_run(self, context.instance, run.run_id, finished=False)
            context.log.info(f"meta_job_runs: {row['status']} {row['rows']}")
        except Exception as error:  # the record is bookkeeping: never turn a good run into a failed one
            context.log.error(f"meta_job_runs not written: {scrub_secrets(str(error))}")


PENDING_RECORDS = ("CREATE TABLE IF NOT EXISTS pending_run_records "
                   "(run_id TEXT PRIMARY KEY, since REAL NOT NULL)")


def record_pending(clickhouse: ClickHouseResource, instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Record `run_id` and every run whose record failed before; returns the runs still pending.

    Dagster moves a run-status sensor's cursor past a run even when the sensor fails, so the run's id is
    kept in a durable list first (the alert outbox's file) and removed once its row is written. What a
    ClickHouse outage left pending is written when the next run finishes."""
    with sqlite_store(outbox_path(instance), PENDING_RECORDS) as db:
        db.execute("INSERT OR IGNORE INTO pending_run_records VALUES (?, ?)", (run_id, time.time()))
        pending = [row[0] for row in db.execute("SELECT run_id FROM pending_run_records ORDER BY since")]
        for index, pending_id in enumerate(pending):
            try:
                record_run(clickhouse, instance, pending_id, finished=True)
            except Exception as error:  # the warehouse is down: the rest would fail the same way
                log.warning("meta_job_runs not written for %d runs, retried when the next run finishes: %s",
                            len(pending) - index, scrub_secrets(str(error))[:300])
                return pending[index:]
            db.execute("DELETE FROM pending_run_records WHERE run_id = ?", (pending_id,))
    return []


def _record_sensor(status: dg.DagsterRunStatus, name: str) -> dg.SensorDefinition:
    # Every location's runs: also a `qtickets-assets load` recorded in the instance.
    @dg.run_status_sensor(run_status=status, name=name, default_status=dg.DefaultSensorStatus.RUNNING,
                          monitor_all_code_locations=True,
                          description="Server mode: write meta_job_runs for every finished run.")
    def _sensor(context: dg.RunStatusSensorContext, clickhouse: ClickHouseResource):
        record_pending(clickhouse, context.instance, context.dagster_run.run_id)

    return _sensor


# Only in server mode: in embedded mode the daemon must never open chDB (definitions.py decides).
record_sensors = [
    _record_sensor(dg.DagsterRunStatus.SUCCESS, "meta_job_runs_ok"),
    _record_sensor(dg.DagsterRunStatus.FAILURE, "meta_job_runs_failed"),
]


# A fact is as fresh as its newest live row or the last ok run that materialized it (a run over days without
# sales writes no row but did refresh the fact). A tombstone is not freshness: a run that emptied a fact
# must not make it look healthy.
LAST_ROW = "SELECT max(_loaded_at), count() FROM {table:Identifier} WHERE _deleted = 0"
LAST_RUN = ("SELECT max(finished_at), count() FROM meta_job_runs FINAL "
            "WHERE status = 'ok' AND mapContains(rows, {table:String})")


def health(clickhouse: ClickHouseResource) -> dict:
    """When each fact was last refreshed, and the last recorded run; `healthy` is the 2-hour rule."""
    now = datetime.now(UTC)
    report: dict = {"checked_at": now.isoformat(timespec="seconds"),
                    "max_age_s": MAX_FACT_AGE.total_seconds(), "facts": {}}
    with clickhouse.get_client() as client:
        for table in FACTS:
            times = [client.query(sql, parameters={"table": table}).result_rows[0]
                     for sql in (LAST_ROW, LAST_RUN)]
            last = max((latest for latest, count in times if count), default=None)
            age = (now - last).total_seconds() if last else None
            report["facts"][table] = {
                "refreshed_at": last.isoformat() if last else None,
                "age_s": round(age) if age is not None else None,
                "fresh": age is not None and age < MAX_FACT_AGE.total_seconds(),
            }
        last_run = client.query(
            "SELECT job_name, run_id, status, finished_at, error FROM meta_job_runs FINAL "
            "ORDER BY finished_at DESC LIMIT 1"
        ).result_rows
    if last_run:
        job, run_id, status, finished_at, error = last_run[0]
        report["last_run"] = {"job": job, "run_id": run_id, "status": status,
                              "finished_at": finished_at.isoformat(), "error": error[:500]}
    report["healthy"] = all(fact["fresh"] for fact in report["facts"].values())
    return report
