"""The sandbox's webhooks: every change of the account is found, signed and delivered to the real
receiver app (Starlette TestClient as the HTTP client), with the vendor's retry rules."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from qtickets_assets.sandbox import Sandbox
from qtickets_assets.sandbox.webhooks import MAX_ATTEMPTS, HookSender, changes
from qtickets_assets.service import create_app
from qtickets_assets.webhooks.store import HookStore
from tests.builders import AS_OF, OPENED_ON

SECRET = "sandbox-hooks-7c2"


def brute_force(sandbox: Sandbox, since: datetime, until: datetime) -> set[tuple[datetime, int, str]]:
    """Every change in (since, until], from every order of the account (no index, no look-back bound)."""
    found = set()
    for order in sandbox.account.orders_until(until):
        moments = [(order.created_at, "created"), (order.payed_at, "payed"), (order.deleted_at, "deleted")]
        for basket in order.baskets:
            moments.append((basket.refunded_at, "refunded"))
            if basket.checked_at and (order.deleted_at is None or order.deleted_at > basket.checked_at):
                moments.append((basket.checked_at, "checked"))
        found |= {(m, order.id, event) for m, event in moments if m is not None and since < m <= until}
    return found


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(opened_on=date.fromisoformat(OPENED_ON), clock=lambda: AS_OF)


@pytest.mark.parametrize(("since", "hours"), [
    (AS_OF - timedelta(days=1), 24), (AS_OF - timedelta(days=25), 72), (AS_OF - timedelta(hours=3), 3)])
def test_changes_are_exactly_the_accounts_changes(sandbox, since, hours):
    until = since + timedelta(hours=hours)
    found = changes(sandbox.account, since, until)
    assert found == sorted(brute_force(sandbox, since, until))
    assert [m for m, _, _ in found] == sorted(m for m, _, _ in found)


def test_a_day_has_every_kind_of_change_including_refunds_of_old_sales(sandbox):
    found = changes(sandbox.account, AS_OF - timedelta(days=3), AS_OF)
    assert {event for _, _, event in found} == {"created", "payed", "deleted", "refunded", "checked"}
    old_refunds = [order_id for _, order_id, event in found if event == "refunded"
                   and sandbox.account.order(order_id, AS_OF).created_at < AS_OF - timedelta(days=5)]
    assert old_refunds, "the window should hold a refund of a sale older than a few days"


class MovingClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def receiver(tmp_path, secret=SECRET) -> tuple[TestClient, HookStore]:
    store = HookStore(tmp_path / "hooks.sqlite3")

    def no_instance():
        raise AssertionError("not needed")

    return TestClient(create_app(secret, store, no_instance, [])), store


def test_sender_delivers_signed_hooks_that_the_receiver_stores(tmp_path):
    clock = MovingClock(AS_OF - timedelta(hours=8))
    sandbox = Sandbox(opened_on=date.fromisoformat(OPENED_ON), clock=clock)
    client, store = receiver(tmp_path)
    sender = HookSender(sandbox, "http://testserver/webhooks/qtickets", SECRET, client=client)
    assert sender.tick() == 0  # nothing happened since it started
    clock.now += timedelta(hours=8)
    expected = changes(sandbox.account, clock.now - timedelta(hours=8), clock.now)
    assert sender.tick() == len(expected) > 20
    assert store.pending().order_ids == sorted({order_id for _, order_id, _ in expected})
    assert store.depth()[0] == len(expected) and not sender.queue
    assert sender.tick() == 0  # the clock did not move: nothing new, nothing resent


def test_undelivered_hooks_are_retried_n_cubed_seconds_apart_then_dropped(tmp_path):
    clock = MovingClock(AS_OF - timedelta(hours=6))
    sandbox = Sandbox(opened_on=date.fromisoformat(OPENED_ON), clock=clock)
    client, store = receiver(tmp_path, secret="another-secret")  # every hook answered 401
    elapsed = [0.0]
    sender = HookSender(sandbox, "http://testserver/webhooks/qtickets", SECRET, client=client,
                        monotonic=lambda: elapsed[0])
    clock.now = AS_OF
    assert sender.tick() == 0
    count = len(sender.queue)
    assert count > 0 and all(hook.attempts == 1 and hook.next_at == 1 for hook in sender.queue)
    assert sender.tick() == 0 and all(hook.attempts == 1 for hook in sender.queue)  # not due yet
    for attempt in range(2, MAX_ATTEMPTS + 1):
        elapsed[0] += (attempt - 1) ** 3
        sender.tick()
        assert all(hook.attempts == attempt for hook in sender.queue)
    assert not sender.queue and sender.dropped == count and store.depth()[0] == 0


def test_sandbox_serve_refuses_a_webhook_url_without_a_secret(monkeypatch, capsys):
    from qtickets_assets.cli import main
    from qtickets_assets.settings import get_settings

    monkeypatch.setenv("QTICKETS_SANDBOX_WEBHOOK_URL", "http://127.0.0.1:9/webhooks/qtickets")
    monkeypatch.delenv("QTICKETS_WEBHOOK_SECRET", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["sandbox", "serve", "--port", "0"]) == 2
    finally:
        get_settings.cache_clear()
    assert "QTICKETS_WEBHOOK_SECRET" in capsys.readouterr().err
