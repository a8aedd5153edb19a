"""The QTickets client against respx: every retry and error path, and the paging edge cases."""

import json
import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import islice

import dagster as dg
import httpx
import pytest

from qtickets_assets.qtickets.client import (
    PAGES_AHEAD,
    QTicketsAuthError,
    QTicketsClient,
    QTicketsError,
    RetryBudget,
    RetryPolicy,
    wall_time,
)
from qtickets_assets.qtickets.models import RecordError
from qtickets_assets.qtickets.query import MSK

BASE = "https://api.test/api/rest/v1/"
TOKEN = "s3cret-token-value"
HTML = "<!DOCTYPE html><html><head><title>Страница не найдена 404 – Qtickets</title></head></html>"
UNKNOWN = {"error": "Unknown error", "status": 503, "code": "UNKNOWN_ERROR", "info": []}


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def api(sleeps):
    client = QTicketsClient(BASE, TOKEN, sleep=sleeps, per_page=2)
    yield client
    client.close()


def order(i, created="2026-11-20T10:00:00+03:00", **extra):
    return {"id": i, "event_id": 1, "payed": 1, "payed_at": created, "created_at": created,
            "updated_at": created, "deleted_at": None, "utm": [], "custom": "", "fields": [],
            "baskets": [{"id": i * 10, "show_id": 5, "price": 100, "quantity": 1}], **extra}


def ok(data, total=None, per_page=2, page=1):
    body = {"data": data}
    if total is not None:
        body["paging"] = {"perPage": per_page, "currentPage": page, "total": total}
    return httpx.Response(200, json=body)


def sequence(*responses):
    """A side effect that answers the given responses (or raises the given exceptions) in turn."""
    answers = iter(responses)

    def answer(request):
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item
    return answer


# -- retries --------------------------------------------------------------------------------------------


def test_429_honours_retry_after(api, sleeps, respx_mock):
    route = respx_mock.get(BASE + "events").mock(side_effect=sequence(
        httpx.Response(429, headers={"Retry-After": "7"}), ok([])))
    assert api.request("events") == {"data": []}
    assert route.call_count == 2 and sleeps == [7.0]


def test_429_without_retry_after_backs_off_exponentially_with_jitter(respx_mock, sleeps):
    policy = RetryPolicy(backoff_s=2.0, backoff_max_s=100)
    respx_mock.get(BASE + "events").mock(side_effect=sequence(
        httpx.Response(429), httpx.Response(429), httpx.Response(429), ok([])))
    with QTicketsClient(BASE, TOKEN, sleep=sleeps, retry=policy) as api:
        api.request("events")
    assert len(sleeps) == 3
    assert (api.requests_made, api.retries_made) == (4, 3)  # reported as run metadata (api_metadata)
    for attempt, delay in enumerate(sleeps, start=1):
        ceiling = 2.0 * 2 ** (attempt - 1)
        assert ceiling / 2 <= delay <= ceiling


def test_retry_after_too_long_fails_instead_of_parking_the_run(api, respx_mock):
    respx_mock.get(BASE + "events").respond(429, headers={"Retry-After": "3600"})
    with pytest.raises(QTicketsError, match="Retry-After 3600"):
        api.request("events")


@pytest.mark.parametrize("failure", [
    httpx.Response(502, text="<html>502 Bad Gateway</html>", headers={"Content-Type": "text/html"}),
    httpx.Response(504, json={"error": "timeout"}),
    httpx.ConnectError("connection refused"),
    httpx.ReadTimeout("read timed out"),
    httpx.Response(200, content=b'{"data": [{"id": 1, "na', headers={"Content-Type": "application/json"}),
    httpx.Response(200, text="<html><body>Unavailable</body></html>", headers={"Content-Type": "text/html"}),
], ids=["502", "504", "connect", "timeout", "truncated-json", "html-200"])
def test_transient_failures_are_retried(api, sleeps, respx_mock, failure):
    route = respx_mock.get(BASE + "events").mock(side_effect=sequence(failure, failure, ok([{"id": 1}])))
    assert api.request("events")["data"] == [{"id": 1}]
    assert route.call_count == 3 and len(sleeps) == 2


