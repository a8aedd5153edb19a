"""Apply `clickhouse_migrations/NNNN_name.sql` in order and record each in a ledger.

One statement at a time (ClickHouse takes no multi-statement requests). A file that is already recorded
is skipped; a recorded file whose checksum changed is an error: write a new migration instead.

Cluster mode (`CLICKHOUSE_CLUSTER`): the same files run on a cluster. Each DDL statement is rendered with
`ON CLUSTER '<name>'` and MergeTree-family engines become their Replicated* forms with the standard
Keeper path; the ledger too. The checksum is always that of the file, so switching a deployment to a
cluster does not make applied files look edited. Files never name a cluster themselves.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_connect.driver.client import Client

from ..settings import CLUSTER_NAME
from .engine import INSERT_SETTINGS

# Package data (the top-level clickhouse_migrations/ is linked into the package): found the same way in a
# checkout, an editable install and a plain `pip install .`.
MIGRATIONS_DIR = Path(__file__).parents[1] / "clickhouse_migrations"
LEDGER = "_schema_migrations"
FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
REPLICA_ARGS = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def statements(self) -> list[str]:
        """Statements split on a `;` that ends a line; `--` comment lines dropped."""
        body = "\n".join(line for line in self.text.splitlines() if not line.lstrip().startswith("--"))
        return [part.strip() for part in re.split(r";\s*(?:\n|$)", body) if part.strip()]


_NAME = r"(?:`[^`]*`|\"[^\"]*\"|[A-Za-z_][A-Za-z0-9_]*)"
# Statements that take `ON CLUSTER` right after the object name.
_AFTER_NAME = re.compile(
    rf"""^\s*(?:
        (?:CREATE(?:\s+OR\s+REPLACE)?|ATTACH|REPLACE)\s+(?:TEMPORARY\s+)?
            (?:TABLE|DATABASE|DICTIONARY|FUNCTION|(?:MATERIALIZED\s+|LIVE\s+|WINDOW\s+)?VIEW)
            (?:\s+IF\s+NOT\s+EXISTS)?
      | ALTER\s+TABLE
      | (?:DROP|DETACH)\s+(?:TEMPORARY\s+)?(?:TABLE|DATABASE|DICTIONARY|FUNCTION|VIEW)(?:\s+IF\s+EXISTS)?
      | TRUNCATE(?:\s+TEMPORARY)?(?:\s+TABLE)?(?:\s+IF\s+EXISTS)?
      | OPTIMIZE\s+TABLE
    )\s+(?P<name>{_NAME}(?:\s*\.\s*{_NAME})?)""",
    re.IGNORECASE | re.VERBOSE,
)
# Statements that take it at the end.
_AT_END = re.compile(r"^\s*(?:RENAME|EXCHANGE)\s+(?:TABLES?|DICTIONAR(?:Y|IES)|DATABASE)\b", re.IGNORECASE)
# Data statements run on the node we talk to; replication carries their rows to the other replicas.
_DATA = re.compile(r"^\s*(?:INSERT|SELECT|WITH)\b", re.IGNORECASE)
_ON_CLUSTER = re.compile(r"\bON\s+CLUSTER\b", re.IGNORECASE)
# A MergeTree-family engine that is not replicated yet (SharedMergeTree is ClickHouse Cloud's own).
_ENGINE = re.compile(
    r"\bENGINE\s*(?:=\s*)?(?P<engine>(?!Replicated|Shared)(?P<kind>[A-Za-z]*)MergeTree)\b(?P<open>\s*\()?",
    re.IGNORECASE,
)


def _code_only(sql: str) -> str:
    """`sql` with comments and string literals blanked (same length), so patterns see code only."""
    out = list(sql)
    i = 0
    while i < len(sql):
        if sql[i] in "'\"`":
            quote, j = sql[i], i + 1
            while j < len(sql) and sql[j] != quote:
                j += 2 if sql[j] == "\\" else 1
            if quote == "'":  # identifiers stay readable; literals do not
                out[i + 1 : j] = " " * (min(j, len(sql)) - i - 1)
            i = j + 1
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            end = sql.find("\n" if sql[i] == "-" else "*/", i)
            j = len(sql) if end < 0 else end + (0 if sql[i] == "-" else 2)
            out[i:j] = " " * (j - i)
            i = j
        else:
            i += 1
    return "".join(out)


def _closing_paren(code: str, start: int) -> int:
    """Index of the `)` that closes the `(` at `start`."""
    depth = 0
    for i in range(start, len(code)):
        depth += {"(": 1, ")": -1}.get(code[i], 0)
        if depth == 0:
            return i
    raise MigrationError(f"unbalanced parentheses in: {code[start:start + 60]}")


def render(statement: str, cluster: str | None) -> str:
    """`statement` as it runs on `cluster`; with no cluster, the statement itself."""
    if not cluster:
        return statement
    if not CLUSTER_NAME.match(cluster):
        raise MigrationError(f"CLICKHOUSE_CLUSTER: {cluster!r} is not a valid cluster name")
    code = _code_only(statement)
    if _DATA.match(code):
        return statement
    if _ON_CLUSTER.search(code):
        raise MigrationError(f"a file must not name a cluster (CLICKHOUSE_CLUSTER adds it): {statement[:80]}")
    clause = f" ON CLUSTER '{cluster}'"
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in `statement`
    if head := _AFTER_NAME.match(code):
        edits.append((head.end("name"), head.end("name"), clause))
    elif _AT_END.match(code):
        end = len(code.rstrip())  # before a trailing comment, not inside it
        edits.append((end, end, clause))
    else:
        raise MigrationError(f"cannot render this statement kind for a cluster: {statement[:80]}")
    for engine in _ENGINE.finditer(code):
        replicated = f"Replicated{engine['kind']}MergeTree"
        if engine["open"]:
            close = _closing_paren(code, engine.end("open") - 1)
            arguments = statement[engine.end("open") : close].strip()
            edits.append((engine.start("engine"), close + 1,
                          f"{replicated}({REPLICA_ARGS}{', ' + arguments if arguments else ''})"))
        else:
            edits.append((engine.start("engine"), engine.end("engine"), f"{replicated}({REPLICA_ARGS})"))
    for start, end, replacement in sorted(edits, reverse=True):
        statement = statement[:start] + replacement + statement[end:]
    return statement


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        migrations.append(Migration(int(match.group(1)), path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {directory}")
    return migrations


def applied(client: Client, database: str) -> dict[int, tuple[str, str]]:
    """version -> (file name, checksum) of what the ledger records."""
    rows = client.query(f"SELECT version, name, checksum FROM {database}.{LEDGER}").result_rows
    return {version: (name, checksum) for version, name, checksum in rows}


def migrate(
    client: Client, database: str, directory: Path = MIGRATIONS_DIR, cluster: str | None = None
) -> list[str]:
    """Bring `database` up to date (on every node of `cluster`, if given); returns the files applied now.

    An up-to-date schema costs local reads only: no DDL is sent, so on a cluster a replica that is down
    does not stall every process start in the distributed DDL queue.
    """
    if not client.command(f"EXISTS TABLE {database}.{LEDGER}"):
        client.command(render(f"CREATE DATABASE IF NOT EXISTS {database}", cluster))
        client.command(render(
            f"CREATE TABLE IF NOT EXISTS {database}.{LEDGER} (version UInt32, name String, checksum String, "
            "applied_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY version",
            cluster,
        ))
    done = applied(client, database)
    client.database = database  # migration files use unqualified names
    newly_applied = []
    for migration in discover(directory):
        if migration.version in done:
            name, checksum = done[migration.version]
            if checksum != migration.checksum:
                raise MigrationError(
                    f"{migration.name} was edited after it was applied (recorded as {name}, checksum "
                    f"{checksum[:12]}, now {migration.checksum[:12]}); add a new migration instead"
                )
            continue
        for statement in migration.statements():
            try:
                client.command(render(statement, cluster))
            except Exception as error:
                raise MigrationError(f"{migration.name}: {error}") from error
        client.insert(
            LEDGER,
            [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
            settings=INSERT_SETTINGS,
        )
        newly_applied.append(migration.name)
    return newly_applied
