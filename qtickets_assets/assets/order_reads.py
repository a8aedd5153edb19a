"""Which orders one run of the orders staging reads, and why (ARCHITECTURE.md §1).

1. created in the partition window: the window's own orders (the write replaces the window);
2. paid in the window but created before it: a late payment reaches the fact of its payment day;
3. changed since the watermark (`updated_at >= watermark - overlap`), whatever their creation day:
   cancellations and payments of older orders; the watermark is the newest `order_updated_at` in staging;
4. pushed by webhooks: pending order ids, re-read by id (refunds and basket changes do not move
   `updated_at`, qtickets_api.md §10.1).

Each order is read once, in that order: the watermark read comes after the windows, so the newest
`updated_at` a run lands is never later than that read. (Each of the listings 1-3 starts as soon as the
one before has asked for all its pages, while its last answers are awaited: the overlap covers answers
that arrive a little after the next read started, not a read started long before the others ended.)
Orders created outside the window (2-4) are replaced in full by the write (`outside`), and so is a hooked
id the API answers with 404 (`gone`: the order no longer exists for this account, so its rows are
tombstoned).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg

from ..qtickets.client import QTicketsClient, wall_time
from ..qtickets.models import Order
from .id_set import IdSet


@dataclass
class OrderReads:
    window: dg.TimeWindow
    changed_since: datetime | None = None  # watermark - overlap; None: nothing landed yet
    hook_ids: list[int] = field(default_factory=list)
    outside: set[int] = field(default_factory=set)  # ids created outside the window, found or gone
    gone: set[int] = field(default_factory=set)  # hooked ids the API answers with 404
    counts: Counter = field(default_factory=Counter)  # orders per reason
    _seen: IdSet = field(default_factory=IdSet)  # every id read; ~8 bytes an id (1.2M ids: ~10 MB, not ~100)

    def orders(self, client: QTicketsClient) -> Iterator[Order]:
        start, end = self.window.start, self.window.end
        listings: dict[str, Listing] = {
            "created": lambda then: client.orders_between("created_at", start, end, asked_all=then),
            # Created inside the window: already in `created`; the server is asked for the others only.
            "paid_late": lambda then: client.orders_between("payed_at", start, end, created_before=start,
                                                            asked_all=then),
        }
        if (since := self.changed_since) is not None:
            changed = [{"column": "updated_at", "operator": ">=", "value": wall_time(since)}]
            listings["changed"] = lambda then: (
                o for o in client.orders(changed, asked_all=then) if o.updated_at >= since)
        for reason, orders in in_turn(listings):
            yield from self._once(reason, orders)
        wanted = [order_id for order_id in self.hook_ids if order_id not in self._seen]
        yield from self.by_ids(client, wanted, "hooked")
        for order_id in wanted:
            if order_id in self._seen:
                continue
            # Missing from the list answer: ask for it alone; only a 404 means it is gone.
            order = client.order(order_id)
            if order is None:
                self.gone.add(order_id)
                self.outside.add(order_id)
            else:
                yield from self._once("hooked", [order])

    def by_ids(self, client: QTicketsClient, ids: list[int], reason: str) -> Iterator[Order]:
        """These orders as the API has them now (`per_page` ids a request); ids it does not list are left
        out. Also used by the capacity repair (assets/repair.py)."""
        yield from self._once(reason, client.orders_by_ids(ids))

    def _once(self, reason: str, orders: Iterable[Order]) -> Iterator[Order]:
        start, end = self.window.start, self.window.end
        for order in orders:
            if order.id in self._seen:
                continue
            self._seen.add(order.id)
            if not start <= order.created_at < end:
                self.outside.add(order.id)
            self.counts[reason] += 1
            yield order

    def summary(self) -> str:
        counts = ", ".join(f"{n} {reason}" for reason, n in self.counts.items())
        gone = f", {len(self.gone)} gone (404)" if self.gone else ""
        return f"{sum(self.counts.values())} orders ({counts or 'none'}{gone})"


# A listing started by the call, given what to call once it has asked for all its pages.
Listing = Callable[[Callable[[], None]], Iterator[Order]]


def in_turn(listings: dict[str, Listing]) -> Iterator[tuple[str, Iterator[Order]]]:
    """(name, orders) of each listing, in the given order; each listing starts (its first request is asked
    for) when the one before has asked for all its pages, so its first answer is awaited together with the
    other's last ones instead of after them."""
    names = list(listings)
    started: list[Iterator[Order] | None] = [None] * len(names)

    def starter(i: int) -> Callable[[], None]:
        def start() -> None:
            if i < len(names) and started[i] is None:
                started[i] = listings[names[i]](starter(i + 1))
        return start

    for i, name in enumerate(names):
        starter(i)()  # a no-op when the listing before started it
        yield name, started[i]