def test_503_is_retried_at_most_twice_then_fails_with_the_body(api, sleeps, respx_mock):
    route = respx_mock.get(BASE + "orders").respond(503, json=UNKNOWN)
    with pytest.raises(QTicketsError) as raised:
        api.request("orders", {"where": []})
    assert route.call_count == 3 and len(sleeps) == 2
    assert "GET orders" in str(raised.value) and "UNKNOWN_ERROR" in str(raised.value)
    assert raised.value.status == 503


def test_503_then_success(api, respx_mock):
    respx_mock.get(BASE + "orders").mock(side_effect=sequence(
        httpx.Response(503, json=UNKNOWN), httpx.Response(503, json=UNKNOWN), ok([])))
    assert api.request("orders") == {"data": []}


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_never_retried_and_never_print_the_token(api, sleeps, respx_mock, status):
    echo = {"error": f"bad token {TOKEN}", "status": status}
    route = respx_mock.get(BASE + "orders").respond(status, json=echo)
    with pytest.raises(QTicketsAuthError) as raised:
        api.request("orders")
    message = str(raised.value)
    assert route.call_count == 1 and sleeps == []
    assert "QTICKETS_API_TOKEN" in message and TOKEN not in message and "orders" in message


def test_html_404_names_the_path_and_is_not_retried(api, respx_mock):
    html = {"Content-Type": "text/html"}
    route = respx_mock.get(BASE + "events/5/seats").respond(404, text=HTML, headers=html)
    with pytest.raises(QTicketsError, match=r"GET events/5/seats: HTTP 404 with an HTML page"):
        api.request("events/5/seats")
    assert route.call_count == 1


def test_html_200_that_persists_is_an_error_naming_the_path(api, respx_mock):
    respx_mock.get(BASE + "events").respond(200, text=HTML, headers={"Content-Type": "text/html"})
    with pytest.raises(QTicketsError, match=r"GET events: HTTP 200 with an HTML page.*after 8 attempts"):
        api.request("events")


def test_one_retry_budget_per_client_so_a_dead_api_fails_fast(sleeps, respx_mock):
    route = respx_mock.get(BASE + "events").respond(502)
    with QTicketsClient(BASE, TOKEN, sleep=sleeps, retry=RetryPolicy(budget=3, max_attempts=10)) as api:
        with pytest.raises(QTicketsError, match=r"retry budget \(3 retries"):
            api.request("events")
        assert route.call_count == 4
        with pytest.raises(QTicketsError, match="retry budget"):
            api.request("events")  # the next call does not start a new budget
        assert route.call_count == 5 and len(sleeps) == 3


def test_time_spent_retrying_is_budgeted_too(sleeps, respx_mock):
    respx_mock.get(BASE + "events").respond(429, headers={"Retry-After": "40"})
    with QTicketsClient(BASE, TOKEN, sleep=sleeps, retry=RetryPolicy(max_lost_s=100)) as api:
        with pytest.raises(QTicketsError, match=r"retry budget \(30 retries, 100 s more .*\) is spent"):
            api.request("events")
    assert sleeps == [40.0, 40.0]


def test_retry_after_as_an_http_date(api, sleeps, respx_mock):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    respx_mock.get(BASE + "events").mock(side_effect=sequence(
        httpx.Response(429, headers={"Retry-After": when}), ok([])))
    api.request("events")
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 30


def test_events_fall_back_to_the_full_payload_when_select_is_refused(api, respx_mock):
    def answer(request):
        if "select" in json.loads(request.content):
            return httpx.Response(503, json=UNKNOWN)
        return ok([{"id": 1, "name": "A", "shows": [{"id": 2, "scheme_properties": {"seats": {}}}]}], total=1)
    route = respx_mock.get(BASE + "events").mock(side_effect=answer)
    events = list(api.events())
    assert [(e.id, [s.id for s in e.shows]) for e in events] == [(1, [2])] and route.call_count == 4


def test_seats_of_a_show_without_seats(api, respx_mock):
    respx_mock.get(BASE + "shows/3/seats").respond(json={"data": []})
    assert api.show_seats(3) == []


