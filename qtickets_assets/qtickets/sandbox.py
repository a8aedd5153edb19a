"""A deterministic simulator of the QTickets REST API (qtickets_api.md §16).

The account's state at instant T is a pure function of (seed, T): every process that builds a sandbox
with the same seed sees the same account, and sales keep arriving as the real clock moves. Orders are
planned day by day from the opening date (their whole life: payment, expiry, cancellation, refunds,
entry scans) and rendered "as of T", so later changes appear only once T passes them. Refunds and scans
change baskets without bumping `order.updated_at`, as the real API does.

The sandbox also knows its ground truth: `expected_sales_daily` applies ARCHITECTURE.md §4 to the
account as of T, so tests compare the warehouse with exact numbers.
"""

from __future__ import annotations

import json
import random
import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache, cached_property
from typing import Any
from zoneinfo import ZoneInfo

import httpx

MSK = ZoneInfo("Europe/Moscow")
SANDBOX_TOKEN = "sandbox-token"
SANDBOX_BASE_URL = "https://sandbox.qtickets.invalid/api/rest/v1/"
DEFAULT_PAGE_SIZE = {"orders": 50, "events": 10}

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


def fmt(value: datetime | None) -> str | None:
    """The API's timestamp format: Moscow offset, seconds precision."""
    return None if value is None else value.astimezone(MSK).strftime("%Y-%m-%dT%H:%M:%S%z")[:-2] + ":00"


