"""The warehouse's write primitives: versioned inserts into `ReplacingMergeTree(_ver)` tables.

Every write stamps one `_ver` (increasing) and `_loaded_at`; ClickHouse adds `_dedup_key` (a hash of the
business key only: the column's DEFAULT). Rows travel as Arrow batches. Rows of the write's scope that the
write did not produce get a tombstone (`_deleted = 1`, same `_ver`), so re-running a write leaves exactly
a fresh computation. A `DeleteGuard` stops a write that would remove too much of its scope before any
tombstone is written. Staging rows come from Python
(`Rows`, `RowStream`, `stamp`); marts are computed inside ClickHouse (`rebuild`).
"""

import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import dagster as dg
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from . import schema
from .engine import INSERT_SETTINGS

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def identifier(name: str) -> str:
    """`name` if it is a plain SQL identifier; identifiers cannot travel as query parameters."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"not a valid ClickHouse identifier: {name!r}")
    return name


@dataclass
class Rows:
    """Column name -> values, all columns the same length.

    `scope`: SQL condition (and its parameters) selecting the live rows this write replaces, when the
    asset narrows the scope its metadata declares (e.g. a snapshot that keeps some rows it did not poll)."""

    columns: dict[str, list[Any]] = field(default_factory=dict)
    scope: tuple[str, dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))


class BeforeWrite(Protocol):
    """Called by the writer with the write's own client: before the first chunk is pulled from the stream
    (`start`), right before each insert (`before_insert`: the chunks given since the previous insert go
    into this one), and once the stream is complete, before the tombstones (e.g. to read what the rows will
    replace while it is still there). `chunk` sees each chunk as it is pulled, while the previous insert
    may still be running: it gets no client."""

    def start(self, client: Client) -> None: ...

    def chunk(self, rows: Rows) -> None: ...

    def before_insert(self, client: Client) -> None: ...

    def done(self, client: Client) -> None: ...


@dataclass
class RowStream:
    """`Rows` produced chunk by chunk, written as they come.

    `replaced_ids`: ids (in the table's `clickhouse/id_column`) outside the partition window that this
    write replaces in full, e.g. orders re-read by id; their live rows the write did not produce are
    tombstoned too. Filled while the chunks are consumed, read after the last one."""

    chunks: Iterable[Rows]
    replaced_ids: set[int] = field(default_factory=set)
    before_write: BeforeWrite | None = None


def chunks(obj: Rows | RowStream) -> Iterator[Rows]:
    """The chunks of an asset's output, whether it returned one `Rows` or a stream of them."""
    if isinstance(obj, Rows):
        yield obj
        return
    if not isinstance(obj, RowStream):
        raise TypeError(f"expected Rows or RowStream, got {type(obj).__name__}")
    for chunk in obj.chunks:
        if not isinstance(chunk, Rows):
            raise TypeError(f"expected Rows chunks, got {type(chunk).__name__}")
        yield chunk


def new_version() -> int:
    return time.time_ns()


def ms(value: datetime) -> int:
    """Epoch milliseconds of a tz-aware instant (the form window bounds travel in)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: window bounds must carry an offset")
    return int(value.timestamp() * 1000)


def window_condition(column: str, window: dg.TimeWindow) -> tuple[str, dict[str, Any]]:
    """`column` inside the Moscow time window [start, end), as SQL plus parameters."""
    column = identifier(column)
    return (
        f"{column} >= fromUnixTimestamp64Milli({{start:Int64}}) "
        f"AND {column} < fromUnixTimestamp64Milli({{end:Int64}})",
        {"start": ms(window.start), "end": ms(window.end)},
    )


def daily_counts(
    client: Client, table: str, day_column: str, where: str, parameters: dict[str, Any], version: int
) -> dict[str, dict[str, int]]:
    """Per Moscow day of `day_column` (ISO date, a daily partition key) after the write `version`: its live
    rows in scope and the tombstones that write left there, so a range run reports each day's own counts."""
    table, day = identifier(table), f"toDate({identifier(day_column)}, 'Europe/Moscow')"
    parameters = {**parameters, "version": version}
    counts: dict[str, dict[str, int]] = {}
    live = client.query(
        f"SELECT {day} AS day, count() FROM {table} FINAL WHERE {where} GROUP BY day", parameters=parameters
    ).result_rows
    for value, count in live:
        counts.setdefault(value.isoformat(), {"dagster/row_count": 0, "tombstoned_rows": 0})[
            "dagster/row_count"] = count
    tombstones = client.query(
        f"SELECT {day} AS day, count() FROM {table} WHERE ({where}) AND _ver = {{version:UInt64}} "
        "AND _deleted = 1 GROUP BY day",
        parameters=parameters,
    ).result_rows
    for value, count in tombstones:
        counts.setdefault(value.isoformat(), {"dagster/row_count": 0, "tombstoned_rows": 0})[
            "tombstoned_rows"] = count
    return counts


ALLOW_MASS_DELETE = "qtickets/allow_mass_delete"  # run tag: "true" lets a write remove any share of its scope


class MassDeleteError(RuntimeError):
    """A write would remove more of its scope than the guard allows; nothing was removed."""


@dataclass(frozen=True)
class DeleteGuard:
    """How much of its scope's live rows one write may remove (ARCHITECTURE §5): an empty or shrunken
    answer fails the step, before any tombstone, instead of emptying a dashboard.

    A write may remove at most `max_share` of the live rows, never all of them, unless the scope holds
    fewer than `floor` live rows (tiny tables and new accounts) or the run carries `ALLOW_MASS_DELETE`."""

    asset: str
    max_share: float = 0.5
    floor: int = 20
    allowed: bool = False

    def check(self, live: int, removing: int) -> None:
        if self.allowed or removing == 0 or live < self.floor:
            return
        if removing > self.max_share * live or removing >= live:
            raise MassDeleteError(
                f"{self.asset}: this write would remove {removing} of the {live} live rows of its scope "
                f"(more than {self.max_share:.0%}, QTICKETS_MAX_DELETE_SHARE); nothing was removed. If the "
                f"source really dropped them, run again with the tag {ALLOW_MASS_DELETE}=true."
            )


def tombstone_stale(client: Client, table: str, where: str, parameters: dict[str, Any], version: int, *,
                    guard: DeleteGuard) -> int:
    """Write a tombstone (same `_ver`) for every live row in scope older than `version`; returns how many.
    First `guard` checks that count against the live rows the scope held before the write `version`."""
    table = identifier(table)
    stale = f"SELECT * FROM {table} FINAL WHERE ({where}) AND _ver < {{version:UInt64}}"
    parameters = {**parameters, "version": version}
    count = client.query(f"SELECT count() FROM ({stale})", parameters=parameters).result_rows[0][0]
    if count:
        # The scope as it was before this write: per key, its newest row older than `version` is live.
        before = (f"SELECT argMax(_deleted, _ver) AS deleted FROM {table} "
                  f"WHERE ({where}) AND _ver < {{version:UInt64}} GROUP BY _dedup_key")
        live = client.query(f"SELECT countIf(deleted = 0) FROM ({before})",
                            parameters=parameters).result_rows[0][0]
        guard.check(live, count)
        # The subquery keeps `_ver` in WHERE from resolving to the REPLACE alias.
        client.command(
            f"INSERT INTO {table} SELECT * REPLACE ({{version:UInt64}} AS _ver, 1 AS _deleted, "
            f"now64(3) AS _loaded_at) FROM ({stale})",
            parameters=parameters,
            settings=INSERT_SETTINGS,
        )
    return count


def select_columns(client: Client, select: str, parameters: dict[str, Any] | None = None) -> list[str]:
    """The names of the columns `select` yields, without running it."""
    return list(client.query(f"SELECT * FROM ({select}) LIMIT 0", parameters=parameters or {}).column_names)


def rebuild(
    client: Client,
    table: str,
    select: str,
    *,
    guard: DeleteGuard,
    where: str = "1",
    parameters: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Replace the rows of `table` in scope `where` with the result of `select`, inside ClickHouse.

    `select` yields business columns of `table` by name (the column list is its result's). Its rows get
    one new `_ver` and `_dedup_key = cityHash64(<the table's sorting key>)`; live rows in scope that it
    no longer produces become tombstones, within what `guard` allows."""
    table = identifier(table)
    names = ", ".join(identifier(c) for c in select_columns(client, select, parameters))
    key_sql = ", ".join(identifier(c) for c in schema.table(table).order_by)
    version = new_version()
    parameters = {**(parameters or {}), "version": version}
    client.command(
        f"INSERT INTO {table} ({names}, _loaded_at, _ver, _dedup_key, _deleted) "
        f"SELECT {names}, now64(3), {{version:UInt64}}, cityHash64({key_sql}), 0 FROM ({select})",
        parameters=parameters,
        settings=INSERT_SETTINGS,
    )
    tombstoned = tombstone_stale(client, table, where, parameters, version, guard=guard)
    rows = client.query(
        f"SELECT count() FROM {table} FINAL WHERE _ver = {{version:UInt64}}", parameters=parameters
    ).result_rows[0][0]
    return {"dagster/row_count": rows, "tombstoned_rows": tombstoned, "clickhouse/version": version}


def stamp(table: str, rows: Rows, version: int) -> dict[str, list[Any]]:
    """The chunk's columns plus `_ver` and `_loaded_at`, validated. `_dedup_key` is left out: ClickHouse
    computes it from the business key (the column's DEFAULT, migration 0025)."""
    count = len(rows)
    columns = dict(rows.columns)
    for name in columns:
        identifier(name)
    if any(len(values) != count for values in columns.values()):
        raise ValueError(f"{table}: columns of different lengths")
    columns["_ver"] = [version] * count
    columns["_loaded_at"] = [datetime.now(UTC)] * count
    return columns


_ARROW_TYPES = {
    "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(), "UInt64": pa.uint64(),
    "Int8": pa.int8(), "Int16": pa.int16(), "Int32": pa.int32(), "Int64": pa.int64(),
    # ClickHouse strings are bytes: Arrow binary takes str and bytes without validating UTF-8 per value.
    "Float32": pa.float32(), "Float64": pa.float64(), "String": pa.binary(), "Date": pa.date32(),
    "Bool": pa.bool_(),
}
_WRAPPER = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")
_DATETIME64 = re.compile(r"^DateTime64\((\d)(?:,\s*'([^']+)')?\)$")
_DECIMAL = re.compile(r"^Decimal\((\d+),\s*(\d+)\)$")


def arrow_type(clickhouse_type: str) -> pa.DataType:
    """The Arrow type a ClickHouse column is written from (Nullable and LowCardinality unwrapped)."""
    inner = clickhouse_type
    while wrapped := _WRAPPER.match(inner):
        inner = wrapped.group(1)
    if moment := _DATETIME64.match(inner):
        unit = {0: "s", 3: "ms", 6: "us", 9: "ns"}[int(moment.group(1))]
        return pa.timestamp(unit, tz=moment.group(2) or "UTC")
    if decimal := _DECIMAL.match(inner):
        return pa.decimal128(int(decimal.group(1)), int(decimal.group(2)))
    if inner not in _ARROW_TYPES:
        raise ValueError(f"no Arrow type for the ClickHouse type {clickhouse_type}")
    return _ARROW_TYPES[inner]


def arrow_schema(client: Client, table: str) -> dict[str, pa.DataType]:
    """Column name -> Arrow type of every column of `table` (one DESCRIBE per write, not per chunk)."""
    described = client.query(f"DESCRIBE TABLE {identifier(table)}").named_results()
    return {column["name"]: arrow_type(column["type"]) for column in described}


def arrow_table(columns: dict[str, list[Any]], schema: dict[str, pa.DataType]) -> pa.Table:
    """Stamped columns as one Arrow table: the values are converted by Arrow's C++ builders (typed by the
    table's schema) instead of one Python call per value."""
    return pa.table({name: pa.array(values, type=schema[name]) for name, values in columns.items()})


def insert_columns(client: Client, table: str, columns: dict[str, list[Any]],
                   schema: dict[str, pa.DataType]) -> None:
    """Insert stamped columns as one Arrow batch."""
    client.insert_arrow(identifier(table), arrow_table(columns, schema), settings=INSERT_SETTINGS)


# Each insert is a part for ClickHouse to write and merge: 40 inserts of 500 orders (~1.1k rows) cost 2-3x
# the CPU of 4 inserts of 5,000 (bench/README.md, issue 13 target 2). A chunk becomes Arrow as soon as it
# is pulled, so only one chunk's Python objects live at a time; the batch waits as compact Arrow. A real
# backfill (23k orders) used as little CPU with 4k rows an insert as with 10k, and ~40 MB less peak RSS.
INSERT_ROWS = 4_000


def insert_chunks(client: Client, table: str, stream: Iterable[Rows], version: int,
                  hooks: BeforeWrite | None = None, insert_rows: int = INSERT_ROWS) -> int:
    """Insert the chunks of `stream`, stamped with `version`, in Arrow batches of about `insert_rows`
    rows; `hooks` (a stream's `before_write`) sees each chunk and each insert. Returns the rows written.

    Each insert runs in a writer thread while the stream produces the next batch: the engine (chDB in
    process, or the HTTP round trip to a server) releases the GIL, so parsing and inserting overlap on two
    cores. One insert at a time, and the client is used by one thread at a time: the next batch's
    `before_insert` waits for the previous insert (it may read what that insert wrote)."""
    schema: dict[str, pa.DataType] | None = None
    batch: list[pa.Table] = []
    pending = count = 0
    with ThreadPoolExecutor(1, thread_name_prefix=f"insert-{table}") as writer:
        inserting: Future | None = None

        def insert() -> None:
            nonlocal inserting
            if inserting:
                inserting.result()  # raises the previous insert's error
            if hooks:
                hooks.before_insert(client)
            inserting = writer.submit(client.insert_arrow, identifier(table), pa.concat_tables(batch),
                                      settings=INSERT_SETTINGS)
            batch.clear()

        for chunk in stream:
            if not len(chunk):
                continue
            if hooks:
                hooks.chunk(chunk)
            schema = schema or arrow_schema(client, table)  # one DESCRIBE per write, not per chunk
            batch.append(arrow_table(stamp(table, chunk, version), schema))
            pending += len(chunk)
            count += len(chunk)
            if pending >= insert_rows:
                insert()
                pending = 0
        if batch:
            insert()
        if inserting:
            inserting.result()
    return count