def test_resource_builds_a_client_with_a_rejects_dir_and_faults(tmp_path):
    from qtickets_assets.qtickets.resource import QTicketsResource
    from qtickets_assets.settings import get_settings

    resource = QTicketsResource(sandbox_as_of="2026-11-21T12:00:00+03:00")
    with resource.get_client() as api:
        assert api.rejects_dir == get_settings().qtickets_data_dir / "qtickets_rejects"
    assert resource.sandbox().faults is None
    flaky = QTicketsResource(sandbox_fault_rate=0.25, rejects_dir=str(tmp_path), concurrency=2)
    assert flaky.sandbox().faults.rate == 0.25
    with flaky.get_client() as api:
        assert api.rejects_dir == tmp_path and api.concurrency == 2


def test_clients_of_one_run_share_the_budget(sleeps, respx_mock):
    respx_mock.get(BASE + "events").respond(502)
    budget = RetryBudget(RetryPolicy(budget=3, max_attempts=3))
    first, second = (QTicketsClient(BASE, TOKEN, sleep=sleeps, budget=budget) for _ in range(2))
    with pytest.raises(QTicketsError, match="gave up after 3 attempts"):
        first.request("events")
    with pytest.raises(QTicketsError, match="retry budget"):
        second.request("events")  # the first gave up: the run is failing, the second stops at once
    assert len(sleeps) == 2 and budget.retries_left == 0


def test_the_resource_gives_one_budget_per_run():
    from qtickets_assets.qtickets.resource import QTicketsResource

    with dg.build_resources({"qtickets": QTicketsResource()}) as resources:
        with resources.qtickets.get_client() as a, resources.qtickets.get_client() as b:
            assert a.budget is b.budget
    with dg.build_resources({"qtickets": QTicketsResource()}) as resources:
        with resources.qtickets.get_client() as c:
            assert c.budget is not a.budget


def test_request_shape(api, respx_mock):
    route = respx_mock.get(BASE + "orders").mock(return_value=ok([]))
    list(api.orders([{"column": "payed", "value": 1}]))
    sent = route.calls.last.request
    assert sent.method == "GET" and sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Cache-Control"] == "no-cache"
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.content) == {"where": [{"column": "payed", "value": 1}],
                                        "orderBy": {"id": "asc"}, "page": 1, "perPage": 2}


def test_not_found_order_is_none_and_other_statuses_fail(api, respx_mock):
    respx_mock.get(BASE + "orders/9").respond(404, json={
        "error": 'Resource "Order" not found', "status": 404, "code": "RESOURCE_NOT_FOUND",
        "info": {"id": 9, "resource": "Order"}})
    respx_mock.get(BASE + "orders/10").respond(200, json={"data": order(10)})
    respx_mock.get(BASE + "orders/11").respond(500, json={"error": "boom"})
    assert api.order(9) is None
    assert api.order(10).baskets[0].id == 100
    with pytest.raises(QTicketsError, match="orders/11: HTTP 500"):
        api.order(11)


# -- paging ---------------------------------------------------------------------------------------------


def paged(pages):
    """A side effect serving `pages[n-1]` for page n (a tuple: rows, total, perPage)."""
    def answer(request):
        number = json.loads(request.content)["page"]
        if number > len(pages):
            return httpx.Response(200, json={"data": []})
        rows, total, per_page = pages[number - 1]
        return ok(rows, total=total, per_page=per_page, page=number)
    return answer


def ids(api, path="orders"):
    return [row["id"] for page in api.pages(path) for row in page.rows]


def test_stops_on_total(api, respx_mock):
    route = respx_mock.get(BASE + "orders").mock(side_effect=paged([([{"id": 1}, {"id": 2}], 4, 2),
                                                                     ([{"id": 3}, {"id": 4}], 4, 2)]))
    assert ids(api) == [1, 2, 3, 4] and route.call_count == 2


def test_empty_last_page(api, respx_mock):
    # total promises a third page that turns out empty (rows deleted while we read)
    route = respx_mock.get(BASE + "orders").mock(side_effect=paged([([{"id": 1}, {"id": 2}], 6, 2),
                                                                     ([{"id": 3}, {"id": 4}], 6, 2)]))
    assert ids(api) == [1, 2, 3, 4] and route.call_count == 3


def test_empty_first_page(api, respx_mock):
    respx_mock.get(BASE + "orders").respond(json={"data": []})
    assert ids(api) == []


