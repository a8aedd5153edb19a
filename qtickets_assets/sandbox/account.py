"""A deterministic simulator of the QTickets REST API (qtickets_api.md §16).

The account's state at instant T is a pure function of (seed, T): every process that builds a sandbox
with the same seed sees the same account, and sales keep arriving as the real clock moves. Orders are
planned day by day from the opening date (their whole life: payment, expiry, cancellation, refunds,
entry scans) and rendered "as of T", so later changes appear only once T passes them. Refunds and scans
change baskets without bumping `order.updated_at`, as the real API does. Days are planned lazily, once
per process, so a large account costs only what a caller reads.

The sandbox also knows its ground truth (`expected_sales_daily`, `expected_inventory`,
`expected_dim_events`): ARCHITECTURE.md §4 applied to the account as of T, computed from the plans
rather than from the HTTP answers, so tests compare the warehouse with exact, independent numbers.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import httpx

from ..qtickets.query import MSK, matches, parse_instant, project, select_tree
from .faults import Faults

log = logging.getLogger(__name__)
SANDBOX_TOKEN = "sandbox-token"
SANDBOX_BASE_URL = "https://sandbox.qtickets.invalid/api/rest/v1/"
DEFAULT_PAGE_SIZE = {"orders": 50, "events": 10, "clients": 100, "discounts": 100, "promo-codes": 500}
MAX_PAGE_SIZE = 1000  # the real maximum is unknown (qtickets_api.md §2.1); larger requests are clamped
SHOW_LENGTH = timedelta(hours=2)
# Every order-level timestamp lies within this span after creation: payment before reserved_to (<= 3
# days), expiry 15 min after it, a paid order's cancellation <= 5 days after payment.
ORDER_LIFETIME = timedelta(days=9)
RESPONSE_HEADERS = {"Server": "nginx/1.14.1", "Cache-Control": "no-cache, private", "X-Cache-Status": "MISS",
                    "Strict-Transport-Security": "max-age=31536000", "Vary": "Accept-Encoding"}

CITIES = [
    (1, "Москва", "Europe/Moscow"),
    (2, "Санкт-Петербург", "Europe/Moscow"),
    (3, "Новосибирск", "Asia/Novosibirsk"),
    (4, "Томск", "Asia/Tomsk"),
    (5, "Екатеринбург", "Asia/Yekaterinburg"),
    (6, "Калининград", "Europe/Kaliningrad"),
]
VENUES = ["ДК Горького", "Клуб Космос", "Театр на Набережной", "Арена Север", "Зал Филармонии"]
TITLES = ["Щелкунчик", "Стендап вечер", "Джаз у реки", "Рок-фест", "Лебединое озеро", "Лекция о космосе",
          "Симфония №5", "Импровизация", "Кино под звёздами", "Хор Турецкого", "Мастер и Маргарита"]
# Tariffs ("multiprice"): one physical seat is offered once per tariff (qtickets_api.md §7).
TARIFFS = {"full": ("Полный", 100), "child": ("Детский", 50), "student": ("Студенческий", 70)}
SEATS_PER_ROW, VIP_ROWS = 20, 5


def fmt(value: datetime | None) -> str | None:
    """The API's timestamp format: Moscow offset, seconds precision."""
    return None if value is None else value.astimezone(MSK).strftime("%Y-%m-%dT%H:%M:%S%z")[:-2] + ":00"


# ---------------------------------------------------------------------------------------------- account


@dataclass(frozen=True, slots=True)
class Seat:
    """A physical seat (reserved seating) or a general-admission category, and its tariffs."""

    root_id: str
    zone: str
    row: int
    place: int
    max_quantity: int
    price: int
    admission: bool
    tariffs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ShowPlan:
    id: int
    event_id: int
    start: datetime
    capacity: int
    seated: bool
    prices: tuple[int, ...]
    deleted_at: datetime | None = None

    @property
    def finish(self) -> datetime:
        return self.start + SHOW_LENGTH

    def seat(self, n: int) -> Seat:
        """The n-th seat sold (1-based); GA shows sell one category of `capacity` places."""
        if not self.seated:
            return Seat("dancefloor-1;1", "DANCEFLOOR", 1, 1, self.capacity, self.prices[0], True,
                        ("full", "student"))
        row, place = (n - 1) // SEATS_PER_ROW + 1, (n - 1) % SEATS_PER_ROW + 1
        vip = row <= VIP_ROWS
        zone = "VIP" if vip else "PARTERRE"
        return Seat(f"{zone}-{row};{place}", zone, row, place, 1, self.prices[-1 if vip else 0], False,
                    ("full",) if vip else ("full", "child"))

    def seats(self) -> Iterator[Seat]:
        yield from (self.seat(n) for n in range(1, (self.capacity if self.seated else 1) + 1))


@dataclass(frozen=True, slots=True)
class EventPlan:
    id: int
    name: str
    city: tuple[int, str, str]
    venue: str
    created_at: datetime
    deleted_at: datetime | None
    shows: tuple[ShowPlan, ...]


@dataclass(slots=True)
class BasketPlan:
    id: int
    show_id: int
    seat_id: str
    multiprice_code: str
    price: int
    original_price: int
    refunded_at: datetime | None = None
    refunded_amount: int = 0
    checked_at: datetime | None = None
    refund_hooked: bool = True  # False: the vendor's webhook for the refund was lost (a Resale)


