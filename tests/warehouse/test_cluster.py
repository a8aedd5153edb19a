"""Cluster mode: the same migration files rendered with ON CLUSTER and Replicated* engines.

ClickHouse's own parser (formatQuery in chDB) checks that every rendered statement is valid SQL and that
the rendering changed nothing but the cluster clause and the engine. No Keeper runs here, so the
distributed DDL itself is not executed; what the engine does with the ledger in cluster mode is.
"""

import hashlib
import re
import shutil

import pytest

from qtickets_assets.definitions import build_resources
from qtickets_assets.settings import SettingsError, get_settings
from qtickets_assets.warehouse.engine import open_client
from qtickets_assets.warehouse.migrations import (
    LEDGER,
    MIGRATIONS_DIR,
    REPLICA_ARGS,
    MigrationError,
    discover,
    migrate,
    render,
)

STATEMENTS = [(m.name, s) for m in discover() for s in m.statements()]
REPLICATED = re.compile(  # what the renderer adds to an engine, as formatQuery prints it
    r"Replicated(\w*)MergeTree\('/clickhouse/tables/\{shard\}/\{database\}/\{table\}', '\{replica\}'(?:, )?"
)


def test_migration_files_exist():
    assert len(STATEMENTS) >= 9  # 0001-0003 alone hold nine statements


@pytest.mark.parametrize(("name", "statement"), STATEMENTS)
def test_unclustered_rendering_is_the_identity(name, statement):
    assert render(statement, None) is statement
    assert render(statement, "") is statement


SAMPLES = [
    (  # the shape of every staging and mart table
        "CREATE TABLE IF NOT EXISTS t\n(\n    a UInt64,\n    _ver UInt64\n)\n"
        "ENGINE = ReplacingMergeTree(_ver, _deleted)\nORDER BY a",
        "CREATE TABLE IF NOT EXISTS t ON CLUSTER 'prod'\n(\n    a UInt64,\n    _ver UInt64\n)\n"
        f"ENGINE = ReplicatedReplacingMergeTree({REPLICA_ARGS}, _ver, _deleted)\nORDER BY a",
    ),
    (  # the ledger: a bare MergeTree, qualified name
        "CREATE TABLE IF NOT EXISTS zakaz._schema_migrations (version UInt32) "
        "ENGINE = MergeTree ORDER BY version",
        "CREATE TABLE IF NOT EXISTS zakaz._schema_migrations ON CLUSTER 'prod' (version UInt32) "
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}') "
        "ORDER BY version",
    ),
    (
        "CREATE TABLE s (k UInt8, n UInt64) ENGINE = SummingMergeTree() ORDER BY k",
        "CREATE TABLE s ON CLUSTER 'prod' (k UInt8, n UInt64) "
        f"ENGINE = ReplicatedSummingMergeTree({REPLICA_ARGS}) ORDER BY k",
    ),
    (
        "create table if not exists `odd name` (k UInt8) engine = MergeTree order by k",
        "create table if not exists `odd name` ON CLUSTER 'prod' (k UInt8) "
        f"engine = ReplicatedMergeTree({REPLICA_ARGS}) order by k",
    ),
    (
        "CREATE OR REPLACE VIEW v_sales_14d AS\nSELECT 1 AS x",
        "CREATE OR REPLACE VIEW v_sales_14d ON CLUSTER 'prod' AS\nSELECT 1 AS x",
    ),
    (  # engine text inside a string literal and a comment is left alone
        "CREATE MATERIALIZED VIEW IF NOT EXISTS zakaz.mv TO zakaz.t AS\n"
        "SELECT 'ENGINE = MergeTree' AS s /* ENGINE = MergeTree */ FROM src -- ENGINE = MergeTree",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS zakaz.mv ON CLUSTER 'prod' TO zakaz.t AS\n"
        "SELECT 'ENGINE = MergeTree' AS s /* ENGINE = MergeTree */ FROM src -- ENGINE = MergeTree",
    ),
    (  # a materialized view's inner table is replicated too
        "CREATE MATERIALIZED VIEW mv ENGINE = AggregatingMergeTree ORDER BY k AS SELECT k FROM src",
        "CREATE MATERIALIZED VIEW mv ON CLUSTER 'prod' "
        f"ENGINE = ReplicatedAggregatingMergeTree({REPLICA_ARGS}) ORDER BY k AS SELECT k FROM src",
    ),
    (
        "CREATE DATABASE IF NOT EXISTS zakaz",
        "CREATE DATABASE IF NOT EXISTS zakaz ON CLUSTER 'prod'",
    ),
    (
        "ALTER TABLE `zakaz`.`t` ADD COLUMN IF NOT EXISTS c String "
        "DEFAULT 'CREATE TABLE x (a) ENGINE = MergeTree'",
        "ALTER TABLE `zakaz`.`t` ON CLUSTER 'prod' ADD COLUMN IF NOT EXISTS c String "
        "DEFAULT 'CREATE TABLE x (a) ENGINE = MergeTree'",
    ),
    ("DROP VIEW IF EXISTS v_old", "DROP VIEW IF EXISTS v_old ON CLUSTER 'prod'"),
    ("RENAME TABLE a TO b, c TO d", "RENAME TABLE a TO b, c TO d ON CLUSTER 'prod'"),
    ("RENAME TABLE a TO b -- swap", "RENAME TABLE a TO b ON CLUSTER 'prod' -- swap"),
    (  # already replicated, or not a MergeTree: only the cluster clause
        f"CREATE TABLE r (k UInt8) ENGINE = ReplicatedMergeTree({REPLICA_ARGS}) ORDER BY k",
        f"CREATE TABLE r ON CLUSTER 'prod' (k UInt8) ENGINE = ReplicatedMergeTree({REPLICA_ARGS}) ORDER BY k",
    ),
    ("CREATE TABLE m (k UInt8) ENGINE = Memory",
     "CREATE TABLE m ON CLUSTER 'prod' (k UInt8) ENGINE = Memory"),
    # data statements run where we are connected; replication copies their rows
    ("INSERT INTO t SELECT * FROM s", "INSERT INTO t SELECT * FROM s"),
]


