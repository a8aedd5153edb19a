"""The sandbox's API contract (qtickets_api.md §16), checked in-process AND over a real local port.

Every test takes the `endpoint` fixture, parametrized over both ways of reaching the same sandbox.
"""

import json
import os
import re
import socket
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta

import httpx
import pytest

from qtickets_assets.qtickets.client import QTicketsClient, RetryPolicy, current_shows
from qtickets_assets.qtickets.query import MSK
from qtickets_assets.sandbox import KINDS, SANDBOX_BASE_URL, SANDBOX_TOKEN, Faults, Sandbox, serving
from tests.builders import AS_OF

OPENED = date(2026, 10, 1)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$")


class Endpoint:
    def __init__(self, sandbox: Sandbox, base_url: str, transport: httpx.BaseTransport | None):
        self.sandbox, self.base_url, self.transport = sandbox, base_url, transport

    def http(self, token: str = SANDBOX_TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, transport=self.transport, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})

    def client(self, **options) -> QTicketsClient:
        return QTicketsClient(self.base_url, SANDBOX_TOKEN, transport=self.transport, **options)


def reach(sandbox: Sandbox, how: str):
    if how == "in-process":
        yield Endpoint(sandbox, SANDBOX_BASE_URL, sandbox.transport())
    else:
        with serving(sandbox) as server:
            yield Endpoint(sandbox, server.base_url, None)


@pytest.fixture(params=["in-process", "port"])
def endpoint(request):
    yield from reach(Sandbox(opened_on=OPENED, clock=lambda: AS_OF), request.param)


@pytest.fixture(params=["in-process", "port"])
def reach_with(request):
    """Build an endpoint for a sandbox configured by the test."""
    stack = []

    def build(**options):
        gen = reach(Sandbox(opened_on=OPENED, clock=lambda: AS_OF, **options), request.param)
        stack.append(gen)
        return next(gen)
    yield build
    for gen in stack:
        gen.close()


def get(http, path, body=None, **kwargs):
    return http.request("GET", path, json=body, **kwargs)


