"""Pydantic models of the QTickets payloads (qtickets_api.md §5-§7).

Unknown fields are accepted and kept in the raw JSON (`.raw` of a top-level record), which travels
alongside into staging.
Quirks are normalised here, once: `[]` for an empty map, `""` for null, integer money, 0/1 booleans.
What cannot be read is an error naming the record and the field, never a guess or a drop: a timestamp
must be ISO text with an offset (a naive one would be read as UTC downstream), a basket's price must be
there, ids and counters must fit the warehouse's unsigned columns.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

_ISO = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
_NOT_ISO = "expected an ISO 8601 timestamp with a UTC offset, e.g. 2026-11-28T02:44:22+03:00"
_NO_OFFSET = "timestamp has no UTC offset"
ZERO = Decimal(0)


def _instant(value: Any) -> datetime:
    # The API writes instants as ISO 8601 text with an offset (qtickets_api.md §10). Anything else (another
    # date format, an epoch number that pydantic would read as UTC) is an error, never a guess.
    if isinstance(value, str):
        return _text_instant(value)
    if not isinstance(value, datetime):
        raise ValueError(_NOT_ISO)
    return _aware(value)


# An order's instants recur on each of its baskets (created, updated, deleted): each text is parsed once.
# One call parses it: `fromisoformat` (C) reads this text ~3x faster than pydantic's datetime parsing.
@lru_cache(maxsize=4096)
def _text_instant(value: str) -> datetime:
    if not _ISO.match(value):
        raise ValueError(_NOT_ISO)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(_NOT_ISO) from None
    return _aware(parsed)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(_NO_OFFSET)
    return value


def _empty_map(value: Any) -> Any:
    return {} if value == [] or value is None else value


def _empty_to_none(value: Any) -> Any:
    return None if value == "" else value


def _money_or_zero(value: Any) -> Any:
    return ZERO if value is None or value == "" else value


Instant = Annotated[datetime, BeforeValidator(_instant)]
# A price the BI numbers are built from must be there: absent or null is an error, not a free ticket.
# (pydantic reads a float as Decimal(str(value)): 490.5 -> Decimal("490.5"), no binary noise.)
Money = Decimal
# Amounts the contract documents as nullable (discount, refund) or that no number is built from.
MoneyOrZero = Annotated[Decimal, BeforeValidator(_money_or_zero)]
# The warehouse's column types: a value out of range is the record's error, not the insert's struct.error.
Id = Annotated[int, Field(ge=0, le=2**64 - 1)]
Count = Annotated[int, Field(ge=0, le=2**32 - 1)]
Map = Annotated[dict[str, Any], BeforeValidator(_empty_map)]
Text = Annotated[str | None, BeforeValidator(_empty_to_none)]


def _flag(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return bool(int(value)) if isinstance(value, int | str) and value != "" else value


Flag = Annotated[bool, BeforeValidator(_flag)]


class Model(BaseModel):
    # Unknown fields are accepted and live in the raw record, not on the model: copying them onto every
    # basket cost more than the validation itself.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Record(Model):
    """A top-level API record: the exact JSON it came from stays available as `.raw` (nested records are
    reached through it, e.g. `order.raw["baskets"][i]`, so they carry no per-instance state).

    The raw record lives in a plain slot, set by `parse`, not in a pydantic private attribute: those cost
    a Python call per instance to initialise and one per read (~20% of validating an order). So it is no
    part of the model's equality, copies or pickles."""

    __slots__ = ("_raw",)

    @property
    def raw(self) -> dict[str, Any]:
        try:
            return self._raw
        except AttributeError:  # built without `parse`
            return {}


M = TypeVar("M", bound=Model)