def parse_instant(value: str) -> datetime:
    """An API timestamp or a `YYYY-MM-DD HH:MM:SS` Moscow wall time (the where-literal format)."""
    parsed = datetime.fromisoformat(value.replace(" ", "T"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=MSK)


# ---------------------------------------------------------------------------------------------- account


@dataclass(frozen=True)
class ShowPlan:
    id: int
    event_id: int
    start: datetime
    capacity: int
    seated: bool
    prices: tuple[int, ...]
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class EventPlan:
    id: int
    name: str
    city: tuple[int, str, str]
    venue: str
    created_at: datetime
    deleted_at: datetime | None
    shows: tuple[ShowPlan, ...]


@dataclass
class BasketPlan:
    id: int
    show_id: int
    seat_id: str
    price: int
    original_price: int
    refunded_at: datetime | None = None
    refunded_amount: int = 0
    checked_at: datetime | None = None


@dataclass
class OrderPlan:
    id: int
    event_id: int
    created_at: datetime
    reserved_to: datetime
    payed_at: datetime | None
    deleted_at: datetime | None  # expiry of an unpaid order, or cancellation of a paid one
    utm_source: str | None
    baskets: list[BasketPlan] = field(default_factory=list)


class Account:
    """Everything that ever happens in the sandbox account, planned up front from the seed."""

    def __init__(self, seed: int, opened_on: date, orders_per_day: int, horizon_days: int = 400):
        self.seed, self.opened_on, self.orders_per_day = seed, opened_on, orders_per_day
        self.opened_at = datetime.combine(opened_on, time(), MSK)
        self.horizon_days = horizon_days
        self.events = self._plan_events()
        self.shows = {show.id: show for event in self.events for show in event.shows}
        self._days: list[list[OrderPlan]] = []
        self._orders: list[OrderPlan] = []  # all planned days, flattened
        self._created: list[datetime] = []  # their creation times, for bisect
        self._next_order_id, self._next_basket_id = 1_000_001, 50_000_001
        self._sold: dict[int, int] = defaultdict(int)  # show id -> tickets allocated

    def _plan_events(self) -> list[EventPlan]:
        """A dozen events on sale at opening, then a new one every few days for the whole horizon."""
        rng = random.Random(f"{self.seed}:events")
        events, show_id = [], 300_001
        created = self.opened_at - timedelta(days=30)
        for index in range(12 + self.horizon_days // 4):
            if index >= 12:
                created = self.opened_at + timedelta(days=(index - 12) * 4, hours=rng.randint(9, 18))
            event_id = 24_001 + index * 7
            shows = []
            for _ in range(rng.randint(1, 4)):
                start_day = rng.randint(10, 120) if index >= 12 else rng.randint(0, 90)
                start = datetime.combine(created.date() + timedelta(days=start_day), time(19, 0), MSK)
                start -= timedelta(hours=rng.choice([0, 0, 5]))  # matinees
                seated = rng.random() < 0.6
                capacity = rng.choice([300, 500, 800]) if seated else rng.choice([400, 1200])
                prices = tuple(sorted(rng.sample([900, 1500, 2200, 3000, 4500], 2)))
                shows.append(ShowPlan(show_id, event_id, start, capacity, seated, prices))
                show_id += 1
            deleted = self.opened_at + timedelta(days=20) if index == 5 else None
            events.append(
                EventPlan(event_id, f"{TITLES[index % len(TITLES)]} #{index + 1}", CITIES[index % len(CITIES)],
                          VENUES[index % len(VENUES)], created, deleted, tuple(shows))
            )
        return events

    def orders_until(self, moment: datetime) -> list[OrderPlan]:
        """Orders created up to `moment`, in id (= creation) order."""
        day_index = min((moment.astimezone(MSK).date() - self.opened_on).days, self.horizon_days)
        while len(self._days) <= day_index:
            day = self._plan_day(len(self._days))
            self._days.append(day)
            self._orders.extend(day)
            self._created.extend(o.created_at for o in day)
        return self._orders[: bisect_right(self._created, moment)]

    def _plan_day(self, day_index: int) -> list[OrderPlan]:
        rng = random.Random(f"{self.seed}:day:{day_index}")
        day_start = self.opened_at + timedelta(days=day_index)
        # Sales follow a weekly rhythm; the rng draws make every day different but reproducible.
        weekday_factor = 1.3 if day_start.weekday() in (4, 5) else 1.0
        count = max(0, round(rng.gauss(self.orders_per_day * weekday_factor, self.orders_per_day * 0.15)))
        moments = sorted(day_start + timedelta(seconds=rng.randrange(86_400)) for _ in range(count))
        orders = []
        for created in moments:
            on_sale = [
                e for e in self.events
                if e.created_at <= created and (e.deleted_at is None or e.deleted_at > created)
                and any(s.start > created + timedelta(hours=1) and self._sold[s.id] < s.capacity for s in e.shows)
            ]
            if not on_sale:
                continue
            event = rng.choice(on_sale)
            order = self._plan_order(rng, event, created)
            if order.baskets:
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
        shows = [s for s in event.shows if s.start > created + timedelta(hours=1) and self._sold[s.id] < s.capacity]
        picked = [rng.choice(shows)]
        if len(shows) > 1 and rng.random() < 0.05:  # one order, several shows of the same event
            picked.append(rng.choice([s for s in shows if s is not picked[0]]))
        for show in picked:
            for _ in range(min(rng.choice([1, 1, 2, 2, 2, 3, 4]), show.capacity - self._sold[show.id])):
                self._sold[show.id] += 1
                n = self._sold[show.id]
                seat = f"PARTERRE-{(n - 1) // 20 + 1};{(n - 1) % 20 + 1}" if show.seated else f"dancefloor-{n};1"
                original = rng.choice(show.prices)
                price = original - (original // 10 if rng.random() < 0.1 else 0)
                basket = BasketPlan(self._next_basket_id, show.id, seat, price, original)
                self._next_basket_id += 1
                if payed_at is not None and deleted_at is None and rng.random() < 0.04:
                    basket.refunded_at = payed_at + timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 600))
                    basket.refunded_amount = price if rng.random() < 0.7 else price * 9 // 10
                if payed_at is not None and rng.random() < 0.8:
                    basket.checked_at = show.start - timedelta(minutes=rng.randint(0, 60))
                order.baskets.append(basket)
        return order


# ------------------------------------------------------------------------------------------- rendering


def _seen(moment: datetime | None, now: datetime) -> datetime | None:
    return moment if moment is not None and moment <= now else None


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
            "multiprice_code": None, "quantity": 1,
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
        "deleted_at": fmt(deleted_at), "client_id": order.id % 9973, "client": {"id": order.id % 9973},
        "site_id": 1, "payment_id": 1, "payment_type_id": "card" if order.id % 5 else str(1_000_000 + order.id % 9),
        "reserved": False, "reserve_extended": False, "reserved_to": fmt(order.reserved_to),
        "event_id": order.event_id, "price": sum(b.price for b in order.baskets),
        "original_price": sum(b.original_price for b in order.baskets), "currency_id": "RUB",
        "utm": {"utm_source": order.utm_source} if order.utm_source else [],
        "custom": "", "fields": [], "refunds": [], "integrations": [],
        "baskets": baskets,
    }


