"""Open clickhouse-connect clients for either engine.

Server DSNs (http/https) get a plain client. Embedded DSNs (chdb:///path) are guarded: chDB lets one
process at a time own a data directory, so we take a file lock (`<data dir>.lock`, holding the owner's
pid) first and wait for it, saying so, instead of letting the engine fail with its opaque "Code: 36"
error. A process that does not use this lock but has the directory open is waited for the same way.
Inside one process the lock is re-entrant: any number of clients, in any thread, share the engine.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError
from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

# Client-side batches (no async insert), the same on chDB and servers. An inserted block is not
# deduplicated on its way in (`optimize_on_insert`): a write's rows have distinct keys, and the newest
# version of a key wins at read time (FINAL) and in merges anyway; the pass cost 13-22% of a staging
# insert's CPU (bench/README.md, issue 13, "Target 2 (stop 19)").
INSERT_SETTINGS = {"async_insert": 0, "optimize_on_insert": 0}
# Embedded engine only: chDB merges inside our process, so a merge's memory is the run's RSS. ClickHouse
# merges parts of fewer than 131,072 rows horizontally (every column at once: a read and a compression
# buffer per column and part); on the 36-column orders staging each such merge took ~200 MB during a
# backfill. Vertical merges (the key columns, then one column at a time) took ~50 MB, same wall time
# (bench/README.md, "Target 3 (stop 18)"). Servers keep ClickHouse's defaults.
EMBEDDED_TABLE_SETTINGS = {"vertical_merge_algorithm_min_rows_to_activate": 1}
# chDB's own jemalloc (it reads JE_MALLOC_CONF when chDB is loaded, so it must be set before the first
# embedded client). ClickHouse keeps freed pages for 5 s (`dirty_decay_ms:5000`), tuned for a server that
# owns its host; in our process that is tens of MB of RSS between inserts. 1 s gave ~15-35 MB less peak
# RSS at the same CPU time; 0 gave ~30-40 MB less but +17% CPU (page faults). An operator's value wins.
EMBEDDED_JEMALLOC = ("JE_MALLOC_CONF", "dirty_decay_ms:1000")
SETTING = "CLICKHOUSE_DSN (chdb:///path) or QTICKETS_DATA_DIR"
POLL_S = 0.2


class EngineBusyError(RuntimeError):
    """Another process owns the embedded engine's data directory."""


class EnginePathError(RuntimeError):
    """The embedded engine's data directory cannot be used (a file, read-only, ...)."""


def chdb_path(dsn: str) -> Path | None:
    """The data directory of a chdb:// DSN, or None for a server DSN."""
    if not dsn.startswith("chdb://"):
        return None
    return Path(dsn.removeprefix("chdb://").split("?", 1)[0]).resolve()


class WarehouseUnreachableError(RuntimeError):
    """A ClickHouse server DSN that does not answer; names host:port, never the password."""


def _unreachable(dsn: str, error: Exception) -> WarehouseUnreachableError:
    parts = urlsplit(dsn)
    where = f"{parts.hostname}:{parts.port or (8443 if parts.scheme == 'https' else 8123)}"
    text = str(error).replace(parts.password, "***") if parts.password else str(error)
    # The driver's message is a long urllib3 chain; its errno or timeout part is the cause.
    cause = re.search(r"\[Errno -?\d+\][^'\")]*|[A-Za-z ]*timed out[^'\")]*", text)
    return WarehouseUnreachableError(f"ClickHouse server {where} (CLICKHOUSE_DSN) does not answer: "
                                     f"{cause.group(0).strip() if cause else type(error).__name__}")