def test_envelope_default_page_sizes_and_past_the_last_page(endpoint):
    http = endpoint.http()
    for path, size in [("orders", 50), ("events", 10), ("clients", 100)]:
        body = get(http, path).json()
        assert body["paging"]["perPage"] == size and len(body["data"]) == size, path
        assert body["paging"]["currentPage"] == 1 and body["paging"]["total"] > size
    assert get(http, "promo-codes").json() == {"data": []}
    total = get(http, "events").json()["paging"]["total"]
    assert get(http, "events", {"page": total // 10 + 2}).json() == {"data": []}
    one = get(http, "orders/" + str(get(http, "orders").json()["data"][0]["id"])).json()
    assert set(one) == {"data"} and isinstance(one["data"], dict)


def test_query_string_filters_are_silently_ignored(endpoint):
    http = endpoint.http()
    plain = get(http, "orders").json()
    filtered = http.get("orders", params={"payed": 1, "since": "2026-11-20", "per_page": 5}).json()
    assert filtered == plain and any(not o["payed"] for o in filtered["data"])
    assert min(o["id"] for o in plain["data"]) == plain["data"][0]["id"]  # page 1 of everything, id asc


def test_503_traps_and_html_404_for_unknown_routes(endpoint):
    http = endpoint.http()
    where = json.dumps([{"column": "payed", "value": 1}])
    answer = http.get("orders", params={"where": where})
    assert answer.status_code == 503 and answer.json()["code"] == "UNKNOWN_ERROR"
    answer = http.post("orders", json={"where": [{"column": "payed", "value": 1}], "per_page": 200})
    assert answer.status_code == 503
    assert answer.json() == {"error": "Unknown error", "status": 503, "code": "UNKNOWN_ERROR", "info": []}
    for bad in ({"where": [{"column": "id", "operator": "like", "value": 1}]}, {"perPage": "many"}):
        answer = get(http, "orders", bad)  # what the real server does with a request it cannot run
        assert answer.status_code == 503 and answer.json()["code"] == "UNKNOWN_ERROR"
    for method, path in [("GET", "events/24001/seats"), ("GET", "barcodes"), ("POST", "orders/filter"),
                         ("GET", "barcodes/scan/123"), ("GET", "price-shades")]:
        answer = http.request(method, path)
        assert answer.status_code == 404 and answer.headers["Content-Type"].startswith("text/html"), path
        assert "Страница не найдена" in answer.text


def test_not_found_json_with_info(endpoint):
    http = endpoint.http()
    answer = get(http, "orders/999999999")
    assert answer.status_code == 404 and answer.json() == {
        "error": 'Resource "Order" not found', "status": 404, "code": "RESOURCE_NOT_FOUND",
        "info": {"id": 999999999, "resource": "Order"}}
    assert get(http, "events/colors").json()["info"] == {"id": 0, "resource": "Event"}


def test_token_errors_are_json_and_status_is_configurable(reach_with):
    for status in (401, 403):
        answer = get(reach_with(auth_error_status=status).http(token="wrong"), "orders")
        assert answer.status_code == status and answer.headers["Content-Type"] == "application/json"
        assert answer.json()["status"] == status
    anonymous = reach_with().http()
    del anonymous.headers["Authorization"]
    assert get(anonymous, "events").status_code == 401


def test_headers_and_timestamps(endpoint):
    http = endpoint.http()
    answer = get(http, "orders", {"perPage": 200})
    assert answer.headers["X-Cache-Status"] == "MISS" and answer.headers["Server"] == "nginx/1.14.1"
    assert not [h for h in answer.headers if h.lower().startswith(("x-ratelimit", "retry-after"))]
    stamps = [v for o in answer.json()["data"] for b in [o, *o["baskets"]] for k, v in b.items()
              if k.endswith("_at") and v is not None]
    events = get(http, "events", {"perPage": 100}).json()["data"]
    stamps += [s["start_date"] for e in events for s in e["shows"]]
    assert len(stamps) > 500 and all(TIMESTAMP.match(v) for v in stamps)
    zones = {e["city"]["timezone"] for e in events}
    assert {"Europe/Moscow", "Asia/Novosibirsk", "Asia/Tomsk"} <= zones


def test_where_order_by_and_soft_deleted_rows(endpoint):
    http = endpoint.http()
    everything = get(http, "orders", {"perPage": 1000}).json()
    rows = everything["data"]
    assert any(o["deleted_at"] for o in rows) and any(not o["payed"] for o in rows)  # cancelled included
    def total(*where):
        return get(http, "orders", {"where": list(where)}).json()["paging"]["total"]
    live = {"column": "deleted_at", "operator": "null"}
    dead = {"column": "deleted_at", "operator": "not null"}
    paid, unpaid = {"column": "payed", "value": 1}, {"column": "payed", "operator": "!=", "value": 1}
    assert total(paid, live) + total(unpaid, live) + total(dead) == everything["paging"]["total"]
    assert min(total(paid, live), total(unpaid, live), total(dead)) > 0
    picked = [rows[0]["id"], rows[5]["id"]]
    by_id = get(http, "orders", {"where": [{"column": "id", "operator": "in", "value": picked}]}).json()
    assert [o["id"] for o in by_id["data"]] == picked
    desc = get(http, "orders", {"orderBy": {"id": "desc"}, "perPage": 3}).json()["data"]
    assert [o["id"] for o in desc] == sorted((o["id"] for o in desc), reverse=True)
    assert desc[0]["id"] >= max(o["id"] for o in rows)
    window = [{"column": "payed_at", "operator": ">=", "value": "2026-11-20 00:00:00"},
              {"column": "payed_at", "operator": "<", "value": "2026-11-21 00:00:00"}]
    day = get(http, "orders", {"where": window, "perPage": 1000}).json()["data"]
    assert day and all(o["payed_at"].startswith("2026-11-20") for o in day)
    events = get(http, "events", {"perPage": 100}).json()["data"]
    assert any(e["deleted_at"] for e in events) and any(s["deleted_at"] for e in events for s in e["shows"])
    live_events = get(http, "events", {"where": [live], "perPage": 100}).json()
    assert live_events["paging"]["total"] == sum(1 for e in events if not e["deleted_at"])


def test_order_life_and_payload_quirks(endpoint):
    orders = get(endpoint.http(), "orders", {"perPage": 1000, "where": [
        {"column": "created_at", "operator": ">=", "value": "2026-10-20 00:00:00"}]}).json()["data"]
    at = datetime.fromisoformat
    late = [o for o in orders if o["payed"] and at(o["payed_at"]) - at(o["created_at"]) > timedelta(days=1)]
    expired = [o for o in orders if not o["payed"] and o["deleted_at"]]
    assert late and expired
    assert all(at(o["deleted_at"]) == at(o["reserved_to"]) + timedelta(minutes=15) for o in expired)
    baskets = [(o, b) for o in orders for b in o["baskets"]]
    # refunds and scans change baskets without bumping order.updated_at
    assert any(b["refunded_at"] and at(b["refunded_at"]) > at(o["updated_at"]) for o, b in baskets)
    assert any(b["checked_at"] and at(b["updated_at"]) > at(o["updated_at"]) for o, b in baskets)
    assert {type(o["utm"]) for o in orders} == {list, dict} and all(o["custom"] == "" for o in orders)
    assert any(o["fields"] == [] for o in orders)
    assert {type(o["integrations"]) for o in orders} == {list, dict}
    kinds = {o["payment_type_id"] for o in orders}
    assert "card" in kinds and any(k.isdigit() for k in kinds) and all(isinstance(k, str) for k in kinds)
    cancelled = [(o, b) for o, b in baskets if o["deleted_at"]]
    assert cancelled and all(b["ticket_amount"] == 0 and b["barcode"] is None for _, b in cancelled)
    assert all(o["price"] == sum(b["price"] for b in o["baskets"]) for o, _ in cancelled)  # not zeroed
    assert all(b["barcode"] is None for o, b in baskets if not o["payed"])
    assert all(isinstance(o["price"], int) and isinstance(o["payed"], bool) for o in orders)


def test_client_reads_a_day_of_sales_exactly(endpoint):
    day = date(2026, 11, 20)
    start = datetime.combine(day, datetime.min.time(), MSK)
    sold = defaultdict(int)
    with endpoint.client() as api:
        for order in api.orders_between("payed_at", start, start + timedelta(days=1)):
            if order.deleted_at is None:
                for b in order.baskets:
                    if b.deleted_at is None and b.refunded_at is None:
                        sold[(order.event_id, b.show_id)] += b.quantity
    expected = endpoint.sandbox.expected_sales_daily(AS_OF)
    truth = {(e, s): v["tickets_sold"] for (d, e, s), v in expected.items()
             if d == day and v["tickets_sold"]}
    assert dict(sold) == truth and sum(truth.values()) > 100


def test_client_reads_events_and_inventory_exactly(endpoint):
    with endpoint.client(concurrency=2) as api:
        events = list(api.events())
        shows = current_shows(events, AS_OF)
        seats = dict(api.seats_of(show.id for _, show in shows))
    truth = endpoint.sandbox.expected_inventory(AS_OF)
    assert set(seats) == set(truth)
    for show_id, rows in seats.items():
        payed = {}
        for row in rows:
            payed[row.root_id] = max(payed.get(row.root_id, 0), row.payed_quantity)
        assert sum(payed.values()) == truth[show_id]["sold_seats"]
    assert {(e.id, s.id) for e in events for s in e.shows} == set(endpoint.sandbox.expected_dim_events(AS_OF))


def test_client_survives_injected_faults(reach_with):
    faults = Faults(rate=0.3, kinds=KINDS, seed=7, slow_s=0.25, retry_after_s=0)
    endpoint = reach_with(faults=faults)
    start = datetime(2026, 11, 19, tzinfo=MSK)
    end = start + timedelta(days=2)
    options = dict(per_page=10, timeout_s=0.15, sleep=lambda s: None, retry=RetryPolicy(budget=200))
    with endpoint.client(**options) as api:
        got = [o.model_dump(mode="json") for o in api.orders_between("created_at", start, end)]
        events = [e.id for e in api.events()]
        retries = api.budget.retries
    clean = reach_with()
    with clean.client(per_page=20) as api:
        want = [o.model_dump(mode="json") for o in api.orders_between("created_at", start, end)]
        assert events == [e.id for e in api.events()]
    assert got == want and len(want) > 100
    assert retries == sum(faults.injected.values()) and set(faults.injected) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_kind_on_the_wire(reach_with, kind):
    endpoint = reach_with(faults=Faults(rate=1.0, kinds=[kind], slow_s=0.5, retry_after_s=3))
    try:
        answer = get(endpoint.http(), "orders", {"perPage": 1}, timeout=httpx.Timeout(5, read=0.2))
    except httpx.ReadTimeout:
        assert kind == "slow"
        return
    status, content_type = answer.status_code, answer.headers["Content-Type"]
    expected = {"429": 429, "429-retry-after": 429, "502": 502, "503": 503, "504": 504, "truncated": 200,
                "html200": 200}[kind]
    assert status == expected
    assert (answer.headers.get("Retry-After") == "3") == (kind == "429-retry-after")
    if kind == "truncated":
        with pytest.raises(ValueError):
            answer.json()
    if kind in ("html200", "502", "504"):
        assert content_type.startswith("text/html")


def test_cli_serves_the_sandbox_on_a_port(tmp_path):
    env = {**os.environ, "QTICKETS_SANDBOX_AS_OF": AS_OF.isoformat(),
           "QTICKETS_PARTITIONS_START": "2026-10-01",
           "QTICKETS_DATA_DIR": str(tmp_path)}
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "qtickets_assets.cli", "sandbox", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        banner = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/api/rest/v1/" in banner
        with QTicketsClient(f"http://127.0.0.1:{port}/api/rest/v1/", SANDBOX_TOKEN) as api:
            events = list(api.events())
        truth = Sandbox(opened_on=OPENED, clock=lambda: AS_OF).expected_dim_events(AS_OF)
        assert {(e.id, s.id) for e in events for s in e.shows} == set(truth)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_concurrent_pages_answer_as_sequential_ones(endpoint):
    """A backfill fetches pages `concurrency` at a time (QTICKETS_CONCURRENCY): the in-process sandbox and
    its port answer them from several threads at once, each page as it would alone, in page order."""
    start = datetime(2026, 11, 10, tzinfo=MSK)
    end = start + timedelta(days=10)
    with endpoint.client(per_page=25) as api:
        want = [o.model_dump(mode="json") for o in api.orders_between("created_at", start, end)]
    with endpoint.client(per_page=25, concurrency=4) as api:
        got = [o.model_dump(mode="json") for o in api.orders_between("created_at", start, end)]
        pages = api.requests_made
    assert got == want and len(want) > 500 and pages > 20
