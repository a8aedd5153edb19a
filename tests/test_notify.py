"""Notifier backends (generic webhook, Telegram, Slack) against respx: payloads, failures, no secret leaks."""

import json
import logging
import time

import httpx
import pytest
import respx

from qtickets_assets.notify import Alert, Notifier, NotifyError, Outbox, scrub

WEBHOOK = "https://alerts.example.com/hook/s3cr3t-path"
BOT_TOKEN = "123456789:AAH-very-secret_token"
TELEGRAM = f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage"
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
ALERT = Alert(kind="freshness", severity="critical", title="fact_qtickets_sales_daily is stale (FAIL)",
              text="last materialized 2h 05m ago", fields={"asset": "fact_qtickets_sales_daily"},
              url="http://127.0.0.1:3000/assets/fact_qtickets_sales_daily")


@respx.mock
def test_generic_webhook_gets_the_alert_as_json():
    route = respx.post(WEBHOOK).respond(204)
    Notifier(webhook_url=WEBHOOK).deliver("webhook", ALERT)
    body = json.loads(route.calls.last.request.content)
    assert body["source"] == "qtickets-assets"
    assert (body["kind"], body["severity"], body["title"]) == ("freshness", "critical", ALERT.title)
    assert body["fields"] == {"asset": "fact_qtickets_sales_daily"} and body["url"] == ALERT.url


@respx.mock
def test_telegram_bot_sends_plain_text_to_the_chat():
    route = respx.post(TELEGRAM).respond(200, json={"ok": True})
    Notifier(telegram_bot_token=BOT_TOKEN, telegram_chat_id="-100200").deliver("telegram", ALERT)
    body = json.loads(route.calls.last.request.content)
    assert body["chat_id"] == "-100200"
    first, second = body["text"].splitlines()[:2]
    assert (first, second) == ("🔴 fact_qtickets_sales_daily is stale (FAIL)", "last materialized 2h 05m ago")
    assert ALERT.url in body["text"]


@respx.mock
def test_slack_webhook_gets_text():
    route = respx.post(SLACK).respond(200, text="ok")
    Notifier(slack_webhook_url=SLACK).deliver("slack", ALERT)
    assert json.loads(route.calls.last.request.content)["text"] == ALERT.plain()


@respx.mock
def test_one_failing_backend_does_not_stop_the_others_and_leaks_no_secret(tmp_path, caplog):
    respx.post(WEBHOOK).respond(200)
    respx.post(TELEGRAM).respond(401, json={"ok": False})
    slack = respx.post(SLACK).mock(side_effect=httpx.ConnectError(f"cannot reach {SLACK}"))
    notifier = Notifier(webhook_url=WEBHOOK, telegram_bot_token=BOT_TOKEN, telegram_chat_id="1",
                        slack_webhook_url=SLACK)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put("a", ALERT, notifier.backends())
    with caplog.at_level(logging.WARNING):
        result = outbox.deliver(notifier)
    assert slack.called and result.delivered == [f"webhook: {ALERT.title}"]
    assert sorted(outbox.pending()) == [("a", "slack"), ("a", "telegram")]
    assert "telegram: HTTP 401" in caplog.text and "slack: ConnectError" in caplog.text
    assert BOT_TOKEN not in caplog.text and SLACK not in caplog.text and WEBHOOK not in caplog.text
    assert "telegram: HTTP 401" in result.summary() and SLACK not in result.summary()


@respx.mock
def test_a_refused_alert_names_the_backend_without_the_url():
    respx.post(TELEGRAM).respond(502)
    with pytest.raises(NotifyError) as error:
        Notifier(telegram_bot_token=BOT_TOKEN, telegram_chat_id="1").deliver("telegram", ALERT)
    assert str(error.value) == "telegram: HTTP 502"


@respx.mock
def test_unconfigured_notifier_sends_nothing_and_logs(tmp_path, caplog):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    with caplog.at_level(logging.WARNING):
        outbox.put("a", ALERT, Notifier().backends())
        assert outbox.deliver(Notifier()).delivered == []
    assert "no alert backend configured" in caplog.text and ALERT.title in caplog.text
    assert not respx.calls and outbox.pending() == []


def test_telegram_needs_a_chat_id_to_count_as_configured():
    assert Notifier(telegram_bot_token=BOT_TOKEN).backends() == []


def test_scrub_masks_known_values_and_credential_shapes():
    text = (f"GET https://qtickets.ru/api: Bearer abc.def-123 failed; dsn https://user:pa55@ch:8443/db; "
            f"{TELEGRAM}; {SLACK}; token=verysecretvalue")
    clean = scrub(text, ["verysecretvalue"])
    for secret in ("abc.def-123", "pa55", BOT_TOKEN, "XXXXSECRET", "verysecretvalue"):
        assert secret not in clean
    assert "https://user:***@ch:8443/db" in clean and "Bearer ***" in clean


# --- the outbox (through Dagster's sensor daemon: tests/test_automation.py) ------------------------------

def slow(seconds: float, status: int = 200):
    def answer(request):
        time.sleep(seconds)
        return httpx.Response(status)
    return answer


@respx.mock
def test_outbox_sends_everything_at_once_under_one_deadline(tmp_path):
    respx.post(WEBHOOK).mock(side_effect=slow(1.0))
    respx.post(SLACK).mock(side_effect=slow(1.0))
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    notifier = Notifier(webhook_url=WEBHOOK, slack_webhook_url=SLACK, deadline_s=5)
    for n in range(4):
        outbox.put(f"alert-{n}", Alert(kind="run_failure", severity="critical", title=f"run {n} failed"),
                   notifier.backends())
    began = time.monotonic()
    result = outbox.deliver(notifier)
    assert time.monotonic() - began < 3  # 8 sends of 1 s each, at once
    assert len(result.delivered) == 8 and not result.failed and outbox.pending() == []


@respx.mock
def test_a_send_cut_off_by_the_deadline_is_recorded_and_never_sent_twice(tmp_path):
    hook = respx.post(WEBHOOK).mock(side_effect=slow(2.5))
    slack = respx.post(SLACK).respond(200)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    notifier = Notifier(webhook_url=WEBHOOK, slack_webhook_url=SLACK, deadline_s=1)
    outbox.put("a", ALERT, notifier.backends())
    began = time.monotonic()
    result = outbox.deliver(notifier)
    assert time.monotonic() - began < 2  # the evaluation ends at the deadline
    assert (len(result.delivered), result.in_flight) == (1, 1)
    assert outbox.deliver(notifier).in_flight == 0  # the next evaluation leaves the send in flight alone
    time.sleep(2.5)  # the cut-off send completes after its evaluation ended: its result is kept
    outbox.deliver(notifier)
    assert (hook.call_count, slack.call_count) == (1, 1) and outbox.pending() == []


def test_the_same_alert_put_twice_is_kept_once(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put("run_failure:r1", ALERT, ["webhook"])
    outbox.put("run_failure:r1", ALERT, ["webhook"])
    assert outbox.pending() == [("run_failure:r1", "webhook")]
