"""Schedules, freshness policy, alert sensors.

- `qtickets_refresh` every 15 minutes (Moscow): ONE run over the partition range yesterday...today of the
  daily assets (they take a range in one run: BackfillPolicy.single_run) plus every unpartitioned asset
  (events, inventory, dims, views) and everything downstream. The job selects the whole graph, so new
  assets join it without an edit here.
- `qtickets_reconcile` once a day: the same graph over the last QTICKETS_RECONCILE_DAYS days. A refund
  counts on the order's original sales date and does not bump `order.updated_at`, so old partitions
  change without any signal; the daily pass brings them back in line.
- Freshness: the policy is applied in definitions.py (once, over the asset specs) and evaluated by the
  daemon; `freshness_alerts` turns state changes into notifications (open-source Dagster has no alerts).
- `run_failure_alerts`: every failed run, through the same notifier (with its failed checks, if any).
- `check_failure_alerts`: every successful run whose asset checks found something (no check blocks a
  run: assets/checks.py); the alert carries each check's description (the keys, what a repair re-read).
- Both write their alerts to the outbox (notify.py) before sending; the freshness sensor, evaluated every
  minute, also sends whatever is still pending, so an alert is retried until each backend took it.
Sensors and schedules only read the Dagster instance and call webhooks: they never open the warehouse.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from .notify import Alert, Notifier, Outbox, outbox_path
from .partitions import TIMEZONE, daily_partitions
from .runs import RANGE_END, RANGE_START, failed_checks, partition_range, root_error, scrub_secrets
from .settings import get_settings

FRESHNESS_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=2), warn_window=timedelta(hours=1)
)
MOSCOW = ZoneInfo(TIMEZONE)
FRESH_ASSETS = frozenset({"fact_qtickets_sales_daily", "fact_qtickets_inventory_latest",
                          "stg_qtickets_api_inventory_raw"})


def with_freshness_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    """For Definitions.map_asset_specs: the facts and the inventory must be at most 2 hours old."""
    if spec.key.to_user_string() in FRESH_ASSETS:
        return dg.apply_freshness_policy(spec, FRESHNESS_POLICY)
    return spec


# Everything but the manual fallback (an operator launches it with a file in its config).
SCHEDULED = dg.AssetSelection.all() - dg.AssetSelection.groups("manual_fallback")
refresh_job = dg.define_asset_job(
    "qtickets_refresh", selection=SCHEDULED,
    description="Today's and yesterday's orders and sales, events, inventory and everything downstream.",
)
reconcile_job = dg.define_asset_job(
    "qtickets_reconcile", selection=SCHEDULED,
    description="The whole graph over the last QTICKETS_RECONCILE_DAYS days (late refunds of old sales).",
)


def day_range(first: datetime, last: datetime) -> dg.PartitionKeyRange:
    """Daily partition keys (Moscow days) from `first` to `last`, clipped to the first partition."""
    start = max(first.astimezone(MOSCOW).date(), daily_partitions.start.date())
    end = last.astimezone(MOSCOW).date()
    return dg.PartitionKeyRange(start.isoformat(), max(start, end).isoformat())


def range_request(keys: dg.PartitionKeyRange, **tags: str) -> dg.RunRequest:
    # A job that mixes daily and unpartitioned assets runs a key range in one run through these tags.
    return dg.RunRequest(tags={RANGE_START: keys.start, RANGE_END: keys.end, **tags})


def _pending(context: dg.ScheduleEvaluationContext, job_name: str) -> dg.SkipReason | None:
    """Do not stack ticks behind a long run (e.g. a backfill): while a run of the job waits or runs, the
    tick skips (the run in progress already covers the days; the next tick after it takes over)."""
    busy = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    runs = context.instance.get_runs(dg.RunsFilter(job_name=job_name, statuses=busy), limit=1)
    if runs:
        state = "queued" if runs[0].status in busy[:2] else "running"
        return dg.SkipReason(f"run {runs[0].run_id} of {job_name} is still {state}; this tick waits for it")
    return None


@dg.schedule(job=refresh_job, cron_schedule="*/15 * * * *", execution_timezone=TIMEZONE,
             default_status=dg.DefaultScheduleStatus.RUNNING)
def every_15_minutes(context: dg.ScheduleEvaluationContext):
    """Yesterday's and today's Moscow partitions (a late payment or a refund of yesterday's order)."""
    now = context.scheduled_execution_time
    return _pending(context, refresh_job.name) or range_request(
        day_range(now - timedelta(days=1), now), **{"qtickets/trigger": "schedule"}
    )


@dg.schedule(job=reconcile_job, cron_schedule="40 4 * * *", execution_timezone=TIMEZONE,
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_reconcile(context: dg.ScheduleEvaluationContext):
    """The last QTICKETS_RECONCILE_DAYS Moscow days, once a day at 04:40 (a quiet hour for sales)."""
    now = context.scheduled_execution_time
    days = get_settings().qtickets_reconcile_days
    return _pending(context, reconcile_job.name) or range_request(
        day_range(now - timedelta(days=days - 1), now), **{"qtickets/trigger": "reconcile"}
    )


# --- alerts --------------------------------------------------------------------------------------------

PROBLEMS = {"WARN": "warning", "FAIL": "critical"}


def freshness_changes(previous: Mapping[str, str], current: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """asset -> (before, now) for the state changes worth an alert: into WARN or FAIL, and back to PASS
    from WARN or FAIL ("recovered"). An unchanged state, a first PASS and UNKNOWN alert nobody; UNKNOWN in
    between is no news (`previous` keeps the last known state), so FAIL, UNKNOWN, PASS is a recovery."""
    changes = {}
    for asset, state in current.items():
        before = previous.get(asset, "UNKNOWN")
        if state == before:
            continue
        if state in PROBLEMS or (state == "PASS" and before in PROBLEMS):
            changes[asset] = (before, state)
    return changes


def known_states(previous: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """The next cursor: each asset's last known state (UNKNOWN never overwrites one)."""
    return {**previous, **{asset: state for asset, state in current.items() if state != "UNKNOWN"}}


def _age(instance: dg.DagsterInstance, key: dg.AssetKey, now: float) -> str:
    event = instance.get_latest_materialization_event(key)
    if event is None:
        return "never materialized"
    minutes = int((now - event.timestamp) // 60)
    return f"last materialized {minutes // 60}h {minutes % 60:02d}m ago"


def freshness_alert(asset: str, before: str, state: str, age: str, ui_url: str) -> Alert:
    window = f"warn after {FRESHNESS_POLICY.warn_window.to_timedelta()}, " \
             f"fail after {FRESHNESS_POLICY.fail_window.to_timedelta()}"
    if state == "PASS":
        title, severity = f"{asset} is fresh again", "ok"
    else:
        title, severity = f"{asset} is stale ({state})", PROBLEMS[state]
    return Alert(kind="freshness", severity=severity, title=title, text=f"{age}; {window}",
                 fields={"asset": asset, "state": state, "previous_state": before},
                 url=f"{ui_url.rstrip('/')}/assets/{asset}" if ui_url else "")


@dg.sensor(
    name="freshness_alerts", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Freshness state changes (warn, fail, recovered) of the facts and inventory -> alerts; "
                "also sends every alert still pending in the outbox.",
)
def freshness_alerts(context: dg.SensorEvaluationContext, notifier: Notifier):
    keys = [node.key for node in context.repository_def.asset_graph.asset_nodes if node.freshness_policy]
    records = context.instance.get_freshness_state_records(keys)
    current = {key.to_user_string(): record.freshness_state.value for key, record in records.items()}
    changed_at = {key.to_user_string(): record.updated_at.timestamp() for key, record in records.items()}
    seen = json.loads(context.cursor) if context.cursor else {}
    outbox = Outbox(outbox_path(context.instance))
    now = datetime.now(UTC).timestamp()
    for asset, (before, state) in sorted(freshness_changes(seen, current).items()):
        age = _age(context.instance, dg.AssetKey.from_user_string(asset), now)
        alert = freshness_alert(asset, before, state, age, notifier.ui_url)
        # The id of this state change: an evaluation that is repeated (its cursor was lost) adds nothing.
        outbox.put(f"freshness:{asset}:{state}:{changed_at[asset]}", alert, notifier.backends())
    context.update_cursor(json.dumps(known_states(seen, current), sort_keys=True))
    return dg.SkipReason(outbox.deliver(notifier).summary())


# Every location's runs: also a failed `qtickets-assets load` recorded in the instance (DAGSTER_HOME).
@dg.run_failure_sensor(name="run_failure_alerts", default_status=dg.DefaultSensorStatus.RUNNING,
                       monitor_all_code_locations=True,
                       description="Every failed run -> an alert with the failed steps' errors.")
def run_failure_alerts(context: dg.RunFailureSensorContext, notifier: Notifier):
    run = context.dagster_run
    errors = [f"{event.step_key}: {root_error(event.step_failure_data.error)[:300]}"
              for event in context.get_step_failure_events() if event.step_failure_data.error]
    errors += [f"check {failed[:500]}" for failed in failed_checks(context.instance, run.run_id)]
    text = scrub_secrets("\n".join(errors) or context.failure_event.message or "run failed")
    alert = Alert(
        kind="run_failure", severity="critical", title=f"run of {run.job_name} failed",
        text=text[:1500], fields={"run_id": run.run_id, "partitions": partition_range(run.tags) or "-"},
        url=f"{notifier.ui_url.rstrip('/')}/runs/{run.run_id}" if notifier.ui_url else "",
    )
    # Dagster moves this sensor's cursor past the run even if we raise: the outbox keeps the alert until
    # each backend took it (this evaluation, or the freshness sensor's next ones).
    outbox = Outbox(outbox_path(context.instance))
    outbox.put(f"run_failure:{run.run_id}", alert, notifier.backends())
    context.log.info(outbox.deliver(notifier).summary())


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="check_failure_alerts",
                      default_status=dg.DefaultSensorStatus.RUNNING, monitor_all_code_locations=True,
                      description="A successful run with failed checks -> an alert with their findings.")
def check_failure_alerts(context: dg.RunStatusSensorContext, notifier: Notifier):
    run = context.dagster_run
    failed = failed_checks(context.instance, run.run_id)
    if not failed:
        return
    alert = Alert(
        kind="check_failure", severity="warning",
        title=f"run of {run.job_name}: {len(failed)} asset check{'s' if len(failed) > 1 else ''} failed",
        text="\n".join(f[:700] for f in failed)[:1500],
        fields={"run_id": run.run_id, "partitions": partition_range(run.tags) or "-"},
        url=f"{notifier.ui_url.rstrip('/')}/runs/{run.run_id}" if notifier.ui_url else "",
    )
    outbox = Outbox(outbox_path(context.instance))
    outbox.put(f"check_failure:{run.run_id}", alert, notifier.backends())
    context.log.info(outbox.deliver(notifier).summary())


schedules: list[dg.ScheduleDefinition] = [every_15_minutes, daily_reconcile]
sensors: list[dg.SensorDefinition] = [freshness_alerts, run_failure_alerts, check_failure_alerts]
jobs = [refresh_job, reconcile_job]