def test_total_growing_while_paging(api, respx_mock):
    route = respx_mock.get(BASE + "orders").mock(side_effect=paged([
        ([{"id": 1}, {"id": 2}], 3, 2), ([{"id": 3}, {"id": 4}], 5, 2), ([{"id": 5}], 5, 2)]))
    assert ids(api) == [1, 2, 3, 4, 5] and route.call_count == 3


def test_server_ignoring_per_page(api, respx_mock):
    # we ask 2 a page; the server sends 3 and says so in paging.perPage
    route = respx_mock.get(BASE + "orders").mock(side_effect=paged([
        ([{"id": 1}, {"id": 2}, {"id": 3}], 5, 3), ([{"id": 4}, {"id": 5}], 5, 3)]))
    assert ids(api) == [1, 2, 3, 4, 5] and route.call_count == 2


def test_without_paging_block_reads_until_a_short_page(api, respx_mock):
    route = respx_mock.get(BASE + "orders").mock(side_effect=paged([
        ([{"id": 1}, {"id": 2}], None, 2), ([{"id": 3}], None, 2)]))
    assert ids(api) == [1, 2, 3] and route.call_count == 2


def test_server_ignoring_page_is_an_error_not_a_loop(api, respx_mock):
    respx_mock.get(BASE + "orders").respond(json={"data": [{"id": 1}, {"id": 2}],
                                                  "paging": {"perPage": 2, "currentPage": 1, "total": 10}})
    with pytest.raises(QTicketsError, match="ignores `page`"):
        ids(api)


def test_pages_are_lazy(api, respx_mock):
    route = respx_mock.get(BASE + "orders").mock(side_effect=paged([([{"id": i}, {"id": i + 1}], 100, 2)
                                                                     for i in range(1, 100, 2)]))
    pages = api.pages("orders")
    next(pages)
    next(pages)
    assert route.call_count == 2
    pages.close()


class InFlight:
    """A respx side effect answering with `serve` after `delay_s`, counting the peak of requests in flight."""

    def __init__(self, serve, delay_s: float):
        self.serve, self.delay_s = serve, delay_s
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, request):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.delay_s)
        with self.lock:
            self.now -= 1
        return self.serve(request)


def test_bounded_concurrency_keeps_order(sleeps, respx_mock):
    answer = InFlight(paged([([{"id": 2 * n + 1}, {"id": 2 * n + 2}], 20, 2) for n in range(10)]), 0.02)
    respx_mock.get(BASE + "orders").mock(side_effect=answer)
    with QTicketsClient(BASE, TOKEN, sleep=sleeps, per_page=2, concurrency=3) as api:
        assert ids(api) == list(range(1, 21))
    assert 2 <= answer.peak <= 3


def test_the_next_pages_are_fetched_while_the_caller_works_on_one(sleeps, respx_mock):
    answer = InFlight(paged([([{"id": 2 * n + 1}, {"id": 2 * n + 2}], 40, 2) for n in range(20)]), 0.01)
    route = respx_mock.get(BASE + "orders").mock(side_effect=answer)
    with QTicketsClient(BASE, TOKEN, sleep=sleeps, per_page=2, concurrency=3) as api:
        pages = api.pages("orders")
        assert next(pages).number == 1  # the caller holds page 1: the next ones are fetched meanwhile
        ahead = 1 + PAGES_AHEAD * 3
        deadline = time.monotonic() + 5
        while route.call_count < ahead and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert route.call_count == ahead  # bounded: no more than PAGES_AHEAD x concurrency ahead
        assert [page.number for page in pages] == list(range(2, 21))
    assert answer.peak == 3  # never more than `concurrency` requests in flight


def test_a_request_that_never_answers_holds_neither_close_nor_the_caller(sleeps, respx_mock):
    # A stopped run (SIGTERM, Ctrl-C) must end at once, not after the request's timeout.
    hang = threading.Event()
    respx_mock.get(BASE + "orders").mock(side_effect=lambda request: hang.wait(30) and httpx.Response(500))
    api = QTicketsClient(BASE, TOKEN, sleep=sleeps, per_page=2, concurrency=2)
    try:
        pages = api.pages("orders")  # page 1 is being asked by a worker
        started = time.monotonic()
        pages.close()
        api.close()
        assert time.monotonic() - started < 1
        assert all(thread.daemon for thread in threading.enumerate() if thread.name.startswith("qtickets-"))
    finally:
        hang.set()


