"""Manual fallback: sales from a CSV file (a local path, or a Google Sheet published as CSV) into the order
staging table, marked `source = 'manual'`, for a day the API could not serve. Launched by an operator from
the UI with the file in the run config; never part of the scheduled jobs (automation.py).

The whole file is validated before anything is written: a bad row is an error naming its line and column,
and nothing of the file lands. An import replaces the manual rows of the Moscow days its tickets were
created on, then rebuilds the sales fact for every day whose numbers it changed (and records those fact
partitions as materialized). Re-importing the same file changes nothing. API runs never tombstone manual
rows; once the API serves a ticket with the same (order_id, ticket_id), its row replaces the manual one.
"""

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import orjson
from pydantic import Field

from ..partitions import TIMEZONE, daily_partitions
from ..warehouse.engine import INSERT_SETTINGS
from ..warehouse.resource import ClickHouseResource
from ..warehouse.writes import Rows, new_version, stamp, tombstone_stale
from . import marts

MSK = ZoneInfo(TIMEZONE)
TABLE = "stg_qtickets_api_orders_raw"
REQUIRED = ("order_id", "ticket_id", "event_id", "show_id", "paid_at", "price")
OPTIONAL = ("quantity", "created_at", "refunded_at", "refunded_amount", "cancelled_at")
MAX_BYTES = 50_000_000  # a day of sales is far smaller; a bigger answer is not the sheet we expect


class ManualImportError(ValueError):
    """The file cannot be imported; the message names the line and the column."""


class ManualSalesConfig(dg.Config):
    source: str = Field(
        description="CSV file path on the code server, or the https URL of a Google Sheet published as CSV "
        "(File → Share → Publish to web → CSV). Columns: docs/RUNBOOK.md, 'Manual sales import'."
    )


@dataclass(frozen=True)
class Ticket:
    line: int
    order_id: int
    ticket_id: int
    event_id: int
    show_id: int
    created_at: datetime
    paid_at: datetime
    price: Decimal
    quantity: int
    refunded_at: datetime | None
    refunded_amount: Decimal
    cancelled_at: datetime | None

    def fingerprint(self) -> str:
        """Every value as imported: equal fingerprints mean the row would not change anything."""
        values = {
            "order_id": self.order_id, "ticket_id": self.ticket_id, "event_id": self.event_id,
            "show_id": self.show_id, "created_at": self.created_at.isoformat(),
            "paid_at": self.paid_at.isoformat(),
            "price": str(self.price), "quantity": self.quantity,
            "refunded_at": self.refunded_at.isoformat() if self.refunded_at else None,
            "refunded_amount": str(self.refunded_amount),
            "cancelled_at": self.cancelled_at.isoformat() if self.cancelled_at else None,
        }
        return orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode()


def read_source(source: str, http: httpx.Client | None = None) -> str:
    """The CSV text of a local file or of an http(s) URL (redirects followed, as Google's are)."""
    if source.startswith(("http://", "https://")):
        with http or httpx.Client(timeout=60, follow_redirects=True) as client:
            response = client.get(source)
        if response.status_code != 200:
            raise ManualImportError(f"the URL answered {response.status_code}")
        kind = response.headers.get("content-type", "")
        if "html" in kind:
            raise ManualImportError(f"the URL answered {kind}, not CSV: publish the sheet to the web as CSV")
        if len(response.content) > MAX_BYTES:
            raise ManualImportError(f"the URL answered more than {MAX_BYTES} bytes")
        return response.content.decode("utf-8-sig")
    path = Path(source)
    if not path.is_file():
        raise ManualImportError(f"no such file: {path}")
    return path.read_text(encoding="utf-8-sig")