def render_event(event: EventPlan, now: datetime) -> dict[str, Any]:
    city_id, city, tz = event.city
    deleted_at = _seen(event.deleted_at, now)
    return {
        "id": event.id, "is_active": 0 if deleted_at else 1, "name": event.name,
        "place_name": event.venue, "city_id": city_id, "city": {"id": city_id, "name": city, "timezone": tz},
        "currency_id": "RUB", "created_at": fmt(event.created_at), "updated_at": fmt(deleted_at or event.created_at),
        "deleted_at": fmt(deleted_at),
        "shows": [
            {"id": s.id, "name": "", "is_active": 0 if (deleted_at or s.start <= now) else 1,
             "start_date": fmt(s.start), "finish_date": fmt(s.start + timedelta(hours=2)),
             "open_date": fmt(s.start - timedelta(hours=1)), "sale_start_date": fmt(event.created_at),
             "sale_finish_date": fmt(s.start), "deleted_at": None,
             "prices": [{"id": i + 1, "default_price": p} for i, p in enumerate(s.prices)],
             "scheme_properties": {"seats": {f"PARTERRE-{r};{p}": {"max_quantity": "1"}
                                             for r in range(1, 4) for p in range(1, 21)}} if s.seated else {}}
            for s in event.shows
        ],
    }


# ----------------------------------------------------------------------------------------------- queries


def _comparable(actual: Any, expected: Any) -> tuple[Any, Any]:
    if isinstance(actual, str) and isinstance(expected, str) and re.match(r"\d{4}-\d\d-\d\d[ T]\d", actual):
        return parse_instant(actual), parse_instant(expected)
    if isinstance(actual, bool):
        return int(actual), int(expected) if expected is not None else None
    return actual, expected


