"""Draining the pending hooks: a run re-reads the pending order ids (assets/order_reads.py) and records
which ones in its orders staging materialization; they are cleared only once that run has succeeded.

Who clears (the store is SQLite, so any process may, unlike the embedded warehouse):
- a run whose steps all execute in one process (embedded mode, `load`): that process, when the run's
  resources are torn down and no step has failed (`QTicketsResource.clear_hooks_at_run_end`);
- server mode (steps in subprocesses, so no process sees the run's end): the daemon's run-status sensor
  `webhook_hooks_applied`, on every successful run.
A hook that arrives while a run is going stays pending: `clear` stops at the `up_to` the run saw.
"""

from __future__ import annotations

import dagster as dg

from .store import HookStore, Pending

HOOK_IDS, HOOKS_UP_TO = "qtickets/webhook_order_ids", "qtickets/webhooks_up_to"
ORDERS_ASSET = dg.AssetKey("stg_qtickets_api_orders_raw")


def applied_hooks_metadata(pending: Pending) -> dict[str, object]:
    """What the orders staging records about the hooks it re-reads (nothing when none was pending)."""
    if not pending.order_ids:
        return {}
    return {HOOK_IDS: dg.MetadataValue.json(pending.order_ids), HOOKS_UP_TO: pending.up_to}


def run_failed(instance: dg.DagsterInstance, run_id: str) -> bool:
    failures = instance.get_records_for_run(
        run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}, limit=1
    ).records
    return bool(failures)


def applied_hooks(instance: dg.DagsterInstance, run_id: str) -> tuple[list[int], int]:
    """(order ids, up_to) the run's orders staging re-read; ([], 0) when it read none."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    ids: set[int] = set()
    up_to = 0
    for record in records:
        event = record.event_log_entry.dagster_event
        if event.asset_key != ORDERS_ASSET:
            continue
        metadata = event.step_materialization_data.materialization.metadata
        if HOOK_IDS in metadata:
            ids.update(metadata[HOOK_IDS].value)
            up_to = max(up_to, int(metadata[HOOKS_UP_TO].value))
    return sorted(ids), up_to


def clear_applied(instance: dg.DagsterInstance, run_id: str, store: HookStore) -> int:
    """Forget the hooks a successful run applied; returns how many hook rows went."""
    ids, up_to = applied_hooks(instance, run_id)
    return store.clear(ids, up_to) if ids else 0


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="webhook_hooks_applied",
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Server mode: clear the webhook ids a successful run re-read.")
def webhook_hooks_applied(context: dg.RunStatusSensorContext):
    from ..settings import get_settings  # the store's path: the same setting the receiver writes to

    cleared = clear_applied(context.instance, context.dagster_run.run_id,
                            HookStore(get_settings().webhook_store_path))
    if cleared:
        context.log.info(f"cleared {cleared} applied hooks of run {context.dagster_run.run_id}")
