"""Schedules (Moscow midnight, queued runs), freshness policies, freshness and run-failure alert sensors."""

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import pytest
import respx

from qtickets_assets import automation
from qtickets_assets.definitions import build_definitions
from qtickets_assets.settings import Settings
from tests.builders import sensor_daemon

MSK = ZoneInfo("Europe/Moscow")
HOOK = "https://alerts.example.com/hook"
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    return build_definitions(Settings(qtickets_data_dir=tmp_path_factory.mktemp("data")))


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(schedule, instance, at: datetime) -> dg.RunRequest | dg.SkipReason:
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=at)
    result = schedule(context)
    return result


@pytest.mark.parametrize(
    ("at", "days"),
    [
        (datetime(2026, 11, 20, 23, 45, tzinfo=MSK), ("2026-11-19", "2026-11-20")),
        (datetime(2026, 11, 21, 0, 0, tzinfo=MSK), ("2026-11-20", "2026-11-21")),
        # 21:00 UTC is already the next Moscow day.
        (datetime(2026, 11, 20, 21, 0, tzinfo=ZoneInfo("UTC")), ("2026-11-20", "2026-11-21")),
        (datetime(2026, 11, 21, 0, 15, tzinfo=MSK), ("2026-11-20", "2026-11-21")),
    ],
)
def test_every_15_minutes_asks_for_yesterday_and_today_in_one_run(instance, at, days):
    request = tick(automation.every_15_minutes, instance, at)
    assert isinstance(request, dg.RunRequest)
    assert (request.tags[RANGE[0]], request.tags[RANGE[1]]) == days
    assert request.partition_key is None  # a range, not one key


def test_schedules_are_on_by_default_in_moscow(defs):
    schedule = defs.resolve_schedule_def("every_15_minutes")
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.execution_timezone == "Europe/Moscow"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_schedule_def("daily_reconcile").default_status == dg.DefaultScheduleStatus.RUNNING


def test_refresh_job_covers_the_whole_graph_but_the_manual_import(defs):
    job = defs.resolve_job_def("qtickets_refresh")
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    every = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert selected == every - {"manual_sales_import"} and "manual_sales_import" in every
    assert {"stg_qtickets_api_orders_raw", "stg_qtickets_api_events_raw", "stg_qtickets_api_inventory_raw",
            "fact_qtickets_sales_daily", "fact_qtickets_inventory_latest", "v_sales_latest"} <= selected


def test_daily_reconcile_covers_the_configured_days(instance):
    request = tick(automation.daily_reconcile, instance, datetime(2026, 11, 21, 4, 40, tzinfo=MSK))
    assert (request.tags[RANGE[0]], request.tags[RANGE[1]]) == ("2026-10-23", "2026-11-21")  # 30 days


def test_range_is_clipped_to_the_first_partition():
    keys = automation.day_range(datetime(2026, 9, 1, tzinfo=MSK), datetime(2026, 10, 2, 12, tzinfo=MSK))
    assert (keys.start, keys.end) == ("2026-10-01", "2026-10-02")


def test_a_tick_while_a_refresh_is_waiting_skips_and_says_why(instance):
    # A run waiting for the one run slot (e.g. behind a backfill): later ticks do not stack up behind it.
    waiting = instance.add_run(
        dg.DagsterRun(job_name="qtickets_refresh", status=dg.DagsterRunStatus.NOT_STARTED)
    )
    result = tick(automation.every_15_minutes, instance, datetime(2026, 11, 21, 10, 0, tzinfo=MSK))
    assert isinstance(result, dg.SkipReason)
    assert waiting.run_id in result.skip_message and "queued" in result.skip_message
    assert isinstance(tick(automation.daily_reconcile, instance, datetime(2026, 11, 21, 4, 40, tzinfo=MSK)),
                      dg.RunRequest)  # another job is not held back
    instance.report_run_canceled(waiting)
    assert isinstance(tick(automation.every_15_minutes, instance, datetime(2026, 11, 21, 10, 15, tzinfo=MSK)),
                      dg.RunRequest)


def test_a_tick_while_a_refresh_is_running_skips_and_says_why(instance):
    running = instance.add_run(dg.DagsterRun(job_name="qtickets_refresh", status=dg.DagsterRunStatus.STARTED))
    result = tick(automation.every_15_minutes, instance, datetime(2026, 11, 21, 10, 0, tzinfo=MSK))
    assert isinstance(result, dg.SkipReason)
    assert running.run_id in result.skip_message and "running" in result.skip_message
    instance.report_run_failed(running)
    assert isinstance(tick(automation.every_15_minutes, instance, datetime(2026, 11, 21, 10, 15, tzinfo=MSK)),
                      dg.RunRequest)


