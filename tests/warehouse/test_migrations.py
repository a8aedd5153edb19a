import shutil
import subprocess
import sys
import textwrap

import pytest

from qtickets_assets.warehouse.engine import EngineBusyError, open_client
from qtickets_assets.warehouse.migrations import LEDGER, MIGRATIONS_DIR, MigrationError, discover, migrate


def test_migrations_apply_once_then_noop(clickhouse):
    names = [m.name for m in discover()]
    assert clickhouse.migrate() == names
    assert clickhouse.migrate() == []
    with clickhouse.get_client() as client:
        ledger = client.query(f"SELECT name FROM {LEDGER} ORDER BY version").result_rows
        tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
    assert [row[0] for row in ledger] == names
    assert {"stg_qtickets_api_orders_raw", "fact_qtickets_sales_daily", "v_sales_14d", "meta_job_runs"} <= (
        tables
    )


def test_edited_migration_is_refused_by_name(clickhouse, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    with open_client(clickhouse.dsn) as client:
        migrate(client, "zakaz", directory)
        edited = directory / "0002_marts.sql"
        edited.write_text(edited.read_text() + "\n-- a harmless-looking edit\n")
        with pytest.raises(MigrationError, match="0002_marts.sql was edited"):
            migrate(client, "zakaz", directory)


def test_statement_splitting_keeps_semicolons_inside_lines(tmp_path):
    (tmp_path / "0001_two.sql").write_text("-- comment; not a statement\nSELECT 'a;b';\nSELECT 2;\n")
    assert discover(tmp_path)[0].statements() == ["SELECT 'a;b'", "SELECT 2"]


def test_badly_named_file_is_an_error(tmp_path):
    (tmp_path / "1_x.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="1_x.sql"):
        discover(tmp_path)


@pytest.mark.slow
def test_second_process_gets_a_clear_message(clickhouse):
    script = textwrap.dedent(f"""
        from qtickets_assets.warehouse.engine import open_client
        try:
            with open_client({clickhouse.dsn!r}, lock_timeout_s=0.5):
                pass
        except Exception as error:
            print(type(error).__name__, error)
    """)
    with open_client(clickhouse.dsn) as client:
        client.query("SELECT 1")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    path = clickhouse.dsn.removeprefix("chdb://")
    expected = "EngineBusyError another process holds " + path
    assert result.stdout.startswith(expected), result.stdout + result.stderr
    assert "Code: 36" not in result.stdout


def test_lock_is_reentrant_within_a_process(clickhouse):
    with open_client(clickhouse.dsn) as outer, open_client(clickhouse.dsn) as inner:
        assert outer.query("SELECT 1").result_rows == inner.query("SELECT 1").result_rows


def test_busy_error_type_is_exported():
    assert issubclass(EngineBusyError, RuntimeError)
