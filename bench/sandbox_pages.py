"""The sandbox answers a page in time proportional to the page, not to the history.

In-process (`Sandbox.handle`, no network), two account sizes (--sizes, orders of history ending now),
each under a frozen clock and under the real clock, three listings: every order (dlt's request), the
orders created in the last two days (a tick's), and the orders created before those days and paid in them
(the late-payment pass). For each: the first page (it builds the filtered listing) and the median of the
next --pages pages, in ms. `ratio` = the larger account's median page over the smaller one's: about 1
when a page costs its size, about the size ratio when it costs the history.

    .venv/bin/python bench/sandbox_pages.py --sizes 20000,200000
    .venv/bin/python bench/sandbox_pages.py --smoke
"""

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

import httpx
from common import load

from qtickets_assets.qtickets.client import wall_time
from qtickets_assets.qtickets.query import MSK
from qtickets_assets.sandbox import SANDBOX_BASE_URL, SANDBOX_TOKEN, Sandbox

PER_DAY = 2_000
LISTINGS = ("all", "window", "paid_late")


def listings(now: datetime) -> dict[str, list[dict]]:
    start = datetime.combine(now.astimezone(MSK).date() - timedelta(days=1), datetime.min.time(), MSK)
    window = [{"column": "created_at", "operator": ">=", "value": wall_time(start)},
              {"column": "created_at", "operator": "<", "value": wall_time(now + timedelta(days=1))}]
    paid_late = [{"column": "payed_at", "operator": ">=", "value": wall_time(start)},
                 {"column": "payed_at", "operator": "<", "value": wall_time(now + timedelta(days=1))},
                 {"column": "created_at", "operator": "<", "value": wall_time(start)}]
    return {"all": [], "window": window, "paid_late": paid_late}


def page_ms(box: Sandbox, where: list[dict], page: int) -> tuple[float, int]:
    body = {"where": where, "orderBy": {"id": "asc"}, "page": page, "perPage": 100}
    request = httpx.Request("GET", SANDBOX_BASE_URL + "orders", json=body,
                            headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"})
    started = time.perf_counter()
    response = box.handle(request)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text[:200]
    return elapsed, len(json.loads(response.content)["data"])


def measure(size: int, frozen: bool, pages: int) -> dict:
    days = max(2, size // PER_DAY)
    now = datetime.now(UTC)
    opened_on = (now.astimezone(MSK) - timedelta(days=days)).date()
    box = Sandbox(opened_on=opened_on, orders_per_day=PER_DAY, event_every_days=0.25,
                  clock=(lambda: now) if frozen else None)
    history = len(box.account.orders_until(now))  # plans the account: not timed
    result: dict = {"history_orders": history}
    for name, where in listings(now).items():
        first, rows = page_ms(box, where, 1)
        rest = [page_ms(box, where, n)[0] for n in range(2, pages + 2)]
        result[name] = {"first_page_ms": round(first, 2), "page_ms_median": round(statistics.median(rest), 2),
                        "first_page_rows": rows}
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,200000", help="two history sizes, orders")
    parser.add_argument("--pages", type=int, default=10, help="pages timed after the first")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.pages = "2000,6000", 3
    small, large = map(int, args.sizes.split(","))
    report: dict = {"loadavg": [load()]}
    for clock in ("frozen", "real"):
        runs = {size: measure(size, clock == "frozen", args.pages) for size in (small, large)}
        report[clock] = {str(size): run for size, run in runs.items()}
        medians = {size: {name: max(run[name]["page_ms_median"], 1e-3) for name in LISTINGS}
                   for size, run in runs.items()}
        report[clock]["ratio"] = {name: round(medians[large][name] / medians[small][name], 2)
                                  for name in medians[large]}
    report["loadavg"].append(load())
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