def test_the_next_listing_starts_once_the_one_before_asked_for_all_its_pages(sleeps, respx_mock):
    # At 2 in flight a listing asks for up to 8 pages ahead: the first one's pages 10-12 are asked late.
    serve = {"orders": paged([([{"id": 2 * n + 1}, {"id": 2 * n + 2}], 24, 2) for n in range(12)]),
             "events": paged([([{"id": 1}, {"id": 2}], 4, 2), ([{"id": 3}, {"id": 4}], 4, 2)])}
    answer = InFlight(lambda request: serve[request.url.path.rsplit("/", 1)[1]](request), 0.02)
    asked = []  # (path, page) in the order the requests left

    def leave(request):
        asked.append((request.url.path.rsplit("/", 1)[1], json.loads(request.content)["page"]))
        return answer(request)

    respx_mock.get(BASE + "orders").mock(side_effect=leave)
    respx_mock.get(BASE + "events").mock(side_effect=leave)

    def wait_for(request, seconds=5.0):
        deadline = time.monotonic() + seconds
        while request not in asked and time.monotonic() < deadline:
            time.sleep(0.01)
        return request in asked

    with QTicketsClient(BASE, TOKEN, sleep=sleeps, per_page=2, concurrency=2) as api:
        second = []
        first = api.pages("orders", asked_all=lambda: second.append(api.pages("events")))
        assert next(first).number == 1  # the caller holds page 1: pages 2-9 are asked, and no more
        assert wait_for(("orders", 9)) and not wait_for(("events", 1), 0.2) and not second
        numbers = [page.number for page in islice(first, 10)]  # up to page 11: all 12 asked
        assert second and wait_for(("events", 1))  # the next listing's page 1 left before page 12 is read
        numbers += [page.number for page in first]
        assert numbers == list(range(2, 13))
        assert [row["id"] for page in second[0] for row in page.rows] == [1, 2, 3, 4]
    assert asked.index(("events", 1)) > asked.index(("orders", 12))
    assert answer.peak == 2  # the two listings share `concurrency` requests in flight


def test_a_listing_ending_on_an_empty_page_lets_the_next_one_start(api, respx_mock):
    respx_mock.get(BASE + "orders").respond(json={"data": []})
    started = []
    assert list(api.pages("orders", asked_all=lambda: started.append(True))) == [] and started == [True]


# -- filtering and records ----------------------------------------------------------------------------


def test_refilters_when_the_server_ignores_where(api, respx_mock):
    day = datetime(2026, 11, 20, tzinfo=MSK)
    rows = [order(1, "2026-11-19T23:59:59+03:00"), order(2, "2026-11-20T00:00:00+03:00"),
            order(3, "2026-11-20T23:59:59+03:00"), order(4, "2026-11-21T00:00:00+03:00")]
    respx_mock.get(BASE + "orders").mock(side_effect=paged([(rows[:2], 4, 2), (rows[2:], 4, 2)]))
    got = [o.id for o in api.orders_between("created_at", day, day + timedelta(days=1))]
    assert got == [2, 3]
    assert wall_time(day) == "2026-11-20 00:00:00"


def test_a_dotted_or_undeclared_where_column_is_rechecked_on_the_raw_record(api, respx_mock):
    rows = [order(1, client={"id": 7}, site_id=1), order(2, client={"id": 8}, site_id=1),
            order(3, client={"id": 7}, site_id=2)]
    respx_mock.get(BASE + "orders").mock(side_effect=paged([(rows[:2], 3, 2), (rows[2:], 3, 2)]))
    where = [{"column": "client.id", "operator": "=", "value": 7},
             {"column": "site_id", "operator": "=", "value": 1}]
    assert [o.id for o in api.orders(where)] == [1]


