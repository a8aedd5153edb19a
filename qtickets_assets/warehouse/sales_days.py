"""What the warehouse knows about order changes: the `updated_at` watermark of the orders staging, and the
sales days a write changed outside its own partitions (`meta_sales_days_to_rebuild`, migration 0010).

The watermark is read from staging itself, so the CLI, the schedule and a server deployment share it. A
sales day is marked before the order that touches it is rewritten (the order's previous payment day is
only readable then) and unmarked by the fact rebuild that applied it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from clickhouse_connect.driver.client import Client

from .engine import INSERT_SETTINGS
from .writes import new_version

ORDERS = "stg_qtickets_api_orders_raw"
MARKS = "meta_sales_days_to_rebuild"


def watermark(client: Client) -> datetime | None:
    """The newest `order_updated_at` the API gave that landed in staging (manual imports carry their own
    times); None when nothing has landed yet. Without FINAL: every version ever written was landed once,
    and a scan of two columns stays cheap."""
    latest, rows = client.query(
        f"SELECT max(order_updated_at), count() FROM {ORDERS} WHERE source != 'manual'").result_rows[0]
    return latest if rows else None


def paid_days(client: Client, order_ids: Iterable[int]) -> set[date]:
    """Moscow payment days of these orders as staging holds them now (before a rewrite)."""
    ids = sorted(set(order_ids))
    if not ids:
        return set()
    rows = client.query(
        f"SELECT DISTINCT toDate(payed_at, 'Europe/Moscow') FROM {ORDERS} FINAL "
        "WHERE order_id IN {ids:Array(UInt64)} AND payed_at IS NOT NULL",
        parameters={"ids": ids},
    ).result_rows
    return {row[0] for row in rows}


def mark(client: Client, days: Iterable[date], run_id: str) -> None:
    """Note sales days whose fact must be rebuilt."""
    days = sorted(set(days))
    if days:
        version = new_version()
        client.insert(MARKS, [[day, run_id, datetime.now().astimezone(), version, 0] for day in days],
                      column_names=["sales_date", "marked_by_run", "_loaded_at", "_ver", "_deleted"],
                      settings=INSERT_SETTINGS)


def marked(client: Client) -> dict[date, int]:
    """Marked days and the version of each mark."""
    rows = client.query(f"SELECT sales_date, _ver FROM {MARKS} FINAL").result_rows
    return {day: version for day, version in rows}


def unmark(client: Client, marks: dict[date, int], run_id: str) -> None:
    """Tombstone the marks a rebuild applied, each at its own version: a newer mark of the same day
    (made while the rebuild ran) outlives it."""
    if marks:
        client.insert(MARKS, [[day, run_id, datetime.now().astimezone(), version, 1]
                              for day, version in sorted(marks.items())],
                      column_names=["sales_date", "marked_by_run", "_loaded_at", "_ver", "_deleted"],
                      settings=INSERT_SETTINGS)
