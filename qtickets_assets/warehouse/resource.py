"""The ClickHouse resource: one DSN, either engine, schema brought up to date on first use."""

import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

import dagster as dg
from clickhouse_connect.driver.client import Client
from pydantic import Field, PrivateAttr

from .engine import open_client, redact, tune_embedded_tables
from .migrations import migrate
from .writes import ALLOW_MASS_DELETE, DeleteGuard

_migrated: set[tuple[str, str]] = set()  # (dsn, database) already migrated by this process
_migrate_mutex = threading.Lock()


class ClickHouseResource(dg.ConfigurableResource):
    """clickhouse-connect client factory for `chdb:///path` (embedded) or `http(s)://…` (server)."""

    dsn: str = Field(description="chdb:///abs/path or http(s)://user:password@host:8123")
    database: str = "zakaz"
    auto_migrate: bool = Field(True, description="Apply pending migrations before the first query.")
    lock_timeout_s: float = Field(600.0, description="Embedded mode: wait this long for the engine.")
    cluster: str = Field("", description="Server mode: migrate ON CLUSTER with Replicated engines.")
    compress: str = Field("lz4", description="Server mode: HTTP compression (lz4, zstd, gzip, br or none).")
    # Whole seconds: clickhouse-connect truncates timeouts to int (0.5 would become an invalid 0).
    connect_timeout_s: int = Field(10, ge=1, description="Server mode: HTTP connect timeout.")
    send_receive_timeout_s: int = Field(300, ge=1, description="Server mode: HTTP read timeout per request.")
    max_delete_share: float = Field(0.5, gt=0, le=1, description="A write may remove at most this share of "
                                    "its scope's live rows (never all), unless the run is tagged "
                                    f"{ALLOW_MASS_DELETE}=true.")
    max_delete_floor: int = Field(20, ge=0, description="Scopes with fewer live rows are not guarded.")
    repair_max_days: int = Field(7, ge=0, description="Sales fact days that differ from order staging which "
                                 "the check agrees_with_staging rebuilds per run (assets/repair_days.py).")

    _held: ExitStack | None = PrivateAttr(default=None)
    _run_client: Client | None = PrivateAttr(default=None)

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb://")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Fail fast: a warehouse that cannot be opened (no such server, a data path that is a file or
        # not writable, an engine held too long) fails the run before any step downloads the API.
        # Runs only: a sensor handles an unreachable warehouse itself (it keeps what it could not record).
        if context.dagster_run is None:
            return
        held = ExitStack()
        client = held.enter_context(open_client(self.dsn, lock_timeout_s=self.lock_timeout_s,
                                                **self.client_options()))
        if self.embedded:
            # Embedded, every step of the run is in this process: they share this one client until
            # teardown. chDB stops its engine when its last client closes and starts it again at the next
            # open (0.1-0.6 s), and each new client reads system.settings (~50 ms of CPU): 20 steps a tick.
            self._held, self._run_client = held, client
        else:
            held.close()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._held is not None:
            self._run_client = None
            self._held.close()
            self._held = None

    def delete_guard(self, asset: str, run_tags: Mapping[str, str]) -> DeleteGuard:
        """The mass-deletion guard of one write of `asset` in a run with `run_tags`."""
        allowed = run_tags.get(ALLOW_MASS_DELETE, "").strip().lower() == "true"
        return DeleteGuard(asset, self.max_delete_share, self.max_delete_floor, allowed)

    @property
    def display_dsn(self) -> str:
        return redact(self.dsn)

    def client_options(self) -> dict[str, object]:
        """clickhouse-connect options for a server; chDB has no HTTP transport to tune."""
        if self.embedded:
            return {}
        return {
            "compress": False if self.compress == "none" else self.compress,
            "connect_timeout": self.connect_timeout_s,
            "send_receive_timeout": self.send_receive_timeout_s,
            # No server session: it would pin state to one node behind a load balancer and serialize
            # queries ("session is locked"); the database travels with every request anyway.
            "autogenerate_session_id": False,
            "client_name": "qtickets-assets",
        }

    @contextmanager
    def get_client(self) -> Iterator[Client]:
        """A client whose default database is `database`, closed on exit (the run's shared client in an
        embedded run stays open until the run's end)."""
        with ExitStack() as stack:
            client = self._run_client
            if client is None:
                client = stack.enter_context(
                    open_client(self.dsn, lock_timeout_s=self.lock_timeout_s, **self.client_options()))
            if self.auto_migrate:
                self._ensure_schema(client)
            client.database = self.database
            yield client

    def migrate(self) -> list[str]:
        with open_client(self.dsn, lock_timeout_s=self.lock_timeout_s, **self.client_options()) as client:
            applied = self._migrate(client)
        _migrated.add((self.dsn, self.database))
        return applied

    def _ensure_schema(self, client: Client) -> None:
        key = (self.dsn, self.database)
        with _migrate_mutex:
            if key not in _migrated:
                self._migrate(client)
                _migrated.add(key)

    def _migrate(self, client: Client) -> list[str]:
        applied = migrate(client, self.database, cluster=self.cluster or None)
        if self.embedded:
            tune_embedded_tables(client, self.database)
        return applied