def test_every_table_writer_is_in_its_tables_pool(defs):
    # deploy/dagster.yaml limits every pool to 1: one writer per table across runs (server mode).
    graph = defs.resolve_asset_graph()
    pools = {key.to_user_string(): graph.get(key).pools for key in graph.get_all_asset_keys()
             if graph.get(key).is_materializable}
    writers = {name for name in pools if name.startswith(("stg_", "fact_", "dim_"))}
    assert {name: pools[name] for name in writers} == {name: {name} for name in writers}
    assert pools["manual_sales_import"] == {"stg_qtickets_api_orders_raw"}
    assert len(writers) == 6


def test_freshness_policy_is_on_the_facts_and_inventory_only(defs):
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    with_policy = {key.to_user_string() for key in keys if graph.get(key).freshness_policy}
    assert with_policy == {"fact_qtickets_sales_daily", "fact_qtickets_inventory_latest",
                           "stg_qtickets_api_inventory_raw"}
    policy = graph.get(dg.AssetKey("fact_qtickets_sales_daily")).freshness_policy
    assert policy.fail_window.to_timedelta() == timedelta(hours=2)
    assert policy.warn_window.to_timedelta() < policy.fail_window.to_timedelta()


@pytest.mark.parametrize(
    ("previous", "current", "alerts"),
    [
        ({}, {"a": "PASS"}, {}),  # first sight of a healthy asset
        ({}, {"a": "UNKNOWN"}, {}),  # never materialized
        ({}, {"a": "FAIL"}, {"a": ("UNKNOWN", "FAIL")}),
        ({"a": "PASS"}, {"a": "WARN"}, {"a": ("PASS", "WARN")}),
        ({"a": "WARN"}, {"a": "WARN"}, {}),  # unchanged: no repeat
        ({"a": "WARN"}, {"a": "FAIL"}, {"a": ("WARN", "FAIL")}),
        ({"a": "FAIL"}, {"a": "FAIL"}, {}),
        ({"a": "FAIL"}, {"a": "PASS"}, {"a": ("FAIL", "PASS")}),  # recovered
        ({"a": "WARN", "b": "PASS"}, {"a": "PASS", "b": "PASS"}, {"a": ("WARN", "PASS")}),
        ({"a": "UNKNOWN"}, {"a": "PASS"}, {}),
    ],
)
def test_freshness_changes_alert_on_warn_fail_and_recovery_only(previous, current, alerts):
    assert automation.freshness_changes(previous, current) == alerts


def report_state(instance, asset: str, before: str, state: str) -> None:
    # What the freshness daemon writes on a state change (dagster/_daemon/freshness.py).
    from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

    instance._report_runless_asset_event(FreshnessStateChange(  # noqa: SLF001
        key=dg.AssetKey(asset), previous_state=FreshnessState(before), new_state=FreshnessState(state),
        state_change_timestamp=datetime.now().timestamp()))


# The code location the sensor daemon evaluates in these tests: the product's definitions with the webhook
# and Slack backends (their URLs come from the environment as EnvVars, as in production).
ALERT_DEFS = build_definitions(Settings(alert_webhook_url=HOOK, alert_slack_webhook_url=SLACK,
                                        dagster_ui_url="http://ui:3000"))


@pytest.fixture
def daemon(instance, monkeypatch):
    monkeypatch.setenv("ALERT_WEBHOOK_URL", HOOK)
    monkeypatch.setenv("ALERT_SLACK_WEBHOOK_URL", SLACK)
    with sensor_daemon(instance, __name__, "ALERT_DEFS") as tick:
        yield tick


def sent(route) -> list[dict]:
    return [json.loads(call.request.content) for call in route.calls]