@pytest.mark.parametrize(("statement", "expected"), SAMPLES)
def test_sample_statements_render_exactly(statement, expected):
    assert render(statement, "prod") == expected


def test_cluster_macro_is_kept_for_the_server_to_expand():
    assert render("CREATE DATABASE IF NOT EXISTS zakaz", "{cluster}") == (
        "CREATE DATABASE IF NOT EXISTS zakaz ON CLUSTER '{cluster}'"
    )


@pytest.mark.parametrize(
    ("statement", "cluster", "message"),
    [
        ("CREATE TABLE t ON CLUSTER c (k UInt8) ENGINE = Memory", "prod", "must not name a cluster"),
        ("GRANT SELECT ON zakaz.* TO bi", "prod", "cannot render"),
        ("CREATE DATABASE zakaz", "prod'; DROP DATABASE zakaz; --", "not a valid cluster name"),
    ],
)
def test_what_cannot_be_rendered_is_refused(statement, cluster, message):
    with pytest.raises(MigrationError, match=message):
        render(statement, cluster)


@pytest.fixture
def chdb_client(tmp_path):
    with open_client(f"chdb://{tmp_path / 'clickhouse'}", lock_timeout_s=5) as client:
        yield client


def _formatted(client, sql: str) -> str:
    result = client.query("SELECT formatQuerySingleLine({sql:String})", parameters={"sql": sql})
    return result.result_rows[0][0]


def test_every_migration_renders_to_valid_cluster_sql(chdb_client):
    """For each file present now: the rendered statement parses, carries one ON CLUSTER if it is DDL,
    replicates every MergeTree-family engine, and differs from the file in nothing else."""
    for name, statement in STATEMENTS:
        original = _formatted(chdb_client, statement)
        rendered = _formatted(chdb_client, render(statement, "prod"))  # raises if it does not parse
        if re.match(r"(INSERT|SELECT|WITH)\b", original):
            assert rendered == original, name
            continue
        assert rendered.count(" ON CLUSTER prod") == 1, (name, rendered)
        engines = re.findall(r"ENGINE = (\w*MergeTree)", original)
        assert re.findall(r"ENGINE = (\w*MergeTree)", rendered) == [
            e if e.startswith("Replicated") else f"Replicated{e}" for e in engines
        ], name
        undone = REPLICATED.sub(r"\1MergeTree(", rendered.replace(" ON CLUSTER prod", "", 1))
        assert _formatted(chdb_client, undone) == original, name


def test_checksum_is_the_files_in_cluster_mode(chdb_client, tmp_path):
    """A deployment switched to a cluster sees its applied files as unchanged, refuses an edited one by
    name, and sends pending DDL to the engine with the cluster clause (which chDB, having no cluster,
    rejects: the ledger then records nothing)."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    applied = migrate(chdb_client, "zakaz", directory)
    ledger = dict(chdb_client.query(f"SELECT name, checksum FROM zakaz.{LEDGER}").result_rows)
    files = sorted(directory.glob("*.sql"))
    assert ledger == {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}

    assert migrate(chdb_client, "zakaz", directory, cluster="prod") == []

    (directory / "9999_next.sql").write_text(
        "CREATE TABLE IF NOT EXISTS next_t (k UInt8) ENGINE = MergeTree ORDER BY k;\n"
    )
    with pytest.raises(MigrationError, match=r"9999_next.sql: .*(cluster|CLUSTER).*prod"):
        migrate(chdb_client, "zakaz", directory, cluster="prod")
    assert chdb_client.command(f"SELECT count() FROM zakaz.{LEDGER}") == len(applied)
    assert not chdb_client.command("EXISTS TABLE zakaz.next_t")

    edited = directory / applied[0]
    edited.write_text(edited.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match=f"{applied[0]} was edited"):
        migrate(chdb_client, "zakaz", directory, cluster="prod")


@pytest.fixture
def env(monkeypatch):
    for name in ("CLICKHOUSE_DSN", "CLICKHOUSE_CLUSTER", "QTICKETS_API_BASE_URL", "QTICKETS_ENV_FILE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_cluster_setting_reaches_the_resource(env):
    env.setenv("CLICKHOUSE_DSN", "http://loader:pw@ch-1.internal:8123")
    env.setenv("CLICKHOUSE_CLUSTER", "{cluster}")
    assert build_resources(get_settings())["clickhouse"].cluster == "{cluster}"


@pytest.mark.parametrize(
    ("dsn", "cluster", "message"),
    [
        (None, "prod", "CLICKHOUSE_CLUSTER: needs a server"),
        ("http://ch:8123", "prod'; --", "CLICKHOUSE_CLUSTER"),
    ],
)
def test_bad_cluster_setting_is_named(env, dsn, cluster, message):
    if dsn:
        env.setenv("CLICKHOUSE_DSN", dsn)
    env.setenv("CLICKHOUSE_CLUSTER", cluster)
    with pytest.raises(SettingsError, match=message):
        get_settings()
