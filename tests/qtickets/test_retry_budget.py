"""The retry budget grows with the work (issue 11 item 5): long reads complete at a steady fault rate, and
a dead or mostly failing API still fails the run fast, with a message that says so. In-process sandbox
with injected faults, no real sleeps."""

from datetime import date, datetime, timedelta

import httpx
import pytest

from qtickets_assets.qtickets.client import MSK, QTicketsClient, QTicketsError, RetryPolicy, current_shows
from qtickets_assets.sandbox import KINDS, SANDBOX_BASE_URL, SANDBOX_TOKEN, Faults, Sandbox
from tests.builders import AS_OF

# The budget before issue 11: 30 retries per run whatever its length (and 6 attempts per request).
FIXED = RetryPolicy(max_attempts=6, earned_per_answer=0, earned_s_per_answer=0)


DEFAULT = RetryPolicy()


def load(days: int, rate: float, policy: RetryPolicy = DEFAULT, seed: int = 1,
         per_page: int = 10) -> tuple[int, int, int]:
    """A `load` of `days` Moscow days through the client (orders created and paid, events, seat maps)
    at a fault rate: (orders, requests, retries). Small pages, so that a short test makes many requests."""
    faults = Faults(rate, KINDS, seed=seed, slow_s=0, retry_after_s=0)
    sandbox = Sandbox(seed=42, opened_on=date(2026, 9, 1), orders_per_day=40, clock=lambda: AS_OF,
                      faults=faults)
    end = datetime.combine(AS_OF.date(), datetime.min.time(), MSK)
    start = end - timedelta(days=days)
    with QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN, transport=sandbox.transport(), per_page=per_page,
                        retry=policy, sleep=lambda s: None) as api:
        orders = [o.id for o in api.orders_between("created_at", start, end)]
        orders += [o.id for o in api.orders_between("payed_at", start, end, created_before=start)]
        shows = [show.id for _, show in current_shows(api.events(), AS_OF)]
        assert len(list(api.seats_of(shows))) == len(shows) > 10
        return len(orders), api.requests_made, api.budget.retries


@pytest.mark.slow
def test_a_60_day_backfill_completes_at_10_percent_faults():
    clean, _, _ = load(60, 0.0, per_page=5)
    orders, requests, retries = load(60, 0.1, per_page=5)
    assert orders == clean > 2000 and retries > 30 and requests > 500
    with pytest.raises(QTicketsError, match="retry budget"):  # what the fixed budget did
        load(60, 0.1, FIXED, per_page=5)


@pytest.mark.slow
def test_a_20_day_load_completes_at_30_percent_faults():
    clean, _, _ = load(20, 0.0)
    orders, requests, retries = load(20, 0.3)
    assert orders == clean > 700 and retries > 30
    with pytest.raises(QTicketsError, match="retry budget"):
        load(20, 0.3, FIXED)


def test_an_api_that_fails_more_than_it_answers_drains_the_budget_and_fails_clearly(respx_mock):
    calls = []

    def three_failures_per_answer(request):  # a 75% fault rate: each request answers at its 4th attempt
        calls.append(request)
        return httpx.Response(200, json={"data": []}) if len(calls) % 4 == 0 else httpx.Response(502)

    respx_mock.get(SANDBOX_BASE_URL + "events").mock(side_effect=three_failures_per_answer)
    with QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN, sleep=lambda s: None) as api:
        with pytest.raises(QTicketsError, match=r"GET events: HTTP 502.*retry budget \(30 retries, 300 s "
                                                r"more .*\) is spent: the API looks down"):
            for _ in range(100):
                api.request("events")
    # 30 retries, plus one earned back per answer: it spends 3 per answer, so it lasts ~15 requests.
    assert 40 < len(calls) < 70 and api.budget.retries == len(calls) - len(calls) // 4 - 1


def test_a_dead_api_fails_the_first_request_after_its_attempts_and_the_rest_at_once(respx_mock):
    events = respx_mock.get(SANDBOX_BASE_URL + "events").mock(side_effect=httpx.ConnectError("refused"))
    orders = respx_mock.get(SANDBOX_BASE_URL + "orders").mock(side_effect=httpx.ConnectError("refused"))
    waits: list[float] = []
    with QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN, sleep=waits.append) as api:
        with pytest.raises(QTicketsError, match=r"GET events: transport error .*gave up after 8 attempts"):
            list(api.events())
        assert events.call_count == 8 and sum(waits) < 95  # about a minute of backoff, then the run fails
        # The run's other requests (its next steps) fail at their first failure, not after another minute.
        with pytest.raises(QTicketsError, match=r"GET orders: .*retry budget .* is spent"):
            list(api.orders())
    assert orders.call_count == 1 and len(waits) == 7