def redact(dsn: str) -> str:
    """The DSN without its password, for logs and errors."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def _write_pid(fd: int) -> None:
    """Called by filelock with the locked descriptor: the waiters' message names the holder."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _holder(lock_file: Path) -> str:
    try:
        return lock_file.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def _prepare(path: Path) -> Path:
    """Create the data directory; a path that cannot be one is an error naming it and the setting."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock_file = path.with_name(path.name + ".lock")
        lock_file.touch()
        if not os.access(path, os.W_OK):
            raise PermissionError("not writable")
    except FileExistsError:
        raise EnginePathError(f"embedded ClickHouse data directory {path} is a file, not a directory; "
                              f"set {SETTING} to a directory") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise EnginePathError(f"embedded ClickHouse data directory {path} cannot be used ({reason}); "
                              f"set {SETTING} to a writable directory") from None
    return lock_file


def _busy(path: Path, holder: str, timeout_s: float) -> EngineBusyError:
    return EngineBusyError(
        f"another process holds {path} (pid {holder}); the embedded engine allows one process per data "
        f"directory. Waited {timeout_s:g}s (CLICKHOUSE_LOCK_TIMEOUT_S)."
    )


def _outside_holder(path: Path) -> bool:
    """Whether a process that does not use our lock has chDB open on `path` (it flocks `status`)."""
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the probe's own lock


def _lock(path: Path, lock_file: Path, deadline: float, timeout_s: float) -> FileLock:
    """The process-wide lock of `path`, acquired (re-entrant: a holder in this process just counts)."""
    # is_singleton: every client of `path` in this process shares one lock and its counter;
    # thread_local=False: the counter is the process's, not the thread's.
    lock = FileLock(lock_file, thread_local=False, is_singleton=True, on_acquired=_write_pid)
    try:
        lock.acquire(blocking=False)
        return lock
    except Timeout:
        pass
    log.warning("waiting: another process holds %s (pid %s)", path, _holder(lock_file))
    try:
        lock.acquire(timeout=max(0.0, deadline - time.monotonic()), poll_interval=POLL_S)
    except Timeout:
        raise _busy(path, _holder(lock_file), timeout_s) from None
    log.warning("embedded ClickHouse at %s is free again; continuing", path)
    return lock


def _open_chdb(path: Path, first: bool, deadline: float, timeout_s: float, **client_kwargs) -> Client:
    """Open chDB on `path`. If this process is its `first` user and a process that does not use our
    lock has it open, wait (probing its lock silently: each failed open makes chDB print to stderr)."""
    os.environ.setdefault(*EMBEDDED_JEMALLOC)  # no effect once chDB is loaded: the first open sets it
    announced = False
    while True:
        try:
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}", **client_kwargs)
            break
        except Exception as error:
            if not (first and _outside_holder(path)):
                raise EnginePathError(
                    f"embedded ClickHouse could not open {path}: {str(error)[:300]}; check {SETTING}"
                ) from error
        if not announced:
            log.warning("waiting: another process holds %s (pid unknown: it does not use our lock)", path)
            announced = True
        while _outside_holder(path):
            if time.monotonic() >= deadline:
                raise _busy(path, "unknown: it does not use our lock", timeout_s)
            time.sleep(POLL_S)
    if announced:
        log.warning("embedded ClickHouse at %s is free again; continuing", path)
    return client


def tune_embedded_tables(client: Client, database: str) -> list[str]:
    """Give every MergeTree table of `database` the `EMBEDDED_TABLE_SETTINGS` it lacks (tables a later
    migration creates get them on the next start); returns the tables altered."""
    tables = client.query(
        "SELECT name, create_table_query FROM system.tables "
        "WHERE database = {database:String} AND engine LIKE '%MergeTree'", parameters={"database": database}
    ).result_rows
    altered = []
    for name, ddl in tables:
        # The engine writes a table's settings back into its DDL as `name = value`.
        missing = [f"{key} = {value}" for key, value in EMBEDDED_TABLE_SETTINGS.items()
                   if f"{key} = {value}" not in ddl]
        if missing:
            client.command(f"ALTER TABLE `{database}`.`{name}` MODIFY SETTING {', '.join(missing)}")
            altered.append(name)
    return altered


@contextmanager
def open_client(dsn: str, *, lock_timeout_s: float = 600.0, **client_kwargs) -> Iterator[Client]:
    """A clickhouse-connect client for `dsn`, closed on exit."""
    path = chdb_path(dsn)
    if path is None:
        try:
            client = clickhouse_connect.get_client(dsn=dsn, **client_kwargs)
        except OperationalError as error:
            raise _unreachable(dsn, error) from None
        try:
            yield client
        finally:
            client.close()
        return

    deadline = time.monotonic() + lock_timeout_s
    lock = _lock(path, _prepare(path), deadline, lock_timeout_s)
    try:
        client = _open_chdb(path, lock.lock_counter == 1, deadline, lock_timeout_s, **client_kwargs)
        try:
            yield client
        finally:
            client.close()
    finally:
        lock.release()
