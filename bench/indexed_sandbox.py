"""The sandbox on a local port for the big bench runs, with one server-side shortcut.

`Sandbox._orders` filters the whole matching slice of the account for every page it serves (O(n) a page,
O(n^2) a listing): past ~20k orders the server, not the client, is what gets measured. Here the filtered
list is kept per (clock, where, order) - a frozen clock gives the same list for every page of a listing -
and only the asked page is rendered, as the product's sandbox does. Answers are the same, byte for byte:
the plans are filtered with the same `matches(plan_fields(...))` and paged by the same `_list`.
Proposed for qtickets_assets/qtickets/sandbox.py itself (bench/README.md).

    python bench/indexed_sandbox.py --port 8765 --event-every-days 0.25   # settings from the environment
"""

import argparse
import json
from collections import OrderedDict
from datetime import datetime
from typing import Any

from qtickets_assets.qtickets.query import matches
from qtickets_assets.qtickets.sandbox import PLAN_COLUMNS, Sandbox, plan_fields, render_order
from qtickets_assets.qtickets.server import SandboxServer
from qtickets_assets.settings import get_settings


class IndexedSandbox(Sandbox):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._listings: OrderedDict[tuple, list] = OrderedDict()

    def _orders(self, now: datetime, where: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
        order_by = body.get("orderBy") or {"id": "asc"}
        if not (all(c.get("column") in PLAN_COLUMNS for c in where) and list(order_by) == ["id"]):
            return super()._orders(now, where, body)
        key = (now, json.dumps(where, sort_keys=True), order_by["id"])
        plans = self._listings.get(key)
        if plans is None:
            plans = [p for p in self.account.orders_until(now) if matches(plan_fields(p, now), where)]
            self._listings[key] = plans[::-1] if order_by["id"] == "desc" else plans
            while len(self._listings) > 16:
                self._listings.popitem(last=False)
        return self._list("orders", self._listings[key], body, render=lambda p: render_order(p, now))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--event-every-days", type=float, default=4.0)
    args = parser.parse_args()
    settings = get_settings()
    as_of = settings.qtickets_sandbox_as_of
    sandbox = IndexedSandbox(
        seed=settings.qtickets_sandbox_seed, opened_on=settings.qtickets_partitions_start,
        orders_per_day=settings.qtickets_sandbox_orders_per_day, clock=(lambda: as_of) if as_of else None,
        event_every_days=args.event_every_days)
    server = SandboxServer(sandbox, "127.0.0.1", args.port)
    print(f"sandbox QTickets API at {server.base_url} (indexed listings)", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
