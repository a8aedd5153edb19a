"""The tables read statically from the migrations equal what the engine builds from them."""

import shutil

from qtickets_assets.warehouse.engine import open_client
from qtickets_assets.warehouse.migrations import MIGRATIONS_DIR, migrate
from qtickets_assets.warehouse.schema import tables

ALTERS = """
-- later migrations change tables: the static reading follows them
ALTER TABLE dim_events ADD COLUMN IF NOT EXISTS venue_id UInt64 DEFAULT 0 AFTER venue;
ALTER TABLE dim_events DROP COLUMN city_timezone, ADD COLUMN note Nullable(String) COMMENT 'x';
ALTER TABLE fact_qtickets_inventory_latest MODIFY COLUMN capacity UInt32;
ALTER TABLE fact_qtickets_inventory_latest RENAME COLUMN free_seats TO seats_free;
CREATE TABLE scratch (a UInt8, b Decimal(18, 2) CODEC(ZSTD(3))) ENGINE = MergeTree ORDER BY a;
DROP TABLE scratch;
"""


def engine_tables(dsn: str, directory) -> dict[str, list[tuple[str, str]]]:
    with open_client(dsn) as client:
        migrate(client, "zakaz", directory)
        rows = client.query(
            "SELECT table, name, type FROM system.columns WHERE database = 'zakaz' "
            "AND table IN (SELECT name FROM system.tables WHERE database = 'zakaz' "
            "AND engine NOT LIKE '%View') "
            "AND table != '_schema_migrations' ORDER BY table, position"
        ).result_rows
    found: dict[str, list[tuple[str, str]]] = {}
    for table, name, kind in rows:
        found.setdefault(table, []).append((name, kind))
    return found


def test_the_migrations_tables_equal_the_engine_s(clickhouse):
    static = {name: list(table.columns.items()) for name, table in tables().items()}
    assert static == engine_tables(clickhouse.dsn, MIGRATIONS_DIR)
    assert tables()["fact_qtickets_sales_daily"].order_by == ["sales_date", "event_id", "show_id"]


def test_later_alters_are_followed(tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / "0099_alters.sql").write_text(ALTERS)
    static = {name: list(table.columns.items()) for name, table in tables(directory).items()}
    assert static == engine_tables(f"chdb://{tmp_path / 'ch'}", directory)
    assert "scratch" not in static and [n for n, _ in static["dim_events"]][4:6] == ["venue", "venue_id"]