@pytest.mark.slow
@respx.mock
def test_freshness_sensor_alerts_once_per_change_and_on_recovery(instance, daemon):
    hook = respx.post(HOOK).respond(200)
    respx.post(SLACK).respond(200)
    report_state(instance, "fact_qtickets_sales_daily", "UNKNOWN", "PASS")
    daemon()
    assert not hook.called  # healthy from the start: nothing to say

    report_state(instance, "fact_qtickets_sales_daily", "PASS", "FAIL")
    report_state(instance, "stg_qtickets_api_inventory_raw", "PASS", "WARN")
    daemon()
    alerts = sorted(sent(hook), key=lambda alert: alert["fields"]["asset"])  # sent at once: any order
    assert [(a["fields"]["asset"], a["severity"]) for a in alerts] == [
        ("fact_qtickets_sales_daily", "critical"), ("stg_qtickets_api_inventory_raw", "warning")]
    assert alerts[0]["url"] == "http://ui:3000/assets/fact_qtickets_sales_daily"
    assert "never materialized" in alerts[0]["text"] and "fail after 2:00:00" in alerts[0]["text"]

    daemon()
    assert hook.call_count == 2  # unchanged states: no repeated alert

    # FAIL, then UNKNOWN for a while (e.g. a policy re-evaluated), then PASS: still a recovery.
    report_state(instance, "fact_qtickets_sales_daily", "FAIL", "UNKNOWN")
    daemon()
    assert hook.call_count == 2
    report_state(instance, "fact_qtickets_sales_daily", "UNKNOWN", "PASS")
    daemon()
    assert hook.call_count == 3
    recovered = sent(hook)[-1]
    assert (recovered["severity"], recovered["title"]) == ("ok", "fact_qtickets_sales_daily is fresh again")
    assert recovered["fields"]["previous_state"] == "FAIL"


@pytest.mark.slow
@respx.mock
def test_each_backend_is_retried_until_it_took_the_alert_and_never_sent_twice(instance, daemon):
    hook = respx.post(HOOK).respond(200)
    slack = respx.post(SLACK)
    slack.side_effect = [httpx.Response(503), httpx.ConnectError("down"), httpx.Response(200)]
    report_state(instance, "fact_qtickets_inventory_latest", "PASS", "FAIL")
    daemon()
    assert (hook.call_count, slack.call_count) == (1, 1)  # the webhook has it; Slack answered 503
    daemon()
    assert (hook.call_count, slack.call_count) == (1, 2)  # Slack alone is retried
    daemon()
    assert (hook.call_count, slack.call_count) == (1, 3)
    assert "fact_qtickets_inventory_latest is stale (FAIL)" in sent(slack)[-1]["text"]
    daemon()
    assert (hook.call_count, slack.call_count) == (1, 3)  # delivered everywhere: nothing more


@pytest.mark.slow
@respx.mock
def test_run_failure_alert_survives_a_failed_delivery_and_holds_no_secret(instance, daemon, monkeypatch):
    monkeypatch.setenv("QTICKETS_API_TOKEN", "tok-very-secret-42")
    hook = respx.post(HOOK)
    hook.side_effect = [httpx.Response(502), httpx.Response(200)]
    slack = respx.post(SLACK).respond(200)
    daemon()  # the run-status sensor starts watching from here

    @dg.asset
    def broken():
        raise RuntimeError("GET orders: HTTP 500 with token tok-very-secret-42")

    result = dg.materialize([broken], instance=instance, raise_on_error=False,
                            tags={"dagster/partition": "2026-11-21"})
    assert not result.success
    # Dagster moves the run sensor's cursor past this run whatever happens to the alert; the webhook's
    # 502 leaves it in the outbox, and the freshness sensor (this tick or the next) sends it again.
    daemon()
    daemon()
    assert (hook.call_count, slack.call_count) == (2, 1)
    assert hook.calls[0].response.status_code == 502
    daemon()
    assert (hook.call_count, slack.call_count) == (2, 1)

    alert = sent(hook)[-1]
    assert alert["kind"] == "run_failure" and alert["severity"] == "critical"
    assert alert["url"] == f"http://ui:3000/runs/{result.run_id}"
    assert "broken: RuntimeError: GET orders: HTTP 500 with token ***" in alert["text"]
    assert "tok-very-secret-42" not in json.dumps(alert)
    assert alert["fields"]["partitions"] == "2026-11-21"


@pytest.mark.slow
@respx.mock
def test_a_successful_run_whose_check_failed_alerts_with_what_the_check_found(instance, daemon):
    hook = respx.post(HOOK).respond(200)
    respx.post(SLACK).respond(200)
    daemon()

    @dg.asset
    def fact():
        return 1

    @dg.asset_check(asset=fact)
    def within_capacity():
        return dg.AssetCheckResult(passed=False, description="1 shows over capacity, e.g. (300044, 300); "
                                   "still so after the repair: re-read 120 paid orders of shows [300044]")

    result = dg.materialize([fact, within_capacity], instance=instance, raise_on_error=False)
    assert result.success  # a check blocks nothing
    daemon()
    [alert] = sent(hook)
    assert alert["kind"] == "check_failure"
    assert alert["title"] == "run of __ephemeral_asset_job__: 1 asset check failed"
    assert alert["text"] == ("fact:within_capacity: 1 shows over capacity, e.g. (300044, 300); "
                             "still so after the repair: re-read 120 paid orders of shows [300044]")
    daemon()
    assert hook.call_count == 1  # once per run
