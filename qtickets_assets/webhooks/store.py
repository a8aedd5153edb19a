"""The pending-hooks store: order ids the vendor pushed, kept durably until a run has applied them.

SQLite in WAL mode with `synchronous=FULL`: `add` returns only once the hook is on disk, so the receiver
answers 200 after the hook is safe. Any number of processes may open the file (the receiver, the daemon's
sensor, a run): unlike the embedded warehouse it is never held by one process. A redelivered hook adds a
row that the same re-read clears. Ids are cleared only up to the hook a successful run has seen
(`clear(up_to)`), so a hook that arrives while a run is going stays pending for the next one.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from ..local_store import sqlite_store

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending_hooks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    event TEXT NOT NULL,
    received_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Pending:
    order_ids: list[int]  # distinct, ascending
    up_to: int  # the newest hook's seq: pass it to `clear` once these ids are applied
    oldest_received_at: float | None


class HookStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite_store(self.path, SCHEMA)

    def add(self, order_id: int, event: str, received_at: float | None = None) -> None:
        """Record one hook durably (returns after the commit is on disk)."""
        with self._connect() as db:
            db.execute("INSERT INTO pending_hooks (order_id, event, received_at) VALUES (?, ?, ?)",
                       (int(order_id), event, received_at if received_at is not None else time.time()))

    def pending(self, limit: int = 10_000) -> Pending:
        """Up to `limit` distinct pending order ids, oldest hooks first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT order_id, max(seq), min(received_at) FROM pending_hooks "
                "GROUP BY order_id ORDER BY min(seq) LIMIT ?", (limit,)).fetchall()
        if not rows:
            return Pending([], 0, None)
        return Pending(sorted(r[0] for r in rows), max(r[1] for r in rows), min(r[2] for r in rows))

    def clear(self, order_ids: list[int], up_to: int) -> int:
        """Forget the hooks of `order_ids` received up to `up_to` (a run applied them); returns how many."""
        if not order_ids:
            return 0
        with self._connect() as db:
            cursor = db.executemany("DELETE FROM pending_hooks WHERE order_id = ? AND seq <= ?",
                                    [(int(order_id), up_to) for order_id in order_ids])
            return cursor.rowcount

    def depth(self) -> tuple[int, float | None]:
        """(pending hooks, receive time of the oldest) for metrics."""
        with self._connect() as db:
            count, oldest = db.execute("SELECT count(), min(received_at) FROM pending_hooks").fetchone()
        return count, oldest
