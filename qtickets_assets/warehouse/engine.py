"""Open clickhouse-connect clients for either engine.

Server DSNs (http/https) get a plain client. Embedded DSNs (chdb:///path) are guarded: chDB lets one
process at a time own a data directory, so we take an advisory file lock first and wait for it, saying
so, instead of letting the engine fail with its opaque "Code: 36" error. Inside one process the lock is
re-entrant: any number of clients may share the engine.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

INSERT_SETTINGS = {"async_insert": 0}  # client-side batches; same behaviour on chDB and servers


class EngineBusyError(RuntimeError):
    """Another process owns the embedded engine's data directory."""


def chdb_path(dsn: str) -> Path | None:
    """The data directory of a chdb:// DSN, or None for a server DSN."""
    if not dsn.startswith("chdb://"):
        return None
    return Path(dsn.removeprefix("chdb://").split("?", 1)[0]).resolve()


def redact(dsn: str) -> str:
    """The DSN without its password, for logs and errors."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


class _ProcessLock:
    """An flock on `<data dir>.lock`, counted so nested users in one process share it."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: dict[Path, tuple[int, int]] = {}  # path -> (fd, users)

    def acquire(self, path: Path, timeout_s: float) -> None:
        with self._mutex:
            if path in self._held:
                fd, users = self._held[path]
                self._held[path] = (fd, users + 1)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = path.with_name(path.name + ".lock")
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                self._wait(fd, path, lock_file, timeout_s)
            except BaseException:
                os.close(fd)
                raise
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._held[path] = (fd, 1)

    @staticmethod
    def _wait(fd: int, path: Path, lock_file: Path, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if announced:
                    log.warning("embedded ClickHouse at %s is free again; continuing", path)
                return
            except BlockingIOError:
                holder = lock_file.read_text().strip() or "unknown"
                if time.monotonic() >= deadline:
                    raise EngineBusyError(
                        f"another process holds {path} (pid {holder}); the embedded engine allows one "
                        f"process per data directory. Waited {timeout_s:.0f}s (CLICKHOUSE_LOCK_TIMEOUT_S)."
                    ) from None
                if not announced:
                    log.warning("waiting: another process holds %s (pid %s)", path, holder)
                    announced = True
                time.sleep(0.2)

    def release(self, path: Path) -> None:
        with self._mutex:
            fd, users = self._held[path]
            if users > 1:
                self._held[path] = (fd, users - 1)
                return
            del self._held[path]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


_LOCK = _ProcessLock()


@contextmanager
def open_client(dsn: str, *, lock_timeout_s: float = 600.0, **client_kwargs) -> Iterator[Client]:
    """A clickhouse-connect client for `dsn`, closed on exit."""
    path = chdb_path(dsn)
    if path is None:
        client = clickhouse_connect.get_client(dsn=dsn, **client_kwargs)
        try:
            yield client
        finally:
            client.close()
        return

    _LOCK.acquire(path, lock_timeout_s)
    try:
        try:
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}", **client_kwargs)
        except Exception as error:
            if "Code: 36" in str(error) or "EmbeddedServer" in str(error):
                raise EngineBusyError(
                    f"another process holds {path}: chDB could not lock its data directory "
                    "(a process that does not use qtickets-assets' lock?)"
                ) from None
            raise
        try:
            yield client
        finally:
            client.close()
    finally:
        _LOCK.release(path)