def parse_csv(text: str, now: datetime, first_day: date) -> list[Ticket]:
    """Validated tickets of the whole file, or ManualImportError naming the first bad line and column."""
    header_line = text.split("\n", 1)[0]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","  # spreadsheets in ru: ';'
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader, [])]
    for name in header:
        if name not in REQUIRED + OPTIONAL:
            expected = ", ".join(REQUIRED + OPTIONAL)
            raise ManualImportError(f"line 1: unknown column {name!r} (expected {expected})")
    for name in REQUIRED:
        if name not in header:
            raise ManualImportError(f"line 1: missing column {name!r}")
    if len(set(header)) != len(header):
        raise ManualImportError("line 1: a column appears twice")
    tickets, seen = [], {}
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue  # blank lines, e.g. at the end of a sheet
        if len(values) != len(header):
            raise ManualImportError(f"line {line}: {len(values)} fields, the header has {len(header)}")
        ticket = _ticket(line, dict(zip(header, (v.strip() for v in values), strict=True)), now, first_day)
        if ticket.ticket_id in seen:
            first = seen[ticket.ticket_id]
            raise ManualImportError(
                f"line {line}, column 'ticket_id': {ticket.ticket_id} is on line {first} too"
            )
        seen[ticket.ticket_id] = line
        tickets.append(ticket)
    if not tickets:
        raise ManualImportError("the file has no rows")
    return tickets


def _ticket(line: int, row: dict[str, str], now: datetime, first_day: date) -> Ticket:
    def fail(column: str, problem: str) -> ManualImportError:
        return ManualImportError(f"line {line}, column {column!r}: {problem} (value {row.get(column)!r})")

    def integer(column: str, minimum: int, default: int | None = None) -> int:
        raw = row.get(column, "")
        if not raw and default is not None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise fail(column, "not a whole number") from None
        if value < minimum:
            raise fail(column, f"must be at least {minimum}")
        return value

    def money(column: str, required: bool) -> Decimal:
        raw = row.get(column, "").replace(" ", "").replace("\u00a0", "")
        if not raw and not required:
            return Decimal(0)
        try:
            value = Decimal(raw.replace(",", ".") if "." not in raw else raw)
        except InvalidOperation:
            raise fail(column, "not an amount") from None
        if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
            raise fail(column, "must be a non-negative amount with at most 2 decimals")
        return value

    def instant(column: str, required: bool) -> datetime | None:
        raw = row.get(column, "")
        if not raw:
            if required:
                raise fail(column, "is required")
            return None
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            example = "2026-11-20 14:05 or 2026-11-20T14:05:00+03:00"
            raise fail(column, f"not a date and time like {example}") from None
        value = value if value.tzinfo else value.replace(tzinfo=MSK)  # no offset: Moscow time
        if value > now:
            raise fail(column, "is in the future")
        if value.astimezone(MSK).date() < first_day:
            raise fail(column, f"is before the first partition {first_day}")
        return value

    paid_at = instant("paid_at", required=True)
    created_at = instant("created_at", required=False) or paid_at
    if created_at > paid_at:
        raise fail("created_at", "is after paid_at")
    refunded_at = instant("refunded_at", required=False)
    refunded_amount = money("refunded_amount", required=False)
    if refunded_amount and refunded_at is None:
        raise fail("refunded_at", "is required when refunded_amount is set")
    return Ticket(
        line=line,
        order_id=integer("order_id", 1),
        ticket_id=integer("ticket_id", 1),
        event_id=integer("event_id", 1),
        show_id=integer("show_id", 1),
        created_at=created_at,
        paid_at=paid_at,
        price=money("price", required=True),
        quantity=integer("quantity", 1, default=1),
        refunded_at=refunded_at,
        refunded_amount=refunded_amount,
        cancelled_at=instant("cancelled_at", required=False),
    )


def ticket_rows(tickets: list[Ticket]) -> Rows:
    """Order staging rows (one per ticket), as a paid order of the API would give them."""
    columns: dict[str, list] = {}

    def put(name: str, values: list) -> None:
        columns[name] = values

    put("order_id", [t.order_id for t in tickets])
    put("basket_id", [t.ticket_id for t in tickets])
    put("order_uniqid", ["" for _ in tickets])
    put("event_id", [t.event_id for t in tickets])
    put("show_id", [t.show_id for t in tickets])
    put("order_created_at", [t.created_at for t in tickets])
    put("order_updated_at", [max(m for m in (t.paid_at, t.refunded_at, t.cancelled_at) if m)
                             for t in tickets])
    put("order_deleted_at", [None for _ in tickets])
    put("payed", [1 for _ in tickets])
    put("payed_at", [t.paid_at for t in tickets])
    put("currency_id", ["RUB" for _ in tickets])
    put("payment_type_id", ["manual" for _ in tickets])
    put("quantity", [t.quantity for t in tickets])
    put("price", [t.price for t in tickets])
    put("original_price", [t.price for t in tickets])
    put("basket_created_at", [t.created_at for t in tickets])
    put("basket_deleted_at", [t.cancelled_at for t in tickets])
    put("refunded_at", [t.refunded_at for t in tickets])
    put("refunded_amount", [t.refunded_amount for t in tickets])
    put("source", ["manual" for _ in tickets])
    put("order_json", [orjson.dumps({"manual_import_line": t.line}).decode() for t in tickets])
    put("basket_json", [t.fingerprint() for t in tickets])
    return Rows(columns)


