"""Pending hooks -> one run of `qtickets_webhooks` (orders staging, the sales fact, the views).

The sensor reads only the hook store and the Dagster instance (never the warehouse). The run it requests
covers today's Moscow partition; the orders staging asset drains the store (re-reads the pending ids by
id and rebuilds the days they touch), and the ids are cleared once that run has succeeded. One run at a
time: while a run of the job is queued or going, later hooks wait for the next evaluation, so a burst of
hooks costs one run per ~run length, not one run per hook.
"""

from __future__ import annotations

import time

import dagster as dg

from ..automation import day_range, range_request
from ..loader import source_now
from ..settings import get_settings
from .store import HookStore

IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
# Hooks a finished run already saw but that are still pending (the run failed): retry after this long
# instead of failing every few seconds against a broken API.
RETRY_AFTER_S = 120

webhook_job = dg.define_asset_job(
    "qtickets_webhooks",
    selection=dg.AssetSelection.assets("stg_qtickets_api_orders_raw").downstream(),
    description="Orders the QTickets webhooks reported, re-read by id, with today's orders; the sales "
                "days they touch and the views.",
)


@dg.sensor(
    name="pending_webhooks", job=webhook_job, minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Order ids received by `qtickets-assets serve` -> one run that applies them (within ~30 s).",
)
def pending_webhooks(context: dg.SensorEvaluationContext):
    settings = get_settings()
    pending = HookStore(settings.webhook_store_path).pending()
    if not pending.order_ids:
        return dg.SkipReason("no pending hooks")
    going = context.instance.get_runs(dg.RunsFilter(job_name=webhook_job.name, statuses=IN_FLIGHT), limit=1)
    if going:
        return dg.SkipReason(f"run {going[0].run_id} is applying hooks; {len(pending.order_ids)} order(s) "
                             "wait for the next one")
    if pending.up_to <= int(context.cursor or 0):  # a run was requested after the newest of these hooks
        last = context.instance.get_run_records(
            dg.RunsFilter(job_name=webhook_job.name, statuses=FINISHED), limit=1)
        if last and last[0].end_time and time.time() - last[0].end_time < RETRY_AFTER_S:
            return dg.SkipReason(f"the last run left {len(pending.order_ids)} order(s) pending "
                                 f"({last[0].dagster_run.status.value}); retrying {RETRY_AFTER_S} s after it")
    now = source_now(settings)
    context.update_cursor(str(pending.up_to))
    return range_request(day_range(now, now), **{"qtickets/trigger": "webhook",
                                                 "qtickets/pending_orders": str(len(pending.order_ids))})