def test_late_payments_ask_the_server_for_orders_created_before_the_window(api, respx_mock):
    day = datetime(2026, 11, 20, tzinfo=MSK)
    late = order(1, "2026-11-18T10:00:00+03:00", payed_at="2026-11-20T09:00:00+03:00")
    inside = order(2, "2026-11-20T08:00:00+03:00", payed_at="2026-11-20T09:00:00+03:00")
    route = respx_mock.get(BASE + "orders").mock(side_effect=paged([([late, inside], 2, 2)]))
    got = [o.id for o in api.orders_between("payed_at", day, day + timedelta(days=1), created_before=day)]
    assert got == [1]  # re-checked here too: a server that ignored the bound sent order 2
    where = json.loads(route.calls[0].request.content)["where"]
    assert {"column": "created_at", "operator": "<", "value": "2026-11-20 00:00:00"} in where
    assert {"column": "payed_at", "operator": ">=", "value": "2026-11-20 00:00:00"} in where


def test_a_server_ignoring_where_on_a_big_list_stops_the_read(sleeps, respx_mock):
    rows = [order(1, "2026-01-01T10:00:00+03:00"), order(2, "2026-01-01T11:00:00+03:00")]
    route = respx_mock.get(BASE + "orders").respond(json={
        "data": rows, "paging": {"perPage": 2, "currentPage": 1, "total": 126_213}})
    day = datetime(2026, 11, 20, tzinfo=MSK)
    with QTicketsClient(BASE, TOKEN, sleep=sleeps, per_page=2) as api, \
            pytest.raises(QTicketsError, match=r"ignored `where` \(2 of 2 rows.*all 126213 rows"):
        list(api.orders_between("payed_at", day, day + timedelta(days=1)))
    assert route.call_count == 1


def test_a_row_seen_twice_across_pages_is_yielded_once(api, respx_mock):
    respx_mock.get(BASE + "orders").mock(side_effect=paged([([order(1), order(2)], 4, 2),
                                                            ([order(2), order(3)], 4, 2)]))
    assert [o.id for o in api.orders()] == [1, 2, 3]


def test_malformed_record_names_id_and_field_and_keeps_the_page(respx_mock, tmp_path, sleeps):
    bad = order(7)
    bad["baskets"][0]["price"] = "lots"
    respx_mock.get(BASE + "orders").mock(side_effect=paged([([order(6), bad], 2, 2)]))
    with QTicketsClient(BASE, TOKEN, sleep=sleeps, per_page=2, rejects_dir=tmp_path / "rejects") as api:
        with pytest.raises(RecordError) as raised:
            list(api.orders())
    message = str(raised.value)
    assert "Order id=7" in message and "baskets[id=70].price" in message
    kept = list((tmp_path / "rejects").glob("*.json"))
    assert len(kept) == 1 and str(kept[0]) in message
    assert json.loads(kept[0].read_text())["data"][1]["baskets"][0]["price"] == "lots"


def test_naive_timestamp_is_rejected(api, respx_mock):
    naive = order(8, "2026-11-20T10:00:00")
    respx_mock.get(BASE + "orders").mock(side_effect=paged([([naive], 1, 2)]))
    with pytest.raises(RecordError, match=r"Order id=8: .*created_at: Value error, timestamp has no UTC"):
        list(api.orders())


def test_orders_by_ids_and_after(api, respx_mock):
    served = [order(i) for i in (3, 5, 8, 9)]

    respx_mock.get(BASE + "orders").respond(200, json={  # a server that ignores `where`
        "data": served, "paging": {"perPage": 4, "currentPage": 1, "total": 4}})
    assert [o.id for o in api.orders_by_ids([9, 5])] == [5, 9]
    assert [o.id for o in api.orders_after(5)] == [8, 9]


# -- values the client cannot parse: errors, never drops (issue 11, item 1) ---------------------------


def test_a_date_in_another_format_fails_the_read_naming_the_record_instead_of_dropping_it(
        respx_mock, tmp_path, sleeps):
    # A server (or a proxy) that answers the window with dates the contract does not allow: the client must
    # not compare the raw text with its window and silently drop every order.
    rows = [order(1, "28.11.2026 02:44:22"), order(2, "28.11.2026 02:50:00")]
    respx_mock.get(BASE + "orders").mock(side_effect=paged([(rows, 2, 2)]))
    day = datetime(2026, 11, 28, tzinfo=MSK)
    with QTicketsClient(BASE, TOKEN, sleep=sleeps, per_page=2, rejects_dir=tmp_path / "rejects") as api, \
            pytest.raises(RecordError) as raised:
        list(api.orders_between("created_at", day, day + timedelta(days=1)))
    message = str(raised.value)
    assert "Order id=1" in message and "created_at" in message
    kept = list((tmp_path / "rejects").glob("*.json"))
    assert len(kept) == 1 and str(kept[0]) in message


