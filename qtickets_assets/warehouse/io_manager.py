"""The IO manager of the staging assets: adapts the write primitives (writes.py) to Dagster.

An asset returns `Rows` (columnar data), or a `RowStream` of `Rows` chunks so a long backfill runs
in flat memory. The table is the asset key's last part. Each write inserts its chunks as Arrow
batches with `async_insert=0`, then tombstones the live rows of its scope that it did not rewrite, unless
that would remove more of the scope than the resource's guard allows (the step fails instead).

The scope comes from asset metadata: the partition's Moscow time window on `clickhouse/window_column`,
or the whole table when it is not partitioned (full snapshots such as events and inventory), narrowed by
`Rows.scope` when the asset gives one (inventory keeps the last snapshot of shows that have started).
A stream may add ids it replaced outside the window (`RowStream.replaced_ids` on `clickhouse/id_column`):
rows of those ids that the write did not produce are tombstoned too, and nothing else outside the window.

Row counts in metadata come from our own data: the chDB backend's insert summary is not reliable.
"""

from typing import Any

import dagster as dg
import pyarrow as pa

from .resource import ClickHouseResource
from .writes import (
    DeleteGuard,
    Rows,
    RowStream,
    chunks,
    daily_counts,
    identifier,
    insert_chunks,
    new_version,
    tombstone_stale,
    window_condition,
)

KEY = "clickhouse/key"
WINDOW_COLUMN = "clickhouse/window_column"
# SQL condition on rows another writer owns: never replaced nor tombstoned by this asset's writes.
KEEP = "clickhouse/keep"
ID_COLUMN = "clickhouse/id_column"  # what `RowStream.replaced_ids` name (partitioned tables only)


def _scope(metadata: dict, window: dg.TimeWindow | None, replaced_ids: set[int] | None = None
           ) -> tuple[str, dict[str, Any]]:
    """SQL condition (and its parameters) selecting the rows of a partition (plus every row of the ids a
    write replaced outside it), or the whole table."""
    if window is None:
        return "1", {}
    where, parameters = window_condition(metadata[WINDOW_COLUMN], window)
    if replaced_ids:
        where = f"({where}) OR {identifier(metadata[ID_COLUMN])} IN {{replaced_ids:Array(UInt64)}}"
        parameters["replaced_ids"] = sorted(replaced_ids)
    return where, parameters


def write(client, table: str, metadata: dict, obj: Rows | RowStream, window: dg.TimeWindow | None,
          guard: DeleteGuard) -> tuple[int, int, int, dict[str, dict]]:
    """Insert `obj` and tombstone the live rows of its scope it did not rewrite: (rows written, rows
    tombstoned, version, counts per day of the window)."""
    version = new_version()
    before_write = obj.before_write if isinstance(obj, RowStream) else None
    if before_write:
        before_write.start(client)
    count = insert_chunks(client, table, chunks(obj), version, before_write)
    if before_write:
        before_write.done(client)
    replaced = obj.replaced_ids if isinstance(obj, RowStream) else None
    where, parameters = _scope(metadata, window, replaced)
    if metadata.get(KEEP):
        where = f"({where}) AND NOT ({metadata[KEEP]})"
    if isinstance(obj, Rows) and obj.scope is not None:
        narrower, extra = obj.scope
        where, parameters = f"({where}) AND ({narrower})", {**parameters, **extra}
    tombstoned = tombstone_stale(client, table, where, parameters, version, guard=guard)
    days = (daily_counts(client, table, metadata[WINDOW_COLUMN], where, parameters, version)
            if window is not None else {})
    return count, tombstoned, version, days


class ClickHouseIOManager(dg.ConfigurableIOManager):
    """Writes `Rows` returned by an asset into the table named like the asset (see the module doc)."""

    clickhouse: dg.ResourceDependency[ClickHouseResource]

    def handle_output(self, context: dg.OutputContext, obj: Rows | RowStream) -> None:
        table = identifier(context.asset_key.path[-1])
        metadata = context.definition_metadata or {}
        window = context.asset_partitions_time_window if context.has_asset_partitions else None
        with self.clickhouse.get_client() as client:
            guard = self.clickhouse.delete_guard(context.asset_key.to_user_string(),
                                                 context.step_context.dagster_run.tags)
            count, tombstoned, version, days = write(client, table, metadata, obj, window, guard)
        context.add_output_metadata(
            {"dagster/row_count": count, "tombstoned_rows": tombstoned, "clickhouse/version": version}
        )
        # A range run materializes each day: each one reports its own rows, not the range's (which stay
        # under rows_written_by_run).
        for key in context.asset_partition_keys if window is not None else []:
            day = days.get(key, {"dagster/row_count": 0, "tombstoned_rows": 0})
            context.step_context.add_asset_metadata(
                {**day, "rows_written_by_run": count},
                asset_key=context.asset_key,
                partition_key=key,
            )

    def load_input(self, context: dg.InputContext) -> pa.Table:
        upstream = context.upstream_output
        table = identifier(upstream.asset_key.path[-1])
        window = context.asset_partitions_time_window if context.has_asset_partitions else None
        where, parameters = _scope(upstream.definition_metadata or {}, window)
        with self.clickhouse.get_client() as client:
            return client.query_arrow(f"SELECT * FROM {table} FINAL WHERE {where}", parameters=parameters)
