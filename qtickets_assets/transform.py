"""API models -> staging rows (columnar). Timestamps stay timezone-aware, money stays Decimal."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal

from .qtickets.models import Order
from .warehouse.io_manager import Rows

ORDER_COLUMNS = [
    "order_id", "order_uniqid", "event_id", "order_created_at", "order_updated_at", "order_deleted_at",
    "payed", "payed_at", "currency_id", "payment_type_id", "client_id", "utm_source", "utm_medium",
    "utm_campaign", "order_json",
]
BASKET_COLUMNS = [
    "basket_id", "show_id", "seat_id", "seat_name", "multiprice_code", "quantity", "price", "original_price",
    "discount_value", "basket_created_at", "basket_updated_at", "basket_deleted_at", "checked_at",
    "refunded_at", "refunded_amount", "basket_json",
]
NO_BASKET = (0, 0, "", "", "", 0, Decimal(0), Decimal(0), Decimal(0), None, None, None, None, None, Decimal(0), "{}")


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def order_rows(orders: Iterable[Order]) -> Rows:
    """One row per basket; an order without baskets keeps one row (basket_id 0) so nothing is dropped."""
    names = ORDER_COLUMNS + BASKET_COLUMNS
    columns: dict[str, list] = {name: [] for name in names}
    appenders = [columns[name].append for name in names]
    for order in orders:
        raw = order.raw or order.model_dump(mode="json")
        utm = order.utm
        order_part = (
            order.id, order.uniqid, order.event_id, order.created_at, order.updated_at, order.deleted_at,
            int(order.payed), order.payed_at, order.currency_id, order.payment_type_id, order.client_id or 0,
            str(utm.get("utm_source") or ""), str(utm.get("utm_medium") or ""), str(utm.get("utm_campaign") or ""),
            _json({k: v for k, v in raw.items() if k != "baskets"}),
        )
        basket_parts = [
            (
                b.id, b.show_id, b.seat_id or "", b.seat_name or "", b.multiprice_code or "", b.quantity,
                b.price, b.original_price, b.discount_value, b.created_at, b.updated_at, b.deleted_at,
                b.checked_at, b.refunded_at, b.refunded_amount, _json(b.raw),
            )
            for b in order.baskets
        ] or [NO_BASKET]
        for basket_part in basket_parts:
            for append, value in zip(appenders, order_part + basket_part, strict=True):
                append(value)
    return Rows(columns)
