"""The embedded engine runs in our process, so its memory is the run's RSS (bench/memory.py): merges
take one column at a time and chDB's allocator returns freed pages after 1 s. A server keeps its own
configuration."""

import os

from qtickets_assets.warehouse.engine import EMBEDDED_JEMALLOC, EMBEDDED_TABLE_SETTINGS, tune_embedded_tables

MERGE_TREE_TABLES = ("SELECT name, create_table_query FROM system.tables "
                     "WHERE database = 'zakaz' AND engine LIKE '%MergeTree'")


def test_every_embedded_merge_tree_table_merges_vertically(clickhouse):
    clickhouse.migrate()
    with clickhouse.get_client() as client:
        tables = client.query(MERGE_TREE_TABLES).result_rows
        assert {"stg_qtickets_api_orders_raw", "fact_qtickets_sales_daily"} <= {name for name, _ in tables}
        for name, ddl in tables:
            for key, value in EMBEDDED_TABLE_SETTINGS.items():
                assert f"{key} = {value}" in ddl, name
        # A table made later (by a migration of a newer release) gets it on the next start, once.
        client.command("CREATE TABLE later (id UInt64, payload String) ENGINE = MergeTree ORDER BY id")
        assert tune_embedded_tables(client, "zakaz") == ["later"]
        assert tune_embedded_tables(client, "zakaz") == []


def test_the_embedded_allocator_returns_freed_pages_after_one_second(clickhouse):
    with clickhouse.get_client() as client:
        stats = client.query("SELECT * FROM system.jemalloc_stats").result_rows[0][0]
    # Set by the first embedded open of this process, before chDB was loaded.
    assert os.environ[EMBEDDED_JEMALLOC[0]] == EMBEDDED_JEMALLOC[1] == "dirty_decay_ms:1000"
    assert "opt.dirty_decay_ms: 1000 " in stats