@dataclass(frozen=True, slots=True)
class Resale:
    """At `at`, `refunds` tickets of the show's oldest orders paid 2+ days earlier are refunded and the show
    is then sold out, the freed seats included: the seat of a stale older sale is sold again (issue 16).
    The refunds send no webhook (a lost hook) and, as every refund, do not move `order.updated_at`.
    Written `SHOW_ID@ISO_INSTANT` (QTICKETS_SANDBOX_RESALES, comma-separated)."""

    show_id: int
    at: datetime
    refunds: int = 4

    @classmethod
    def parse(cls, text: str) -> Resale:
        show, _, at = text.strip().partition("@")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError(f"resale {text!r}: the instant needs an offset")
        return cls(int(show), moment.replace(microsecond=0))


def parse_resales(text: str) -> tuple[Resale, ...]:
    return tuple(Resale.parse(part) for part in text.split(",") if part.strip())


@dataclass(slots=True)
class OrderPlan:
    id: int
    event_id: int
    created_at: datetime
    reserved_to: datetime
    payed_at: datetime | None
    deleted_at: datetime | None  # expiry of an unpaid order, or cancellation of a paid one
    utm_source: str | None
    baskets: list[BasketPlan] = field(default_factory=list)

    def live_as_of(self, now: datetime) -> bool:
        return self.created_at <= now and (self.deleted_at is None or self.deleted_at > now)

    def paid_as_of(self, now: datetime) -> bool:
        return self.payed_at is not None and self.payed_at <= now


