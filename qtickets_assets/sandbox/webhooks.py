"""The sandbox's webhooks (qtickets_api.md §12): signed POSTs for its own changes, like the vendor's.

The account is a pure function of (seed, T), so the changes between two instants are known from the
plans: new orders (`created`), payments (`payed`), cancellations and expiries (`deleted`), refunds
(`refunded`) and entry scans (`checked`). `HookSender.tick()` posts each change that happened since the
previous tick: the order as `GET orders/{id}` shows it now, `X-Signature` = hex(HMAC-SHA1(body, secret)).
Delivery follows the vendor's rules: success on 200, otherwise up to 10 attempts, attempt n delayed
n³ seconds, then the hook is dropped (the watermark read and the reconcile still converge).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from ..webhooks import signature
from .account import Account, Sandbox, render_order

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
# The latest change of an order after its creation: payment <= 3 days (reserved_to), then a refund
# <= 20 days and 10 hours later (Account._plan_order). Entry scans are found through their shows.
CHANGE_LOOKBACK = timedelta(days=24)
SCAN_LEAD = timedelta(hours=1)  # a scan happens in the hour before the show starts


def changes(account: Account, since: datetime, until: datetime) -> list[tuple[datetime, int, str]]:
    """(moment, order id, X-Event-Type) of every change in (since, until], in time order."""
    found: set[tuple[datetime, int, str]] = set()

    def add(moment: datetime | None, order_id: int, event: str) -> None:
        if moment is not None and since < moment <= until:
            found.add((moment, order_id, event))

    for order in account.orders_slice(until, since - CHANGE_LOOKBACK, until, None, None):
        add(order.created_at, order.id, "created")
        add(order.payed_at, order.id, "payed")
        add(order.deleted_at, order.id, "deleted")
        for basket in order.baskets:
            if basket.refund_hooked:  # a Resale's refund: the hook was lost
                add(basket.refunded_at, order.id, "refunded")
    for show in account.shows.values():
        if since < show.start and show.start - SCAN_LEAD <= until:  # its scans may fall in the window
            for order, basket in account.baskets_of_show(show.id, until):
                # The API shows a scan only of a live order (render_order): a cancelled one sends none.
                if basket.checked_at is not None and (order.deleted_at is None
                                                      or order.deleted_at > basket.checked_at):
                    add(basket.checked_at, order.id, "checked")
    return sorted(found)


@dataclass
class Hook:
    order_id: int
    event: str
    attempts: int = 0
    next_at: float = 0.0  # monotonic time of the next attempt


class HookSender:
    """Posts the sandbox's changes to `url`. Not thread-safe: one thread calls `tick` (see `run`)."""

    def __init__(self, sandbox: Sandbox, url: str, secret: str, since: datetime | None = None,
                 client: httpx.Client | None = None, monotonic: Callable[[], float] = time.monotonic):
        self.sandbox, self.url, self._secret = sandbox, url, secret
        self.cursor = since if since is not None else sandbox.clock()
        self.client = client or httpx.Client(timeout=10.0)
        self.monotonic = monotonic
        self.queue: list[Hook] = []
        self.delivered = self.dropped = 0

    def tick(self) -> int:
        """Queue the changes since the previous tick, post every hook that is due; returns deliveries."""
        now = self.sandbox.clock()
        if now > self.cursor:
            self.queue += [Hook(order_id, event) for _, order_id, event in
                           changes(self.sandbox.account, self.cursor, now)]
            self.cursor = now
        delivered, waiting = 0, []
        for hook in self.queue:
            if hook.next_at > self.monotonic():
                waiting.append(hook)
            elif self._post(hook, now):
                delivered += 1
            elif hook.attempts >= MAX_ATTEMPTS:
                self.dropped += 1
                log.warning("sandbox webhook %s for order %d dropped after %d attempts",
                            hook.event, hook.order_id, hook.attempts)
            else:
                hook.next_at = self.monotonic() + hook.attempts ** 3
                waiting.append(hook)
        self.queue = waiting
        self.delivered += delivered
        return delivered

    def _post(self, hook: Hook, now: datetime) -> bool:
        order = self.sandbox.account.order(hook.order_id, now)
        body = json.dumps(render_order(order, now), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Qtickets-Webhooks/2.0",
                   "X-Model-Name": "Order", "X-Event-Type": hook.event,
                   "X-Signature": signature(body, self._secret)}
        hook.attempts += 1
        try:
            status = self.client.post(self.url, content=body, headers=headers).status_code
        except httpx.HTTPError as error:
            status = f"{type(error).__name__}"
        if status == 200:
            log.info("sandbox webhook %s for order %d delivered", hook.event, hook.order_id)
            return True
        log.info("sandbox webhook %s for order %d: %s (attempt %d)", hook.event, hook.order_id, status,
                 hook.attempts)
        return False

    def run(self, stop: threading.Event, every_s: float = 2.0) -> None:
        """Tick every `every_s` seconds until `stop` is set (a daemon thread's target)."""
        while not stop.wait(every_s):
            try:
                self.tick()
            except Exception:  # a bug here must not take the sandbox or `dev` down
                log.exception("sandbox webhooks: tick failed")


def start_sender(sandbox: Sandbox, url: str, secret: str, every_s: float = 2.0) -> threading.Event:
    """Post the sandbox's changes from a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    sender = HookSender(sandbox, url, secret)
    threading.Thread(target=sender.run, args=(stop, every_s), name="sandbox-webhooks", daemon=True).start()
    return stop
