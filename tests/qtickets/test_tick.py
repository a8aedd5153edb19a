"""Requests of one 15-minute tick on an account the size of the observed real one.

Real account (qtickets_api.md §2.4, §6): ~126k orders of history, ~220 events, ~50 future shows. The
tick makes the calls the refresh run's raw assets make (qtickets_assets/assets/raw.py): orders created
in yesterday..today (one run over the range) and orders created earlier but paid in it, events once (the
inventory takes its shows from the events staging table), one seats call per active/future show. It must
cost a number of requests set by today's volume, never by the history.
"""

import json
import math
from datetime import datetime, timedelta

import dagster as dg
import pytest

from qtickets_assets.assets.order_reads import OrderReads
from qtickets_assets.qtickets.client import QTicketsClient, current_shows
from qtickets_assets.qtickets.query import MSK, parse_instant
from qtickets_assets.qtickets.resource import QTicketsResource
from qtickets_assets.sandbox import SANDBOX_BASE_URL, SANDBOX_TOKEN, Sandbox
from tests.builders import AS_OF

PER_PAGE = 100  # QTicketsResource.per_page
REAL_SIZE = dict(orders_per_day=195, event_every_days=2.9)  # with 600 days of history: see the test
HISTORY_DAYS = 600


@pytest.fixture(scope="module")
def real_size():
    now = AS_OF  # a fixed instant (mid-day): the count is reproducible
    box = Sandbox(opened_on=now.date() - timedelta(days=HISTORY_DAYS), clock=lambda: now, **REAL_SIZE)
    return box, now


@pytest.mark.slow
def test_account_has_the_real_size(real_size):
    box, now = real_size
    orders = len(box.account.orders_until(now))
    events = sum(1 for e in box.account.events if e.created_at <= now)
    shows = len(box.polled_shows(now))
    print(f"\nreal-size sandbox: {orders} orders, {events} events, {shows} active/future shows")
    assert 115_000 <= orders <= 140_000 and 200 <= events <= 240 and 35 <= shows <= 70


@pytest.mark.slow
def test_one_tick_does_not_reread_history(real_size):
    box, now = real_size
    today = datetime.combine(now.date(), datetime.min.time(), MSK)
    start, end = today - timedelta(days=1), today + timedelta(days=1)
    box.requests.clear()
    with QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN, transport=box.transport(), per_page=PER_PAGE) as api:
        # stg_qtickets_api_orders_raw: orders created in the range, then the older ones paid in it
        orders = {o.id: o for o in api.orders_between("created_at", start, end)}
        created = len(orders)
        paid_late = list(api.orders_between("payed_at", start, end, created_before=start))
        orders.update((o.id, o) for o in paid_late)
        events = list(api.events())  # stg_qtickets_api_events_raw
        shows = current_shows(events, now)  # stg_qtickets_api_inventory_raw: shows from events staging
        seats = dict(api.seats_of(show.id for _, show in shows))
        made = api.requests_made
    requests = list(box.requests)
    print(f"\none tick at real size: {len(requests)} requests ({created} orders created, {len(paid_late)} "
          f"created earlier and paid in yesterday..today; {len(events)} events; {len(seats)} shows polled)")

    def pages(rows):
        return max(1, math.ceil(rows / PER_PAGE))
    # Each order is read once, events once.
    assert len(requests) == made == (pages(created) + pages(len(paid_late)) + pages(len(events)) + len(seats))
    assert paid_late and all(o.created_at < start <= o.payed_at < end for o in paid_late)
    assert len(seats) == len(box.expected_inventory(now)) >= 35
    # No history: every orders request is bounded below by yesterday's start, so the server reads days
    # of data; and what came back is this window's orders, not the 126k of history.
    for request in requests:
        if request.url.path.endswith("/orders"):
            where = json.loads(request.content)["where"]
            lower = [parse_instant(c["value"]) for c in where if c["operator"] == ">="]
            assert lower and min(lower) >= start
    assert len(orders) < 2_000 and len(requests) < 120


def test_the_watermark_read_adds_at_most_two_requests_a_tick(real_size):
    """The orders staging also reads the orders changed since the newest landed `updated_at` minus the
    overlap: after a tick 15 minutes earlier, 15 + 10 minutes of changes, whatever the orders' days."""
    box, now = real_size
    today = datetime.combine(now.date(), datetime.min.time(), MSK)
    window = dg.TimeWindow(today - timedelta(days=1), today + timedelta(days=1))
    since = now - timedelta(minutes=15, seconds=QTicketsResource().watermark_overlap_s)

    def requests(reads: OrderReads) -> int:
        box.requests.clear()
        with QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN, transport=box.transport(),
                            per_page=PER_PAGE) as api:
            list(reads.orders(api))
        return len(box.requests)

    extra = requests(OrderReads(window, changed_since=since)) - requests(OrderReads(window))
    print(f"\nwatermark read at real size: {extra} extra request(s) a tick")
    assert 1 <= extra <= 2