class Basket(Model):
    id: Id
    show_id: Id
    seat_id: str | None = None
    seat_name: str | None = None
    barcode: str | None = None
    multiprice_code: str | None = None
    quantity: Count = 1
    price: Money
    original_price: MoneyOrZero = ZERO
    discount_value: MoneyOrZero = ZERO
    created_at: Instant | None = None
    updated_at: Instant | None = None
    deleted_at: Instant | None = None
    checked_at: Instant | None = None
    refunded_at: Instant | None = None
    refunded_amount: MoneyOrZero = ZERO


class Order(Record):
    id: Id
    uniqid: str = ""
    event_id: Id
    payed: Flag = False
    payed_at: Instant | None = None
    created_at: Instant
    updated_at: Instant
    deleted_at: Instant | None = None
    client_id: Id | None = None
    currency_id: str = "RUB"
    payment_type_id: Annotated[str, BeforeValidator(lambda v: "" if v is None else str(v))] = ""
    price: MoneyOrZero = ZERO  # the order total; the facts sum basket prices
    utm: Map = Field(default_factory=dict)
    custom: Text = None
    fields: Map = Field(default_factory=dict)
    integrations: Map = Field(default_factory=dict)
    baskets: list[Basket] = Field(default_factory=list)


class City(Model):
    id: int | None = None
    name: str = ""
    timezone: str = ""


class Show(Model):
    id: Id
    is_active: Flag = True
    start_date: Instant | None = None
    finish_date: Instant | None = None
    deleted_at: Instant | None = None


class Event(Record):
    id: Id
    name: str = ""
    is_active: Flag = True
    place_name: str | None = None
    city: City | None = None
    deleted_at: Instant | None = None
    updated_at: Instant | None = None
    shows: list[Show] = Field(default_factory=list)


class SeatRow(Record):
    """One flat row of `shows/{id}/seats`: a seat (or GA category) in one tariff. The counters are
    required: a row without them (a call without `select`) must fail, not count as zero."""

    id: str
    root_id: str
    zone_root_id: str | None = None
    admission: Flag = False
    max_quantity: Count
    free_quantity: Count
    ordered_quantity: Count
    payed_quantity: Count
    in_basket_quantity: Count
    price: MoneyOrZero = ZERO
    multiprice_code: Text = None


class RecordError(ValueError):
    """A record failed validation; names the record, the fields and where its raw page was kept."""

    def __init__(self, kind: str, record: Any, error: ValidationError, kept: Any = None):
        self.kind, self.record, self.error, self.kept = kind, record, error, kept
        self.record_id = record.get("id") if isinstance(record, dict) else None
        fields = "; ".join(f"{_locate(record, e['loc'])}: {e['msg']}" for e in error.errors())
        where = f" (raw page kept at {kept})" if kept else " (raw page not kept: no rejects directory)"
        super().__init__(f"malformed {kind} id={self.record_id}: {fields}{where}")

    def kept_at(self, path: Any) -> RecordError:
        return RecordError(self.kind, self.record, self.error, path)


def _locate(record: Any, loc: tuple[Any, ...]) -> str:
    """`baskets.1.price` -> `baskets[id=50000002].price`: name nested records by id, not position."""
    parts, node = [], record
    for step in loc:
        if isinstance(step, int) and isinstance(node, list) and step < len(node):
            node = node[step]
            item_id = node.get("id") if isinstance(node, dict) else None
            parts[-1] += f"[id={item_id}]" if item_id is not None else f"[{step}]"
        else:
            node = node.get(step) if isinstance(node, dict) else None
            parts.append(str(step))
    return ".".join(parts) or "record"


def parse(model: type[M], record: Any, source: str = "") -> M:
    """Validate one API record; the exact JSON stays available as `.raw`. `source` says where the raw
    page can be found, for the error message."""
    try:
        parsed = model.model_validate(record)
    except ValidationError as error:
        raise RecordError(model.__name__, record, error, source or None) from None
    if isinstance(parsed, Record):
        object.__setattr__(parsed, "_raw", record)  # the slot, past pydantic's __setattr__
    return parsed