def test_an_unpaid_order_without_created_at_is_an_error_not_a_drop(api, respx_mock):
    # The contract says created_at is always set; staging places an order by it, so it cannot be kept.
    unpaid = order(3, payed=0, payed_at=None, created_at=None)
    respx_mock.get(BASE + "orders").mock(side_effect=paged([([order(2), unpaid], 2, 2)]))
    day = datetime(2026, 11, 20, tzinfo=MSK)
    with pytest.raises(RecordError, match=r"Order id=3: created_at"):
        list(api.orders_between("created_at", day, day + timedelta(days=1)))


def test_a_garbage_payment_date_fails_instead_of_losing_the_sale(api, respx_mock):
    late = order(4, payed_at="вчера")
    respx_mock.get(BASE + "orders").mock(side_effect=paged([([late], 1, 2)]))
    day = datetime(2026, 11, 20, tzinfo=MSK)
    with pytest.raises(RecordError, match=r"Order id=4: payed_at"):
        list(api.orders_between("payed_at", day, day + timedelta(days=1)))


# -- personal data (issue 11, item 7) -------------------------------------------------------------------

BUYER = {"email": "ivan.petrov@example.com", "details": {"name": "Иван", "surname": "Петров",
                                                         "phone": "+7 913 555-12-34"}}


@pytest.mark.parametrize("answer", [
    httpx.Response(200, content=json.dumps(
        {"data": [{"client": BUYER, **order(1)}], "paging": {"total": 1}}).encode()[:-20],
        headers={"Content-Type": "application/json"}),
    httpx.Response(500, json={"error": "order of ivan.petrov@example.com, +7 913 555-12-34 failed"}),
    httpx.Response(200, json={"rows": [{"client": BUYER, **order(1)}]}),
], ids=["truncated-page", "error-text", "no-envelope"])
def test_errors_describe_an_answer_without_quoting_buyers_data(sleeps, respx_mock, answer):
    respx_mock.get(BASE + "orders").respond(answer.status_code, content=answer.content,
                                            headers=dict(answer.headers))
    with QTicketsClient(BASE, TOKEN, sleep=sleeps, retry=RetryPolicy(max_attempts=2)) as api, \
            pytest.raises(QTicketsError) as raised:
        api.request("orders")
    message = str(raised.value)
    assert "GET orders" in message and re.search(r"\d+ bytes of application/json", message)
    for personal in ("ivan.petrov", "example.com", "Иван", "Петров", "555-12-34", "913"):
        assert personal not in message, message


def test_kept_pages_are_owner_only_and_removed_after_the_retention_period(respx_mock, tmp_path, sleeps):
    from qtickets_assets.qtickets.resource import QTicketsResource

    bad = order(7, client=BUYER)
    bad["baskets"][0]["quantity"] = -1
    respx_mock.get(BASE + "orders").mock(side_effect=paged([([bad], 1, 2)]))
    with QTicketsClient(BASE, TOKEN, sleep=sleeps, rejects_dir=tmp_path) as api, \
            pytest.raises(RecordError, match=r"Order id=7: baskets\[id=70\]\.quantity"):
        list(api.orders())
    (fresh,) = tmp_path.glob("*.json")
    assert fresh.stat().st_mode & 0o777 == 0o600
    old = tmp_path / "20260101T000000000000Z-orders-page1.json"
    old.write_text("{}")
    fifteen_days_ago = time.time() - 15 * 86_400
    os.utime(old, (fifteen_days_ago, fifteen_days_ago))
    # Each run's start prunes the pages older than the retention period (default 14 days).
    with dg.build_resources({"qtickets": QTicketsResource(rejects_dir=str(tmp_path))}):
        pass
    assert list(tmp_path.glob("*.json")) == [fresh]
