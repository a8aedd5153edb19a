"""Small durable SQLite files next to the Dagster instance or the data (alert outbox, hook store, shared
retry budgets): unlike the embedded warehouse, any number of processes may open them at once."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def sqlite_store(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    """A durable SQLite file any process may open (WAL; a commit returns once it is on disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(schema)
        yield connection
    finally:
        connection.close()