def _dig(row: dict[str, Any], column: str) -> Any:
    value: Any = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def matches(row: dict[str, Any], conditions: Iterable[dict[str, Any]]) -> bool:
    for cond in conditions:
        op, actual = cond.get("operator", "="), _dig(row, cond["column"])
        if op == "null":
            ok = actual is None
        elif op == "not null":
            ok = actual is not None
        elif op in ("in", "not in"):
            ok = (actual in cond.get("value", [])) == (op == "in")
        elif actual is None:
            ok = False
        else:
            a, b = _comparable(actual, cond.get("value"))
            ok = {"=": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        if not ok:
            return False
    return True


@cache
def shared_account(seed: int, opened_on: date, orders_per_day: int) -> Account:
    """Accounts are pure functions of their arguments: plan each once per process."""
    return Account(seed, opened_on, orders_per_day)


class SandboxError(Exception):
    def __init__(self, status: int, body: dict[str, Any] | str):
        self.status, self.body = status, body


def not_found(resource: str, raw_id: str) -> SandboxError:
    rid = int(raw_id) if raw_id.isdigit() else 0
    return SandboxError(404, {"error": f'Resource "{resource}" not found', "status": 404,
                              "code": "RESOURCE_NOT_FOUND", "info": {"id": rid, "resource": resource}})


HTML_404 = "<!DOCTYPE html><html><head><title>Страница не найдена 404 – Qtickets</title></head><body>404</body></html>"
UNKNOWN_ERROR = {"error": "Unknown error", "status": 503, "code": "UNKNOWN_ERROR", "info": []}


class Sandbox:
    """The sandbox account plus its HTTP contract. `clock` gives "now" (the real clock by default)."""

    def __init__(self, seed: int = 42, opened_on: date = date(2026, 10, 1), orders_per_day: int = 120,
                 clock: Callable[[], datetime] | None = None, token: str = SANDBOX_TOKEN,
                 auth_error_status: int = 401):
        self.account = shared_account(seed, opened_on, orders_per_day)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.token, self.auth_error_status = token, auth_error_status
        self.requests: list[httpx.Request] = []

    # -- HTTP ------------------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that answers in-process."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        try:
            status, body = 200, self._route(request)
        except SandboxError as error:
            status, body = error.status, error.body
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"Content-Type": "text/html; charset=UTF-8"})
        return httpx.Response(status, json=body, headers={"Cache-Control": "no-cache, private"})

    def _route(self, request: httpx.Request) -> dict[str, Any]:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            status = self.auth_error_status
            raise SandboxError(status, {"error": "Unauthorized", "status": status})
        path = request.url.path.split("/api/rest/v1/", 1)[-1].strip("/")
        body = json.loads(request.content) if request.content else {}
        now = self.clock().astimezone(MSK)
        if request.method == "POST" and path == "orders":
            raise SandboxError(503, UNKNOWN_ERROR)  # POST orders creates orders; never a search
        if request.method != "GET":
            raise SandboxError(404, HTML_404)
        if request.url.params.get("where"):
            raise SandboxError(503, UNKNOWN_ERROR)
        match path.split("/"):
            case ["orders"]:
                return self._list("orders", self._orders(now, body.get("where", [])), body, now)
            case ["orders", raw_id]:
                order = next((o for o in self.account.orders_until(now) if str(o.id) == raw_id), None)
                if order is None:
                    raise not_found("Order", raw_id)
                return {"data": render_order(order, now)}
            case ["events"]:
                rows = [render_event(e, now) for e in self.account.events if e.created_at <= now]
                return self._list("events", [r for r in rows if matches(r, body.get("where", []))], body, now)
            case ["events", raw_id]:
                event = next((e for e in self.account.events if str(e.id) == raw_id), None)
                if event is None:
                    raise not_found("Event", raw_id)
                return {"data": render_event(event, now)}
        raise SandboxError(404, HTML_404)

    def _orders(self, now: datetime, where: list[dict[str, Any]]) -> list[dict[str, Any]]:
        plans = self.account.orders_until(now)
        lower = [parse_instant(c["value"]) for c in where
                 if c.get("column") == "created_at" and c.get("operator") in (">", ">=")]
        if lower:  # ids and creation times grow together: skip history the filter excludes
            plans = plans[bisect_right([p.created_at for p in plans], max(lower) - timedelta(seconds=1)):]
        rendered = (render_order(p, now) for p in plans)
        return [row for row in rendered if matches(row, where)]

    @staticmethod
    def _list(kind: str, rows: list[dict[str, Any]], body: dict[str, Any], now: datetime) -> dict[str, Any]:
        for column, direction in reversed(list((body.get("orderBy") or {"id": "asc"}).items())):
            rows.sort(key=lambda r: (r.get(column) is None, r.get(column)), reverse=direction == "desc")
        per_page = int(body.get("perPage") or DEFAULT_PAGE_SIZE[kind])
        page = int(body.get("page") or 1)
        chunk = rows[(page - 1) * per_page: page * per_page]
        if not chunk:
            return {"data": []}
        return {"data": chunk, "paging": {"perPage": per_page, "currentPage": page, "total": len(rows)}}

    # -- ground truth ------------------------------------------------------------------------------------

    @cached_property
    def _event_of_show(self) -> dict[int, int]:
        return {s.id: s.event_id for s in self.account.shows.values()}

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
