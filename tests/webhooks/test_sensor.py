"""The pending_webhooks sensor, evaluated the way the daemon does (a sensor context on a real instance)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from qtickets_assets.automation import MOSCOW
from qtickets_assets.definitions import defs
from qtickets_assets.runs import RANGE_END, RANGE_START
from qtickets_assets.settings import get_settings
from qtickets_assets.webhooks.sensor import pending_webhooks, webhook_job
from qtickets_assets.webhooks.store import HookStore


@pytest.fixture
def store(tmp_path, monkeypatch) -> HookStore:
    monkeypatch.setenv("QTICKETS_WEBHOOK_STORE", str(tmp_path / "hooks.sqlite3"))
    get_settings.cache_clear()
    yield HookStore(tmp_path / "hooks.sqlite3")
    get_settings.cache_clear()


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def evaluate(instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return pending_webhooks.evaluate_tick(context)


def test_the_sensor_is_on_by_default_and_its_job_covers_orders_to_views():
    assert pending_webhooks.default_status == dg.DefaultSensorStatus.RUNNING
    assert pending_webhooks.minimum_interval_seconds <= 30
    job = defs.resolve_job_def(webhook_job.name)
    keys = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert keys >= {"stg_qtickets_api_orders_raw", "fact_qtickets_sales_daily", "v_sales_14d",
                    "v_sales_latest"}
    assert not keys & {"stg_qtickets_api_inventory_raw", "stg_qtickets_api_events_raw"}  # no seat maps


def test_no_pending_hooks_no_run(store, instance):
    result = evaluate(instance)
    assert not result.run_requests and "no pending hooks" in result.skip_message


def test_pending_hooks_request_one_run_of_today(store, instance):
    store.add(1_004_217, "refunded")
    store.add(1_004_300, "payed")
    store.add(1_004_217, "refunded")  # a redelivery
    result = evaluate(instance)
    [request] = result.run_requests
    today = datetime.now(UTC).astimezone(MOSCOW).date().isoformat()
    assert request.tags[RANGE_START] == request.tags[RANGE_END] == today
    assert request.tags["qtickets/trigger"] == "webhook" and request.tags["qtickets/pending_orders"] == "2"
    assert result.cursor == str(store.pending().up_to)
    assert store.depth()[0] == 3  # the sensor only reads: the run clears what it applied


# NOT_STARTED: waiting for the run slot (the queue); STARTED: applying hooks now.
@pytest.mark.parametrize("status", [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTED])
def test_no_second_run_while_one_is_queued_or_going(store, instance, status):
    run = instance.add_run(dg.DagsterRun(job_name=webhook_job.name, status=status))
    store.add(1_004_217, "refunded")
    result = evaluate(instance)
    assert not result.run_requests and run.run_id in result.skip_message


def test_hooks_a_failed_run_saw_wait_then_retry_and_new_hooks_go_at_once(store, instance, monkeypatch):
    store.add(1_004_217, "refunded")
    cursor = evaluate(instance).cursor
    run = instance.add_run(dg.DagsterRun(job_name=webhook_job.name, status=dg.DagsterRunStatus.STARTED))
    instance.report_run_failed(run)
    result = evaluate(instance, cursor)
    assert not result.run_requests and "FAILURE" in result.skip_message  # no retry loop every few seconds

    import qtickets_assets.webhooks.sensor as sensor
    monkeypatch.setattr(sensor, "RETRY_AFTER_S", 0)
    assert len(evaluate(instance, cursor).run_requests) == 1  # the pause is over: retried
    monkeypatch.undo()

    store.add(1_004_500, "payed")  # a new hook: its run goes now
    assert len(evaluate(instance, cursor).run_requests) == 1
