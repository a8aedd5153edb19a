"""Apply `clickhouse_migrations/NNNN_name.sql` in order and record each in a ledger.

One statement at a time (ClickHouse takes no multi-statement requests). A file that is already recorded
is skipped; a recorded file whose checksum changed is an error: write a new migration instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_connect.driver.client import Client

from .engine import INSERT_SETTINGS

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "clickhouse_migrations"
LEDGER = "_schema_migrations"
FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


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


def migrate(client: Client, database: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Bring `database` up to date; returns the names of the files applied now."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.{LEDGER} (version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY version"
    )
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
                client.command(statement)
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
