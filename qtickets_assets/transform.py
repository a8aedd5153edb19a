"""API models -> staging rows (columnar). Timestamps stay timezone-aware, money stays Decimal."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from operator import attrgetter

import orjson

from .qtickets.models import Event, Order, SeatRow
from .warehouse.writes import Rows


def _json(value: object) -> bytes:
    # UTF-8 bytes, as Arrow and ClickHouse take them: no decode to str and re-encode per value. Copied to
    # their own size: orjson's result keeps its ~8 KB write buffer (12.5 MB for a chunk of 500 orders,
    # whose raw JSON is ~1.1 MB).
    return bytes(memoryview(orjson.dumps(value)))


def _without(raw: dict, key: str) -> dict:
    rest = raw.copy()  # a C-level copy: cheaper than a comprehension over the keys
    rest.pop(key, None)
    return rest


class _NoBasket:
    """The basket side of the row of an order without baskets."""

    id = show_id = quantity = 0
    seat_id = seat_name = multiprice_code = ""
    price = original_price = discount_value = refunded_amount = Decimal(0)
    created_at = updated_at = deleted_at = checked_at = refunded_at = None


NO_BASKET = _NoBasket()


def _columns(records: list, *fields: str) -> list[list]:
    """The values of `fields` of each record, a list per field: one pass in C (attrgetter, zip), not a
    Python loop per value."""
    if not records:
        return [[] for _ in fields]
    return list(map(list, zip(*map(attrgetter(*fields), records), strict=True)))


def order_rows(orders: Iterable[Order]) -> Rows:
    """One row per basket; an order without baskets keeps one row (basket_id 0) so nothing is dropped.

    Built a column at a time from the rows' orders and baskets: a tuple per row appended value by value
    cost about as much as validating the orders."""
    owners: list[Order] = []  # the order of each row
    baskets: list = []  # the basket of each row
    order_json: list[bytes] = []
    basket_json: list[bytes] = []
    for order in orders:
        raw = order.raw or order.model_dump(mode="json")
        if order.baskets:
            raw_baskets = raw.get("baskets") or []
            if len(raw_baskets) != len(order.baskets):
                raise ValueError(f"order {order.id}: {len(order.baskets)} baskets, {len(raw_baskets)} raw")
            baskets += order.baskets
            basket_json += map(_json, raw_baskets)
            count = len(order.baskets)
        else:
            baskets.append(NO_BASKET)
            basket_json.append(b"{}")
            count = 1
        owners += [order] * count
        order_json += [_json(_without(raw, "baskets"))] * count
    (order_id, uniqid, event_id, created_at, updated_at, deleted_at, payed, payed_at, currency_id,
     payment_type_id, client_id, utm) = _columns(
        owners, "id", "uniqid", "event_id", "created_at", "updated_at", "deleted_at", "payed", "payed_at",
        "currency_id", "payment_type_id", "client_id", "utm")
    (basket_id, show_id, seat_id, seat_name, multiprice_code, quantity, price, original_price,
     discount_value, basket_created_at, basket_updated_at, basket_deleted_at, checked_at, refunded_at,
     refunded_amount) = _columns(
        baskets, "id", "show_id", "seat_id", "seat_name", "multiprice_code", "quantity", "price",
        "original_price", "discount_value", "created_at", "updated_at", "deleted_at", "checked_at",
        "refunded_at", "refunded_amount")
    return Rows({
        "order_id": order_id, "order_uniqid": uniqid, "event_id": event_id, "order_created_at": created_at,
        "order_updated_at": updated_at, "order_deleted_at": deleted_at, "payed": list(map(int, payed)),
        "payed_at": payed_at, "currency_id": currency_id, "payment_type_id": payment_type_id,
        "client_id": [value or 0 for value in client_id],
        "utm_source": [str(u.get("utm_source") or "") for u in utm],
        "utm_medium": [str(u.get("utm_medium") or "") for u in utm],
        "utm_campaign": [str(u.get("utm_campaign") or "") for u in utm],
        "order_json": order_json,
        "basket_id": basket_id, "show_id": show_id,
        "seat_id": [value or "" for value in seat_id],
        "seat_name": [value or "" for value in seat_name],
        "multiprice_code": [value or "" for value in multiprice_code],
        "quantity": quantity, "price": price, "original_price": original_price,
        "discount_value": discount_value, "basket_created_at": basket_created_at,
        "basket_updated_at": basket_updated_at, "basket_deleted_at": basket_deleted_at,
        "checked_at": checked_at, "refunded_at": refunded_at, "refunded_amount": refunded_amount,
        "basket_json": basket_json,
    })


EVENT_COLUMNS = [
    "event_id", "show_id", "event_name", "event_is_active", "event_deleted_at", "city", "city_timezone",
    "venue", "show_start_at", "show_finish_at", "show_is_active", "show_deleted_at", "event_json",
]


def event_rows(events: Iterable[Event]) -> Rows:
    """One row per (event, show); an event without shows keeps one row (show_id 0).

    `event_json` is the event as the API sent it with `shows` narrowed to the row's own show, so the
    whole payload is kept once, not once per show."""
    columns: dict[str, list] = {name: [] for name in EVENT_COLUMNS}
    appenders = [columns[name].append for name in EVENT_COLUMNS]
    for event in events:
        raw = event.raw or event.model_dump(mode="json")
        city = event.city
        event_part = (
            event.id, event.name, int(event.is_active), event.deleted_at,
            city.name if city else "", city.timezone if city else "", event.place_name or "",
        )
        raw_shows = raw.get("shows") or []
        for show, raw_show in zip(event.shows, raw_shows, strict=True) if event.shows else [(None, None)]:
            show_json = [raw_show] if show else []
            values = (
                event_part[0], show.id if show else 0, *event_part[1:],
                show.start_date if show else None, show.finish_date if show else None,
                int(show.is_active) if show else 0, show.deleted_at if show else None,
                _json({**raw, "shows": show_json}),
            )
            for append, value in zip(appenders, values, strict=True):
                append(value)
    return Rows(columns)


INVENTORY_COLUMNS = [
    "show_id", "event_id", "offer_id", "root_id", "zone_root_id", "admission", "max_quantity",
    "free_quantity", "ordered_quantity", "payed_quantity", "in_basket_quantity", "price", "multiprice_code",
    "snapshot_at", "row_json",
]


def inventory_rows(shows: Iterable[tuple[int, int, list[SeatRow]]], snapshot_at: datetime) -> Rows:
    """One row per seat/offer of each polled (event_id, show_id, seats), all with the same `snapshot_at`."""
    if snapshot_at.tzinfo is None:
        raise ValueError("snapshot_at must be timezone-aware")
    columns: dict[str, list] = {name: [] for name in INVENTORY_COLUMNS}
    appenders = [columns[name].append for name in INVENTORY_COLUMNS]
    for event_id, show_id, seats in shows:
        for seat in seats:
            values = (
                show_id, event_id, seat.id, seat.root_id or seat.id, seat.zone_root_id or "",
                int(seat.admission), seat.max_quantity, seat.free_quantity, seat.ordered_quantity,
                seat.payed_quantity, seat.in_basket_quantity, seat.price, seat.multiprice_code or "",
                snapshot_at,
                _json(seat.raw or seat.model_dump(mode="json")),
            )
            for append, value in zip(appenders, values, strict=True):
                append(value)
    return Rows(columns)
