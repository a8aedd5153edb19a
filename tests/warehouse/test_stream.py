"""Streaming writes: an asset may return its rows chunk by chunk (flat memory for any backfill)."""

import dagster as dg
import pytest

from qtickets_assets.partitions import daily_partitions
from qtickets_assets.transform import order_rows
from qtickets_assets.warehouse.writes import ALLOW_MASS_DELETE, RowStream, insert_chunks, new_version
from tests.builders import STAGING_METADATA, D, at, basket, order


def staging_from(produce) -> dg.AssetsDefinition:
    @dg.asset(name="stg_qtickets_api_orders_raw", partitions_def=daily_partitions,
              io_manager_key="clickhouse_io", metadata=STAGING_METADATA)
    def staging() -> RowStream:
        return RowStream(produce())

    return staging


def orders(first_id: int, count: int):
    def one(i: int):
        tickets = [basket(first_id * 10 + i, 300001, 900)]
        return order(first_id + i, 24001, at(D, 10, i % 60), tickets, payed=at(D, 11))

    return [one(i) for i in range(count)]


def test_chunks_share_one_version_and_tombstone_only_after_the_last(resources, clickhouse):
    three_chunks = [order_rows(orders(1000 + 100 * n, 40)) for n in range(3)]
    result = dg.materialize([staging_from(lambda: iter(three_chunks))], resources=resources,
                            partition_key=D.isoformat())
    written = result.asset_materializations_for_node("stg_qtickets_api_orders_raw")[0].metadata
    assert written["dagster/row_count"].value == 120
    # A smaller fresh computation: the 80 rows it no longer has become tombstones (2/3 of the scope: a
    # mass deletion, so the run says it means it).
    dg.materialize([staging_from(lambda: iter(three_chunks[:1]))], resources=resources,
                   partition_key=D.isoformat(), tags={ALLOW_MASS_DELETE: "true"})
    with clickhouse.get_client() as client:
        live, versions = client.query(
            "SELECT count(), uniqExact(_ver) FROM stg_qtickets_api_orders_raw FINAL"
        ).result_rows[0]
        tombstones = client.query(
            "SELECT count() FROM stg_qtickets_api_orders_raw WHERE _deleted = 1"
        ).result_rows[0][0]
    assert (live, versions, tombstones) == (40, 1, 80)


def test_a_failing_stream_keeps_earlier_rows_and_writes_no_tombstone(resources, clickhouse):
    dg.materialize([staging_from(lambda: iter([order_rows(orders(1000, 30))]))], resources=resources,
                   partition_key=D.isoformat())

    def broken():
        yield order_rows(orders(5000, 10))
        raise RuntimeError("page 2 is malformed")

    with pytest.raises(RuntimeError, match="page 2 is malformed"):
        dg.materialize([staging_from(broken)], resources=resources, partition_key=D.isoformat())
    with clickhouse.get_client() as client:
        live = client.query("SELECT count() FROM stg_qtickets_api_orders_raw FINAL").result_rows[0][0]
    # The 30 earlier rows stay live and nothing was tombstoned; the 10 fresh rows were still waiting for
    # their insert (a batch of INSERT_ROWS) when the stream failed, so they never landed.
    assert live == 30


def test_chunks_are_inserted_in_batches_and_the_hook_sees_each_chunk_before_its_insert(clickhouse):
    table = "stg_qtickets_api_orders_raw"

    class Recorder:
        def __init__(self):
            self.events = []

        def chunk(self, rows):
            self.events.append(("chunk", len(rows)))

        def before_insert(self, client):  # the rows already in the table when an insert starts
            self.events.append(("insert", client.query(f"SELECT count() FROM {table}").result_rows[0][0]))

    hooks = Recorder()
    stream = (order_rows(orders(1000 + 100 * n, 40)) for n in range(5))
    with clickhouse.get_client() as client:
        written = insert_chunks(client, table, stream, new_version(), hooks, insert_rows=100)
        live = client.query(f"SELECT count() FROM {table} FINAL").result_rows[0][0]
    assert (written, live) == (200, 200)
    assert hooks.events == [("chunk", 40)] * 3 + [("insert", 0)] + [("chunk", 40)] * 2 + [("insert", 120)]
