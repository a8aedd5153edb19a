"""Which orders a run of the orders staging reads, in which order, and when each listing's requests
leave (assets/order_reads.py), against respx."""

import json
import time
from datetime import timedelta

import dagster as dg
import httpx

from qtickets_assets.assets.order_reads import OrderReads
from qtickets_assets.qtickets.client import QTicketsClient
from tests.builders import D, at, basket, order

BASE = "https://api.test/api/rest/v1/"
WINDOW = dg.TimeWindow(at(D, 0), at(D + timedelta(days=1), 0))
SINCE = at(D, 9)  # the watermark minus the overlap


def record(order_id: int, created, payed=None, updated=None) -> dict:
    raw = dict(order(order_id, 1, created, [basket(order_id * 10, 5, 100)], payed=payed).raw)
    if updated is not None:
        raw["updated_at"] = updated.isoformat()
    return raw


# Per listing (the `where` column it filters on), its pages of 2 orders. Orders 11 and 5 are listed twice.
LISTINGS = {
    "created_at": [[record(i, at(D, 8, i)) for i in ids] for ids in ([10, 11], [12, 13], [14])],
    "payed_at": [[record(5, at(D - timedelta(days=9)), payed=at(D, 10)),
                  record(6, at(D - timedelta(days=8)), payed=at(D, 11))]],
    "updated_at": [[record(11, at(D, 8, 11), updated=at(D, 9, 30)),
                    record(5, at(D - timedelta(days=9)), payed=at(D, 10))],
                   [record(3, at(D - timedelta(days=20)), updated=at(D, 9, 45))]],
}


class Api:
    """Answers each listing's pages after 20 ms; records the requests in the order they leave."""

    def __init__(self):
        self.asked = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        listing = next(c["column"] for c in body["where"] if c["operator"] == ">=")
        pages, number = LISTINGS[listing], body["page"]
        self.asked.append((listing, number))
        time.sleep(0.02)
        return httpx.Response(200, json={
            "data": pages[number - 1] if number <= len(pages) else [],
            "paging": {"perPage": 2, "currentPage": number, "total": sum(len(page) for page in pages)}})

    def wait_for(self, request, seconds=5.0) -> bool:
        deadline = time.monotonic() + seconds
        while request not in self.asked and time.monotonic() < deadline:
            time.sleep(0.01)
        return request in self.asked


def test_listings_are_read_in_turn_each_order_once(respx_mock):
    api = Api()
    respx_mock.get(BASE + "orders").mock(side_effect=api)
    reads = OrderReads(WINDOW, changed_since=SINCE)
    with QTicketsClient(BASE, "token", per_page=2, concurrency=4) as client:
        orders = reads.orders(client)
        assert next(orders).id == 10
        # While the caller holds the window's first order, the late payments' page 1 is asked for ...
        assert api.wait_for(("payed_at", 1))
        ids = [10, *(o.id for o in orders)]
    assert ids == [10, 11, 12, 13, 14, 5, 6, 3]  # listed in turn, each order once
    assert reads.counts == {"created": 5, "paid_late": 2, "changed": 1}
    assert reads.outside == {5, 6, 3}
    # ... but only after the window's read asked for its last page; the watermark read after both.
    position = api.asked.index
    assert position(("created_at", 3)) < position(("payed_at", 1)) < position(("updated_at", 1))
    assert len(api.asked) == 6