class Account:
    """Everything that ever happens in the sandbox account, planned from the seed, one day at a time."""

    def __init__(self, seed: int, opened_on: date, orders_per_day: int, event_every_days: float = 4.0,
                 horizon_days: int = 1100, resales: tuple[Resale, ...] = ()):
        self.seed, self.opened_on, self.orders_per_day = seed, opened_on, orders_per_day
        self.resales = tuple(sorted(resales, key=lambda r: r.at))
        self.event_every_days = event_every_days
        self.opened_at = datetime.combine(opened_on, time(), MSK)
        self.horizon_days = horizon_days
        self.events = self._plan_events()
        self.events_by_id = {event.id: event for event in self.events}
        self.shows = {show.id: show for event in self.events for show in event.shows}
        self._lock = threading.Lock()
        self._planned_days = 0
        self._orders: list[OrderPlan] = []  # all planned days, in id (= creation) order
        self._created: list[datetime] = []  # their creation times, for bisect
        self._ids: list[int] = []
        self._by_show: dict[int, list[tuple[OrderPlan, BasketPlan]]] = defaultdict(list)
        self._next_order_id, self._next_basket_id = 1_000_001, 50_000_001
        self._sold: dict[int, int] = defaultdict(int)  # show id -> seats allocated (never released)

    def _plan_events(self) -> list[EventPlan]:
        """A dozen events on sale at opening, then a new one every `event_every_days` for the horizon."""
        rng = random.Random(f"{self.seed}:events")
        events, show_id = [], 300_001
        created = self.opened_at - timedelta(days=30)
        count = 12 + int(self.horizon_days / self.event_every_days)
        for index in range(count):
            if index >= 12:
                created = self.opened_at + timedelta(days=(index - 12) * self.event_every_days,
                                                     hours=rng.randint(9, 18))
                created = created.replace(microsecond=0)
            event_id = 24_001 + index * 7
            shows = []
            for number in range(rng.randint(1, 4)):
                start_day = rng.randint(10, 120) if index >= 12 else rng.randint(0, 90)
                start = datetime.combine(created.date() + timedelta(days=start_day), time(19, 0), MSK)
                start -= timedelta(hours=rng.choice([0, 0, 5]))  # matinees
                seated = rng.random() < 0.6
                capacity = rng.choice([300, 500, 800]) if seated else rng.choice([400, 1200])
                prices = tuple(sorted(rng.sample([900, 1500, 2200, 3000, 4500], 2)))
                # Now and then a show is called off (soft-deleted) ten days after the event went on sale.
                deleted = created + timedelta(days=10) if number == 1 and index % 9 == 4 else None
                shows.append(ShowPlan(show_id, event_id, start, capacity, seated, prices, deleted))
                show_id += 1
            deleted = created + timedelta(days=50) if index % 40 == 5 else None
            events.append(
                EventPlan(event_id, f"{TITLES[index % len(TITLES)]} #{index + 1}",
                          CITIES[index % len(CITIES)], VENUES[index % len(VENUES)], created, deleted,
                          tuple(shows))
            )
        return events

    # -- lazy planning ---------------------------------------------------------------------------------

    def _plan_through(self, moment: datetime) -> None:
        day_index = min((moment.astimezone(MSK).date() - self.opened_on).days, self.horizon_days)
        if self._planned_days > day_index:
            return
        with self._lock:  # the in-process server answers from threads
            while self._planned_days <= day_index:
                for order in self._plan_day(self._planned_days):
                    self._orders.append(order)
                    self._created.append(order.created_at)
                    self._ids.append(order.id)
                    for basket in order.baskets:
                        self._by_show[basket.show_id].append((order, basket))
                self._planned_days += 1

    def orders_until(self, moment: datetime) -> list[OrderPlan]:
        """Orders created up to `moment`, in id (= creation) order."""
        self._plan_through(moment)
        return self._orders[: bisect_right(self._created, moment)]

    def orders_slice(self, now: datetime, created_from: datetime | None, created_to: datetime | None,
                     id_from: int | None, id_to: int | None) -> list[OrderPlan]:
        """Orders created up to `now`, narrowed by index bounds (the server's indexes)."""
        self._plan_through(now)
        lo, hi = 0, bisect_right(self._created, now)
        if created_from is not None:
            lo = max(lo, bisect_left(self._created, created_from))
        if created_to is not None:
            hi = min(hi, bisect_right(self._created, created_to))
        if id_from is not None:
            lo = max(lo, bisect_left(self._ids, id_from))
        if id_to is not None:
            hi = min(hi, bisect_right(self._ids, id_to))
        return self._orders[lo:hi] if lo < hi else []

    def order(self, order_id: int, now: datetime) -> OrderPlan | None:
        self._plan_through(now)
        i = bisect_left(self._ids, order_id)
        if i < len(self._ids) and self._ids[i] == order_id and self._created[i] <= now:
            return self._orders[i]
        return None

    def baskets_of_show(self, show_id: int, now: datetime) -> list[tuple[OrderPlan, BasketPlan]]:
        self._plan_through(now)
        return [(o, b) for o, b in self._by_show.get(show_id, ()) if o.created_at <= now]

    def _sellable(self, show: ShowPlan, moment: datetime) -> bool:
        return (show.start > moment + timedelta(hours=1) and self._sold[show.id] < show.capacity
                and (show.deleted_at is None or show.deleted_at > moment))

    def _on_sale(self, event: EventPlan, moment: datetime) -> bool:
        return (event.deleted_at is None or event.deleted_at > moment) and any(
            self._sellable(s, moment) for s in event.shows)

    def _plan_day(self, day_index: int) -> list[OrderPlan]:
        rng = random.Random(f"{self.seed}:day:{day_index}")
        day_start = self.opened_at + timedelta(days=day_index)
        # Sales follow a weekly rhythm; the rng draws make every day different but reproducible.
        weekday_factor = 1.3 if day_start.weekday() in (4, 5) else 1.0
        count = max(0, round(rng.gauss(self.orders_per_day * weekday_factor, self.orders_per_day * 0.15)))
        moments = sorted(day_start + timedelta(seconds=rng.randrange(86_400)) for _ in range(count))
        # Events that may sell today, by creation time. Within a day time only moves forward and seats are
        # never released, so an event found closed stays closed: drop it (rejection sampling, O(1) a sale).
        candidates = [e for e in self.events if e.created_at < day_start + timedelta(days=1)
                      and self._on_sale(e, max(day_start, e.created_at))]
        created_at = [e.created_at for e in candidates]
        orders = []
        resales = [r for r in self.resales if day_start <= r.at < day_start + timedelta(days=1)]
        for created in moments:
            while resales and resales[0].at <= created:  # orders stay in creation order
                orders += self._resell(resales.pop(0), orders)
            event = None
            while (k := bisect_right(created_at, created)) > 0:
                i = rng.randrange(k)
                if self._on_sale(candidates[i], created):
                    event = candidates[i]
                    break
                del candidates[i], created_at[i]
            if event is not None:
                orders.append(self._plan_order(rng, event, created))
        for resale in resales:
            orders += self._resell(resale, orders)
        return orders

    def _resell(self, resale: Resale, today: list[OrderPlan]) -> list[OrderPlan]:
        """Refund the oldest tickets of the show paid 2+ days before (no hook), then sell every seat free at
        that instant (the freed ones too) in orders of up to 4 tickets, paid at once. Earlier days are
        planned, so their orders are known; `today` holds this day's orders so far."""
        show, at = self.shows[resale.show_id], resale.at
        refunded = 0
        for order, basket in self._by_show[show.id]:
            if refunded == resale.refunds:
                break
            if (order.payed_at is not None and order.payed_at <= at - timedelta(days=2)
                    and order.deleted_at is None and basket.refunded_at is None):
                basket.refunded_at, basket.refunded_amount, basket.checked_at = at, basket.price, None
                basket.refund_hooked = False
                refunded += 1
        taken: dict[str, int] = defaultdict(int)  # root_id -> tickets of live orders at `at`
        baskets = [*self._by_show[show.id],
                   *((o, b) for o in today for b in o.baskets if b.show_id == show.id)]
        for order, basket in baskets:
            if order.live_as_of(at) and (basket.refunded_at is None or basket.refunded_at > at):
                taken[basket.seat_id] += 1
        free = [seat for seat in show.seats() for _ in range(seat.max_quantity - taken[seat.root_id])]
        self._sold[show.id] = show.capacity  # the planner sells no more of it
        orders = []
        for start in range(0, len(free), 4):
            order = OrderPlan(self._next_order_id, show.event_id, at, at + timedelta(days=1), at, None, None)
            self._next_order_id += 1
            for seat in free[start:start + 4]:
                order.baskets.append(
                    BasketPlan(self._next_basket_id, show.id, seat.root_id, "full", seat.price, seat.price))
                self._next_basket_id += 1
            orders.append(order)
        return orders

    def _plan_order(self, rng: random.Random, event: EventPlan, created: datetime) -> OrderPlan:
        order_id = self._next_order_id
        self._next_order_id += rng.randint(1, 3)  # ids are shared with other organisers: gaps
        long_reserve = rng.random() < 0.1
        reserved_to = created + timedelta(days=3 if long_reserve else 1)
        fate = rng.random()
        payed_at = deleted_at = None
        if fate < 0.78:
            lag = rng.choice([
                timedelta(minutes=rng.randint(2, 20)),
                timedelta(minutes=rng.randint(2, 20)),
                timedelta(hours=rng.randint(1, 12)),
                timedelta(minutes=rng.randint(60, int((reserved_to - created).total_seconds() // 60) - 1)),
            ])
            payed_at = created + lag
            if rng.random() < 0.02:
                deleted_at = payed_at + timedelta(days=rng.randint(1, 5))
        else:
            deleted_at = reserved_to + timedelta(minutes=15)
        order = OrderPlan(order_id, event.id, created, reserved_to, payed_at, deleted_at,
                          rng.choice([None, None, "yandex", "vk", "telegram"]))
        shows = [s for s in event.shows if self._sellable(s, created)]
        picked = [rng.choice(shows)]
        if len(shows) > 1 and rng.random() < 0.05:  # one order, several shows of the same event
            picked.append(rng.choice([s for s in shows if s is not picked[0]]))
        for show in picked:
            for _ in range(min(rng.choice([1, 1, 2, 2, 2, 3, 4]), show.capacity - self._sold[show.id])):
                self._sold[show.id] += 1
                seat = show.seat(self._sold[show.id])
                tariff = seat.tariffs[-1] if len(seat.tariffs) > 1 and rng.random() < 0.15 else "full"
                original = seat.price * TARIFFS[tariff][1] // 100
                price = original - (original // 10 if rng.random() < 0.1 else 0)
                basket = BasketPlan(self._next_basket_id, show.id, seat.root_id, tariff, price, original)
                self._next_basket_id += 1
                if payed_at is not None and deleted_at is None and rng.random() < 0.04:
                    lag = timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 600))
                    basket.refunded_at = payed_at + lag
                    basket.refunded_amount = price if rng.random() < 0.7 else price * 9 // 10
                if payed_at is not None and rng.random() < 0.8:
                    basket.checked_at = show.start - timedelta(minutes=rng.randint(0, 60))
                order.baskets.append(basket)
        return order


@cache
def shared_account(seed: int, opened_on: date, orders_per_day: int, event_every_days: float = 4.0,
                   resales: tuple[Resale, ...] = ()) -> Account:
    """Accounts are pure functions of their arguments: plan each once per process."""
    return Account(seed, opened_on, orders_per_day, event_every_days, resales=resales)


# ------------------------------------------------------------------------------------------- rendering


def _seen(moment: datetime | None, now: datetime) -> datetime | None:
    return moment if moment is not None and moment <= now else None


def render_client(client_id: int) -> dict[str, Any]:
    return {"id": client_id, "email": f"buyer{client_id}@example.com",
            "details": {"id": client_id, "name": None, "middlename": None, "surname": None, "phone": None,
                        "vk_id": None, "facebook_id": None}}


def render_order(order: OrderPlan, now: datetime) -> dict[str, Any]:
    """The order exactly as GET orders would show it at `now`."""
    payed_at = _seen(order.payed_at, now)
    deleted_at = _seen(order.deleted_at, now)
    updated_at = max(m for m in (order.created_at, payed_at, deleted_at) if m is not None)
    baskets = []
    for b in order.baskets:
        refunded_at, checked_at = _seen(b.refunded_at, now), _seen(b.checked_at, now)
        basket_updated = max(m for m in (updated_at, refunded_at, checked_at) if m is not None)
        live = deleted_at is None
        baskets.append({
            "id": b.id, "show_id": b.show_id, "series": f"88{order.event_id}",
            "barcode": f"87{b.id:011d}" if payed_at and live and not refunded_at else None,
            "seat_id": b.seat_id, "seat_name": b.seat_id.replace("-", ": ряд ").replace(";", ", место "),
            "original_price": b.original_price, "ticket_original_price": b.original_price,
            "price": b.price, "discount_value": b.original_price - b.price,
            "ticket_amount": b.price if live else 0, "service_fee_amount": 0,
            "multiprice_code": None if b.multiprice_code == "full" else b.multiprice_code, "quantity": 1,
            "client_email": None, "client_phone": None, "client_name": None,
            "related_baskets": [], "services": [], "refunds": [],
            "checked_at": fmt(checked_at if live else None),
            "created_at": fmt(order.created_at), "updated_at": fmt(basket_updated),
            "deleted_at": fmt(deleted_at),
            "refunded_at": fmt(refunded_at),
            "refunded_amount": b.refunded_amount if refunded_at else None,
            "refunded_deduction_amount": 0 if refunded_at else None,
        })
    return {
        "id": order.id, "uniqid": f"{order.id * 7919 % 36**10:010x}"[-10:], "payed": payed_at is not None,
        "payed_at": fmt(payed_at), "created_at": fmt(order.created_at), "updated_at": fmt(updated_at),
        "deleted_at": fmt(deleted_at), "client_id": order.id % 9973, "client": render_client(order.id % 9973),
        "site_id": 1, "site": {"id": 1, "host": "example.qtickets.events"}, "payment_id": 1,
        "payment_type_id": "card" if order.id % 5 else str(1_000_000 + order.id % 9),
        "reserved": 0, "reserve_extended": 0, "reserved_to": fmt(order.reserved_to),
        "event_id": order.event_id, "price": sum(b.price for b in order.baskets),
        "original_price": sum(b.original_price for b in order.baskets), "currency_id": "RUB",
        "utm": {"utm_source": order.utm_source, "utm_medium": "cpc"} if order.utm_source else [],
        "custom": "", "fields": {"inn": "7700000000"} if order.id % 97 == 0 else [],
        "refunds": [], "integrations": {"roistat": {"roistat_visit": str(order.id % 99991)}}
        if order.id % 11 == 0 else [],
        "baskets": baskets,
    }


PLAN_COLUMNS = {"id", "event_id", "created_at", "payed_at", "updated_at", "deleted_at", "payed",
                "reserved_to"}
TIME_COLUMNS = {"created_at", "payed_at", "updated_at", "deleted_at", "reserved_to"}


def plan_fields(order: OrderPlan, now: datetime) -> dict[str, Any]:
    """The order-level columns of `render_order` without rendering the order (for `where`)."""
    payed_at, deleted_at = _seen(order.payed_at, now), _seen(order.deleted_at, now)
    return {"id": order.id, "event_id": order.event_id, "created_at": order.created_at, "payed_at": payed_at,
            "deleted_at": deleted_at, "payed": payed_at is not None, "reserved_to": order.reserved_to,
            "updated_at": max(m for m in (order.created_at, payed_at, deleted_at) if m is not None)}


def render_show(event: EventPlan, show: ShowPlan, now: datetime, scheme: bool = True) -> dict[str, Any]:
    deleted_at = _seen(event.deleted_at, now)
    show_deleted = _seen(show.deleted_at, now)
    return {
        "id": show.id, "name": "", "is_active": 0 if (deleted_at or show_deleted or show.start <= now) else 1,
        "start_date": fmt(show.start), "finish_date": fmt(show.finish),
        "open_date": fmt(show.start - timedelta(hours=1)), "sale_start_date": fmt(event.created_at),
        "sale_finish_date": fmt(show.start), "deleted_at": fmt(show_deleted),
        "created_at": fmt(event.created_at), "updated_at": fmt(show_deleted or event.created_at),
        "prices": [{"id": i + 1, "default_price": p, "color_theme": str(i + 1), "modifiers": []}
                   for i, p in enumerate(show.prices)],
        "min_price": {"id": 1, "default_price": show.prices[0]},
        "max_price": {"id": 2, "default_price": show.prices[-1]},
        # The bulky part of a real payload (qtickets_api.md §6): per-seat configuration as strings.
        "scheme_properties": None if not scheme else {
            "zones": {z: {"disabled": "0", "price_id": str(i + 1), "label": z}
                      for i, z in enumerate(("PARTERRE", "VIP") if show.seated else ("DANCEFLOOR",))},
            "seats": {s.root_id: {"max_quantity": str(s.max_quantity), "hot": "0", "show_free_quantity": "1",
                                  "disabled": "0", "price_id": "2" if s.zone == "VIP" else "1",
                                  "spread": {"users": [], "enabled": "0"}} for s in show.seats()},
        },
    }


def render_event(event: EventPlan, now: datetime, scheme: bool = True) -> dict[str, Any]:
    """The event as GET events shows it at `now`; `scheme=False` skips the seat maps (a `select`
    without them trims them anyway, and they are the expensive part)."""
    city_id, city, tz = event.city
    deleted_at = _seen(event.deleted_at, now)
    return {
        "id": event.id, "is_active": 0 if deleted_at else 1, "name": event.name, "scheme_id": event.id % 1000,
        "currency_id": "RUB", "place_name": event.venue, "place_address": f"{city}, ул. Ленина, 1",
        "place_description": "", "city_id": city_id, "city": {"id": city_id, "name": city, "timezone": tz},
        "site_url": "", "description": "<p>Описание</p>", "external_id": None, "age": "12+",
        "slug": f"event-{event.id}", "url": f"https://city{city_id}.qtickets.events/{event.id}-event-{event.id}",
        "place_coordinates": [55.75, 37.61], "poster": None, "payments": [],
        "created_at": fmt(event.created_at), "updated_at": fmt(deleted_at or event.created_at),
        "deleted_at": fmt(deleted_at),
        "shows": [render_show(event, s, now, scheme) for s in event.shows],
    }


# ------------------------------------------------------------------------------------------ inventory


def seat_counters(account: Account, show: ShowPlan, now: datetime) -> dict[str, tuple[int, int]]:
    """root_id -> (ordered, payed) tickets as of `now`: live (not cancelled, not refunded) baskets."""
    counters: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for order, basket in account.baskets_of_show(show.id, now):
        if order.live_as_of(now) and _seen(basket.refunded_at, now) is None:
            counter = counters[basket.seat_id]
            counter[0] += 1
            counter[1] += order.paid_as_of(now)
    return {root: (c[0], c[1]) for root, c in counters.items()}


def in_carts(seed: int, show: ShowPlan, now: datetime, free: int) -> int:
    """General-admission places sitting in shoppers' carts: a pure function of (seed, show, 15-min slot)."""
    if show.seated or show.start <= now or free <= 0:
        return 0
    slot = int(now.timestamp()) // 900
    return min(free, random.Random(f"{seed}:cart:{show.id}:{slot}").randint(0, 3))


def render_seats(account: Account, show: ShowPlan, now: datetime) -> list[dict[str, Any]]:
    """Flat seat rows, one per (physical seat, tariff), with organiser-wide counters."""
    counters = seat_counters(account, show, now)
    rows = []
    for seat in show.seats():
        ordered, payed = counters.get(seat.root_id, (0, 0))
        cart = in_carts(account.seed, show, now, seat.max_quantity - ordered)
        free = seat.max_quantity - ordered - cart
        for code in seat.tariffs:
            name, percent = TARIFFS[code]
            rows.append({
                "id": f"{code}_{seat.root_id}", "root_id": seat.root_id,
                "name": seat.zone if seat.admission else f"{seat.zone}: Ряд {seat.row}, Место {seat.place}",
                "zone_id": f"{code}_{seat.zone}", "zone_root_id": seat.zone,
                "short_seat_id": f"{seat.row};{seat.place}", "row": str(seat.row), "place": str(seat.place),
                "admission": seat.admission, "available": free > 0, "disabled": False, "ordered": ordered > 0,
                "max_quantity": seat.max_quantity, "free_quantity": free, "ordered_quantity": ordered,
                "payed_quantity": payed, "in_basket_quantity": cart,
                "price": float(seat.price * percent / 100), "currency_id": "RUB",
                "multiprice_name": name, "multiprice_code": code,
                "color_theme_id": 2 if seat.zone == "VIP" else 1,
                "related_seats": [], "coords": [seat.place * 10, seat.row * 10],
                "spread": {"partner_id": None, "users": [], "client_groups": [], "client_emails": [],
                           "agents": None},
            })
    return rows


def seat_hierarchy(rows: list[dict[str, Any]], minimal: bool) -> dict[str, Any]:
    """zone -> seats, the answer without `flat`; `minimal` (no `select`) keeps only seat id and admission."""
    zones: dict[str, Any] = {}
    for row in rows:
        zone_key = row.get("zone_root_id") if minimal else row.get("zone_id") or row.get("zone_root_id")
        zone = zones.setdefault(zone_key or "", {"seats": {}})
        seat_key = row.get("root_id") if minimal else row.get("id")
        zone["seats"][seat_key] = {"seat_id": row.get("root_id"), "admission": row.get("admission")} \
            if minimal else row
    return zones


# -------------------------------------------------------------------------------------------- errors


class SandboxError(Exception):
    def __init__(self, status: int, body: dict[str, Any] | str):
        self.status, self.body = status, body


def not_found(resource: str, raw_id: str) -> SandboxError:
    rid = int(raw_id) if raw_id.isdigit() else 0
    return SandboxError(404, {"error": f'Resource "{resource}" not found', "status": 404,
                              "code": "RESOURCE_NOT_FOUND", "info": {"id": rid, "resource": resource}})


HTML_404 = ("<!DOCTYPE html><html><head><title>Страница не найдена 404 – Qtickets</title></head>"
            "<body>404</body></html>")
UNKNOWN_ERROR = {"error": "Unknown error", "status": 503, "code": "UNKNOWN_ERROR", "info": []}


# ------------------------------------------------------------------------------------------- sandbox


class Sandbox:
    """The sandbox account plus its HTTP contract. `clock` gives "now" (the real clock by default).

    `resales`: seats of stale older sales sold again (`Resale`), part of the account's plan.
    `faults` injects transient failures; `honour_select=False` behaves like a server that ignores
    `select` (qtickets_api.md §6 allows for it); `max_per_page` clamps `perPage` like a server limit.
    """

    def __init__(self, seed: int = 42, opened_on: date = date(2026, 10, 1), orders_per_day: int = 120,
                 clock: Callable[[], datetime] | None = None, token: str = SANDBOX_TOKEN,
                 auth_error_status: int = 401, *, event_every_days: float = 4.0, faults: Faults | None = None,
                 honour_select: bool = True, max_per_page: int = MAX_PAGE_SIZE,
                 resales: tuple[Resale, ...] = ()):
        self.seed = seed
        self.account = shared_account(seed, opened_on, orders_per_day, event_every_days, tuple(resales))
        self.clock = clock or (lambda: datetime.now(UTC))
        self.token, self.auth_error_status = token, auth_error_status
        self.faults = faults
        self.honour_select, self.max_per_page = honour_select, max_per_page
        self.requests: deque[httpx.Request] = deque(maxlen=100_000)  # what was asked, newest last
        self._listings: OrderedDict[tuple, list[OrderPlan]] = OrderedDict()
        self._listings_lock = threading.Lock()

    # -- HTTP ------------------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that answers in-process."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        fault = self.faults.draw(request) if self.faults else None
        if fault is not None and fault.response is not None:
            return fault.response
        try:
            status, body = 200, self._route(request)
        except SandboxError as error:
            status, body = error.status, error.body
        except (ValueError, TypeError, KeyError, AttributeError):  # a malformed body: the server's 503
            log.info("sandbox: 503 for %s %s", request.method, request.url.path, exc_info=True)
            status, body = 503, UNKNOWN_ERROR
        if isinstance(body, str):
            response = httpx.Response(status, text=body, headers={**RESPONSE_HEADERS,
                                                                  "Content-Type": "text/html; charset=UTF-8"})
        else:
            headers = dict(RESPONSE_HEADERS)
            if status != 200:
                headers.pop("X-Cache-Status")
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            response = httpx.Response(status, content=content,
                                      headers={**headers, "Content-Type": "application/json"})
        return fault.apply(response) if fault is not None else response

    def _route(self, request: httpx.Request) -> dict[str, Any]:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            status = self.auth_error_status
            raise SandboxError(status, {"error": "Unauthorized", "status": status})
        path = request.url.path.split("/api/rest/v1/", 1)[-1].strip("/")
        try:
            body = json.loads(request.content) if request.content else {}
        except ValueError:
            raise SandboxError(503, UNKNOWN_ERROR) from None
        if not isinstance(body, dict):
            raise SandboxError(503, UNKNOWN_ERROR)
        # Whole seconds, like every instant the account plans and the API prints: exact (a planned moment
        # is visible at `now` iff it is at its second), and the pages of one listing asked within a second
        # share one snapshot and its memo (`_orders`), under the real clock too.
        now = self.clock().astimezone(MSK).replace(microsecond=0)
        if request.method == "POST" and path == "orders":
            raise SandboxError(503, UNKNOWN_ERROR)  # POST orders creates orders; never a search
        if request.method != "GET":
            raise SandboxError(404, HTML_404)
        if request.url.params.get("where"):
            raise SandboxError(503, UNKNOWN_ERROR)
        where = body.get("where") or []
        match path.split("/"):
            case ["orders"]:
                return self._orders(now, where, body)
            case ["orders", raw_id]:
                order = self.account.order(int(raw_id), now) if raw_id.isdigit() else None
                if order is None:
                    raise not_found("Order", raw_id)
                return {"data": render_order(order, now)}
            case ["events"]:
                scheme = self._needs_scheme(body)
                rows = [render_event(e, now, scheme) for e in self.account.events if e.created_at <= now]
                return self._list("events", [r for r in rows if matches(r, where)], body)
            case ["events", raw_id]:
                event = self.account.events_by_id.get(int(raw_id)) if raw_id.isdigit() else None
                if event is None or event.created_at > now:
                    raise not_found("Event", raw_id)
                return {"data": self._select(render_event(event, now), body)}
            case ["shows", raw_id, "seats"]:
                return {"data": self._seats(raw_id, body, now)}
            case ["clients"]:
                return self._list("clients", self._clients(now, where), body)
            case ["discounts"] | ["promo-codes"]:
                return self._list(path, [], body)
        raise SandboxError(404, HTML_404)

    def _needs_scheme(self, body: dict[str, Any]) -> bool:
        select = body.get("select")
        if not select or not self.honour_select:
            return True
        tree = select_tree(select)
        shows = tree.get("shows")
        return shows is True or (isinstance(shows, dict) and "scheme_properties" in shows)

    def _select(self, row: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        select = body.get("select")
        return project(row, select_tree(select)) if select and self.honour_select else row

    def _orders(self, now: datetime, where: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
        bounds: dict[str, Any] = {"created_from": None, "created_to": None, "id_from": None, "id_to": None}
        for cond in where:
            column, op, value = cond.get("column"), cond.get("operator", "="), cond.get("value")
            if value is None or op not in (">", ">=", "<", "<=", "="):
                continue
            if column == "id":
                if op in (">", ">=", "="):
                    bounds["id_from"] = max(bounds["id_from"] or 0, int(value))
                if op in ("<", "<=", "="):
                    bounds["id_to"] = min(bounds["id_to"] or int(value), int(value))
            elif column in ("created_at", "payed_at", "updated_at", "deleted_at"):
                # Every order timestamp lies within ORDER_LIFETIME of its creation: an index on created_at.
                moment = parse_instant(str(value))
                slack = timedelta(0) if column == "created_at" else ORDER_LIFETIME
                if op in (">", ">=", "="):
                    lower = moment - slack
                    bounds["created_from"] = max(bounds["created_from"] or lower, lower)
                if op in ("<", "<=", "=") and column == "created_at":
                    bounds["created_to"] = min(bounds["created_to"] or moment, moment)
        order_by = body.get("orderBy") or {"id": "asc"}
        if all(c.get("column") in PLAN_COLUMNS for c in where) and list(order_by) == ["id"]:
            # Filter on the plans and render only the page asked for: what a database index buys. The
            # filtered listing is kept per (clock second, where, direction): every page of one listing
            # under a frozen clock (or within one second of the real one) reuses it, so a page costs its
            # own size, not the history's (bench/sandbox_pages.py).
            key = (now, json.dumps(where, sort_keys=True, default=str), order_by["id"])
            with self._listings_lock:
                listing = self._listings.get(key)
            if listing is None:
                plans = self.account.orders_slice(now, **bounds)
                # The literals parsed once, not once per order: the plans' instants are datetimes.
                parsed = [{**c, "value": parse_instant(c["value"])} if isinstance(c.get("value"), str)
                          and c.get("column") in TIME_COLUMNS else c for c in where]
                listing = [p for p in plans if matches(plan_fields(p, now), parsed)] if where else plans
                listing = listing[::-1] if order_by["id"] == "desc" else listing
                with self._listings_lock:
                    self._listings[key] = listing
                    while len(self._listings) > 16:
                        self._listings.popitem(last=False)
            return self._list("orders", listing, body, render=lambda p: render_order(p, now))
        rendered = (render_order(p, now) for p in self.account.orders_slice(now, **bounds))
        return self._list("orders", [row for row in rendered if matches(row, where)], body)

    def _clients(self, now: datetime, where: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = sorted({o.id % 9973 for o in self.account.orders_until(now)})  # buyers seen so far
        return [c for c in map(render_client, ids) if matches(c, where)]

    def _seats(self, raw_id: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        show = self.account.shows.get(int(raw_id)) if raw_id.isdigit() else None
        if show is None or self.account.events_by_id[show.event_id].created_at > now:
            raise not_found("Show", raw_id)
        rows = [r for r in render_seats(self.account, show, now) if matches(r, body.get("where") or [])]
        select = body.get("select")
        if not select:
            return seat_hierarchy(rows, minimal=True)  # observed: no counters without select
        if self.honour_select:
            tree = select_tree(select)  # once a call, not per row: a show has up to ~1,400 rows
            rows = [project(r, tree) for r in rows]
        if body.get("flat") in (True, 1, "1", "true"):
            return {row["id"]: row for row in rows} if rows and "id" in rows[0] else dict(enumerate(rows))
        return seat_hierarchy(rows, minimal=False)

    def _list(self, kind: str, rows: list[Any], body: dict[str, Any],
              render: Callable[[Any], dict[str, Any]] | None = None) -> dict[str, Any]:
        """One page of `rows`; with `render`, rows are plans already in order, rendered only for the page."""
        if render is None:
            for column, direction in reversed(list((body.get("orderBy") or {"id": "asc"}).items())):
                rows.sort(key=lambda r: (r.get(column) is None, r.get(column)), reverse=direction == "desc")
        per_page = min(int(body.get("perPage") or DEFAULT_PAGE_SIZE[kind]), self.max_per_page)
        page = max(int(body.get("page") or 1), 1)
        chunk = rows[(page - 1) * per_page: page * per_page]
        if not chunk:
            return {"data": []}
        if render is not None:
            chunk = [render(plan) for plan in chunk]
        return {"data": [self._select(r, body) for r in chunk],
                "paging": {"perPage": per_page, "currentPage": page, "total": len(rows)}}

    # -- ground truth ------------------------------------------------------------------------------------

    def expected_sales_daily(self, now: datetime) -> dict[tuple[date, int, int], dict[str, Any]]:
        """ARCHITECTURE.md §4 applied to the account as of `now`, keyed by (sales_date, event, show)."""
        facts: dict[tuple[date, int, int], dict[str, Any]] = {}
        order_sets: dict[tuple[date, int, int], set[int]] = defaultdict(set)
        for plan in self.account.orders_until(now):
            order = render_order(plan, now)
            if not order["payed"]:
                continue
            sales_date = parse_instant(order["payed_at"]).astimezone(MSK).date()
            for b in order["baskets"]:
                key = (sales_date, order["event_id"], b["show_id"])
                row = facts.setdefault(key, {"tickets_sold": 0, "revenue": Decimal(0), "orders_count": 0,
                                             "refunded_tickets": 0, "refunds_amount": Decimal(0)})
                if b["refunded_at"] is not None:
                    row["refunded_tickets"] += b["quantity"]
                    row["refunds_amount"] += Decimal(b["refunded_amount"])
                elif order["deleted_at"] is None and b["deleted_at"] is None:
                    row["tickets_sold"] += b["quantity"]
                    row["revenue"] += Decimal(b["price"])
                    order_sets[key].add(order["id"])
        for key, row in facts.items():
            row["orders_count"] = len(order_sets[key])
        return facts

    def polled_shows(self, now: datetime) -> list[ShowPlan]:
        """Shows whose inventory a run reads (`client.current_shows`): of live events, not deleted, and
        active or still to start (here a show is active until it starts)."""
        now = now.astimezone(MSK)
        return [
            show for event in self.account.events
            if event.created_at <= now and _seen(event.deleted_at, now) is None
            for show in event.shows
            if _seen(show.deleted_at, now) is None and show.start > now
        ]

    def resale_candidates(self, at: datetime, tick: datetime) -> list[tuple[ShowPlan, int]]:
        """(show, its live tickets at `at`) of the polled shows a `Resale` at `at` can make a case of: 4
        tickets paid 2+ days before `at`, no unpaid reservation at `at` (once sold out every seat is
        paid), and a start more than a day after `tick` (it is still polled then)."""
        candidates = []
        for show in self.polled_shows(tick):
            baskets = [(o, b) for o, b in self.account.baskets_of_show(show.id, at)
                       if o.live_as_of(at) and (b.refunded_at is None or b.refunded_at > at)]
            older = [b for o, b in baskets if o.payed_at and o.payed_at <= at - timedelta(days=2)
                     and o.deleted_at is None and b.refunded_at is None]
            unpaid = [b for o, b in baskets if not o.paid_as_of(at)]
            if show.start > tick + timedelta(days=1) and len(older) >= 4 and not unpaid:
                candidates.append((show, len(baskets)))
        return candidates

    def expected_inventory(self, now: datetime) -> dict[int, dict[str, int]]:
        """`fact_qtickets_inventory_latest` as of `now` (ARCHITECTURE.md §4), from the plans themselves:
        capacity = the show's places, sold = live paid tickets, free = capacity - live tickets - carts."""
        now = now.astimezone(MSK)
        inventory = {}
        for show in self.polled_shows(now):
            baskets = self.account.baskets_of_show(show.id, now)
            live = [(o, b) for o, b in baskets if o.live_as_of(now) and _seen(b.refunded_at, now) is None]
            sold = sum(1 for o, _ in live if o.paid_as_of(now))
            cart = in_carts(self.seed, show, now, show.capacity - len(live))
            inventory[show.id] = {"event_id": show.event_id, "capacity": show.capacity,
                                  "free_seats": show.capacity - len(live) - cart, "sold_seats": sold}
        return inventory

    def expected_inventory_after(self, polls: list[datetime]) -> dict[int, dict[str, Any]]:
        """`fact_qtickets_inventory_latest` after inventory runs at the instants `polls` (ascending): each
        show polled by the last run as of that run (`is_final` False), plus every show that has started by
        then and was not cancelled before its start, as of the last run that polled it (`is_final` True).
        `polled_at` is that run's instant."""
        state: dict[int, dict[str, Any]] = {}
        for now in polls:
            now = now.astimezone(MSK)
            for show_id, row in list(state.items()):
                show = self.account.shows[show_id]
                event = self.account.events_by_id[show.event_id]
                cancelled = [m for m in (_seen(event.deleted_at, now), _seen(show.deleted_at, now)) if m]
                if show.start > now or (cancelled and min(cancelled) < show.start):
                    del state[show_id]
                else:
                    row["is_final"] = True
            for show_id, row in self.expected_inventory(now).items():
                state[show_id] = {**row, "is_final": False, "polled_at": now}
        return state

    def expected_dim_events(self, now: datetime) -> dict[tuple[int, int], dict[str, Any]]:
        """`dim_events` as of `now`: one row per (event, show) of every visible event, deleted ones flagged.
        `is_active` = event and show active; `is_deleted` = event or show soft-deleted."""
        now = now.astimezone(MSK)
        dim = {}
        for event in self.account.events:
            if event.created_at > now:
                continue
            event_deleted = _seen(event.deleted_at, now) is not None
            for show in event.shows:
                show_deleted = _seen(show.deleted_at, now) is not None
                dim[(event.id, show.id)] = {
                    "event_name": event.name, "city": event.city[1], "city_timezone": event.city[2],
                    "venue": event.venue, "show_start_at": show.start, "show_finish_at": show.finish,
                    "is_active": not (event_deleted or show_deleted or show.start <= now),
                    "is_deleted": event_deleted or show_deleted,
                }
        return dim