# It writes the order staging: the API's orders and the manual rows never write it at the same time.
@dg.asset(group_name="manual_fallback", kinds={"clickhouse", "python", "csv"},
          pool="stg_qtickets_api_orders_raw")
def manual_sales_import(
    context: dg.AssetExecutionContext, config: ManualSalesConfig, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    """Sales from a CSV file or a published Google Sheet into the order staging (`source = 'manual'`) for
    days the API could not serve; rebuilds the sales fact of the days it changed. Columns and rules:
    docs/RUNBOOK.md, 'Manual sales import'."""
    now = datetime.now(MSK)
    tickets = parse_csv(read_source(config.source), now, daily_partitions.start.date())
    with clickhouse.get_client() as client:
        # A ticket the API has served since is the API's: the fallback never overwrites it.
        served = set(client.query(
            f"SELECT order_id, basket_id FROM {TABLE} FINAL "
            "WHERE source != 'manual' AND order_id IN {orders:Array(UInt64)}",
            parameters={"orders": sorted({t.order_id for t in tickets})},
        ).result_rows)
        from_api = [t for t in tickets if (t.order_id, t.ticket_id) in served]
        tickets = [t for t in tickets if (t.order_id, t.ticket_id) not in served]
        if from_api:
            context.log.info(f"{len(from_api)} tickets already come from the API (lines "
                             f"{', '.join(str(t.line) for t in from_api[:20])}): left as the API has them")
        if not tickets:
            return dg.MaterializeResult(metadata={"dagster/row_count": 0, "changed": False,
                                                  "tickets_from_api": len(from_api)})
        days = sorted({t.created_at.astimezone(MSK).date() for t in tickets})
        scope = "source = 'manual' AND toDate(order_created_at, 'Europe/Moscow') IN {days:Array(Date)}"
        before = client.query(
            f"SELECT basket_json, toDate(payed_at, 'Europe/Moscow') FROM {TABLE} FINAL WHERE {scope}",
            parameters={"days": days},
        ).result_rows
        if sorted(fingerprint for fingerprint, _ in before) == sorted(t.fingerprint() for t in tickets):
            context.log.info(f"{len(tickets)} tickets, all already imported: nothing changes")
            return dg.MaterializeResult(metadata={"dagster/row_count": len(tickets), "changed": False,
                                                  "tickets_from_api": len(from_api)})
        version = new_version()
        columns = stamp(TABLE, ticket_rows(tickets), version)
        client.insert(TABLE, list(columns.values()), column_names=list(columns), column_oriented=True,
                      settings=INSERT_SETTINGS)
        tombstoned = tombstone_stale(client, TABLE, scope, {"days": days}, version,
                                     guard=clickhouse.delete_guard("manual_sales_import", context.run.tags))
        # The fact days whose numbers may have moved: the new tickets' and the replaced ones' sales dates.
        sales_days = sorted({t.paid_at.astimezone(MSK).date() for t in tickets} | {d for _, d in before})
        marts.rebuild_days(context, client, sales_days,
                           clickhouse.delete_guard("fact_qtickets_sales_daily", context.run.tags),
                           "rebuilt by manual_sales_import")
    context.log.info(f"{len(tickets)} tickets imported for {days[0]}..{days[-1]}; fact days {sales_days}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(tickets),
        "changed": True,
        "tickets_from_api": len(from_api),
        "tombstoned_rows": tombstoned,
        "created_days": ", ".join(d.isoformat() for d in days),
        "fact_days_rebuilt": ", ".join(d.isoformat() for d in sales_days),
        "clickhouse/version": version,
    })
