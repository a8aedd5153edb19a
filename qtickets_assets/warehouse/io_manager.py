"""Versioned ClickHouse IO manager for the staging assets.

An asset returns `Rows` (columnar data). The table is the asset key's last part. Each write:
1. stamps `_ver` (one value per write, increasing), `_dedup_key` (hash of the business key only) and
   `_loaded_at`, and inserts in one columnar batch with `async_insert=0`;
2. tombstones (`_deleted = 1`, same `_ver`) every live row in the write's scope that this write did not
   rewrite, so a re-materialization leaves exactly a fresh computation.

The scope comes from asset metadata: the partition's Moscow time window on `clickhouse/window_column`,
or the values present on `clickhouse/scope_column` (e.g. the shows that were re-polled), or the whole
table when neither is set (full snapshots such as events).
"""

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pyarrow as pa

from .engine import INSERT_SETTINGS
from .resource import ClickHouseResource

KEY = "clickhouse/key"
WINDOW_COLUMN = "clickhouse/window_column"
SCOPE_COLUMN = "clickhouse/scope_column"


@dataclass
class Rows:
    """Column name -> values, all columns the same length."""

    columns: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))


def dedup_key(*parts: object) -> int:
    """Stable 64-bit hash of a business key (never of mutable values)."""
    raw = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


def new_version() -> int:
    return time.time_ns()


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _scope(metadata: dict, window: dg.TimeWindow | None, rows: Rows | None) -> tuple[str, dict[str, Any]]:
    """SQL condition (and its parameters) selecting the rows a write replaces."""
    if window is not None:
        column = metadata[WINDOW_COLUMN]
        return (
            f"{column} >= fromUnixTimestamp64Milli({{start:Int64}}) "
            f"AND {column} < fromUnixTimestamp64Milli({{end:Int64}})",
            {"start": _ms(window.start), "end": _ms(window.end)},
        )
    if SCOPE_COLUMN in metadata and rows is not None:
        column = metadata[SCOPE_COLUMN]
        values = sorted(set(rows.columns[column]))
        return f"{column} IN {{scope:Array(UInt64)}}", {"scope": values}
    return "1", {}


class ClickHouseIOManager(dg.ConfigurableIOManager):
    clickhouse: dg.ResourceDependency[ClickHouseResource]

    def handle_output(self, context: dg.OutputContext, obj: Rows) -> None:
        table = context.asset_key.path[-1]
        metadata = context.definition_metadata or {}
        key_columns = metadata[KEY]
        version = new_version()
        count = len(obj)
        columns = dict(obj.columns)
        columns["_dedup_key"] = [dedup_key(*key) for key in zip(*(columns[c] for c in key_columns))]
        columns["_ver"] = [version] * count
        columns["_loaded_at"] = [datetime.now(UTC)] * count
        window = context.asset_partitions_time_window if context.has_asset_partitions else None
        where, parameters = _scope(metadata, window, obj)
        with self.clickhouse.get_client() as client:
            if count:
                client.insert(
                    table,
                    data=list(columns.values()),
                    column_names=list(columns),
                    column_oriented=True,
                    settings=INSERT_SETTINGS,
                )
            stale = f"SELECT * FROM {table} FINAL WHERE {where} AND _ver < {{version:UInt64}}"
            parameters = {**parameters, "version": version}
            tombstoned = client.query(f"SELECT count() FROM ({stale})", parameters=parameters).result_rows[0][0]
            if tombstoned:
                # The subquery keeps `_ver` in WHERE from resolving to the REPLACE alias.
                client.command(
                    f"INSERT INTO {table} SELECT * REPLACE ({{version:UInt64}} AS _ver, 1 AS _deleted, "
                    f"now64(3) AS _loaded_at) FROM ({stale})",
                    parameters=parameters,
                    settings=INSERT_SETTINGS,
                )
        context.add_output_metadata(
            {"dagster/row_count": count, "tombstoned_rows": tombstoned, "clickhouse/version": version}
        )

    def load_input(self, context: dg.InputContext) -> pa.Table:
        upstream = context.upstream_output
        table = upstream.asset_key.path[-1]
        window = context.asset_partitions_time_window if context.has_asset_partitions else None
        where, parameters = _scope(upstream.definition_metadata or {}, window, None)
        with self.clickhouse.get_client() as client:
            return client.query_arrow(f"SELECT * FROM {table} FINAL WHERE {where}", parameters=parameters)
