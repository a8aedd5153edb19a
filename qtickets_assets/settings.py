"""Runtime configuration: environment variables plus an optional env file.

Every setting has a working default, so an unconfigured checkout runs on the embedded engine (chDB)
and the built-in sandbox API. A bad value stops start-up with a message that names the variable and
never echoes a secret.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from dotenv import dotenv_values
from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_FILE_VAR = "QTICKETS_ENV_FILE"
CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_.{}-]+$")  # rendered inside quotes: ON CLUSTER '<name>'
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MOSCOW = ZoneInfo("Europe/Moscow")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    qtickets_api_base_url: HttpUrl | None = Field(
        None, description="Real API base URL, e.g. https://qtickets.ru/api/rest/v1/. Unset: built-in sandbox."
    )
    qtickets_api_token: SecretStr | None = Field(None, description="Bearer token of the organiser account.")
    clickhouse_dsn: str | None = Field(
        None, description="chdb:///abs/path (embedded) or http(s)://user:pass@host:8123 (server)."
    )
    clickhouse_database: str = Field("zakaz", description="Database that holds every table and view.")
    qtickets_partitions_start: date = Field(date(2026, 10, 1), description="First daily partition.")
    qtickets_data_dir: Path = Field(Path(".data"), description="Where embedded data lives.")
    qtickets_concurrency: int = Field(
        4, ge=1, le=8,
        description="API requests in flight per step (seat maps, the pages of a listing). The vendor "
                    "documents no rate limit and none was observed; 4 keeps a 15-minute run of ~60 requests "
                    "within ~6 s at 200 ms a request. Lower it (2, then 1) if QTickets answers 429.",
    )
    qtickets_sandbox_seed: int = Field(42, description="Seed of the sandbox account.")
    qtickets_sandbox_orders_per_day: int = Field(120, ge=0, description="Average sandbox sales volume.")
    qtickets_sandbox_event_every_days: float = Field(
        4.0, gt=0, description="Sandbox account size: a new event every N days (more sales need more events)."
    )
    qtickets_sandbox_as_of: datetime | None = Field(
        None, description="Freeze the sandbox clock at this instant (with offset); unset: the real clock."
    )
    qtickets_sandbox_resales: str = Field(
        "", description="SHOW_ID@ISO_INSTANT, comma-separated: the sandbox refunds older tickets of the show "
        "without a webhook at that instant and sells the show out (issue 16's stale over-capacity)."
    )
    clickhouse_lock_timeout_s: float = Field(
        600.0, ge=0, description="Embedded mode: how long to wait for another process to release the engine."
    )
    clickhouse_cluster: str | None = Field(
        None, description="Server mode: run migrations ON CLUSTER with Replicated engines. Unset: one server."
    )
    clickhouse_compress: Literal["lz4", "zstd", "gzip", "br", "none"] = Field(
        "lz4", description="Server mode: HTTP compression of inserts and results."
    )
    # Whole seconds: clickhouse-connect truncates timeouts to int.
    clickhouse_connect_timeout_s: int = Field(10, ge=1, description="Server mode: HTTP connect timeout.")
    clickhouse_send_receive_timeout_s: int = Field(
        300, ge=1, description="Server mode: HTTP read timeout of one request (long INSERT ... SELECT)."
    )

    qtickets_max_delete_share: float = Field(
        0.5, gt=0, le=1, description="A write may remove at most this share of the live rows of its scope "
        "(never all of them); more fails the step unless the run has the tag qtickets/allow_mass_delete=true."
    )
    qtickets_max_delete_floor: int = Field(
        20, ge=0, description="Scopes with fewer live rows than this are not guarded (tiny tables)."
    )

    qtickets_rejects_retention_days: float = Field(
        14, gt=0, description="Raw pages kept for malformed records (buyers' data) are removed after this "
        "many days, at the start of each run."
    )

    # Operations (automation.py, notify.py): alert backends are all optional; URLs and tokens are secrets.
    alert_webhook_url: SecretStr | None = Field(None, description="Generic JSON webhook for alerts.")
    alert_telegram_bot_token: SecretStr | None = Field(None, description="Telegram bot token for alerts.")
    alert_telegram_chat_id: str | None = Field(None, description="Telegram chat id that receives alerts.")
    alert_slack_webhook_url: SecretStr | None = Field(None, description="Slack incoming webhook for alerts.")
    dagster_ui_url: str = Field("http://127.0.0.1:3000", description="Links to runs and assets in alerts.")
    qtickets_reconcile_days: int = Field(
        30, ge=1, description="Daily reconcile: re-materialize this many Moscow days (late refunds)."
    )

    # Webhooks (qtickets_api.md §12): the receiver (`serve`) stores order ids that runs re-read.
    qtickets_webhook_secret: SecretStr | None = Field(
        None, description="Secret of the QTickets webhooks (X-Signature = HMAC-SHA1); unset: the route 503s."
    )
    qtickets_webhook_store: Path | None = Field(
        None, description="SQLite file of pending hooks; unset: <QTICKETS_DATA_DIR>/webhooks.sqlite3."
    )
    qtickets_watermark_overlap_s: int = Field(
        600, ge=0, description="Each run re-reads orders changed since the newest landed change minus this."
    )
    qtickets_repair_max_shows: int = Field(
        5, ge=0, description="Per run: shows sold over capacity whose orders are re-read before the check."
    )
    qtickets_repair_max_orders: int = Field(
        2000, ge=0, description="Per run: orders the capacity repair re-reads at most (per_page ids a call)."
    )
    qtickets_repair_max_days: int = Field(
        7, ge=0, le=366, description="Per run: fact days whose totals differ from order staging that "
        "agrees_with_staging rebuilds from staging before it fails (assets/repair_days.py); 0: no repair."
    )
    qtickets_repair_max_events: int = Field(
        10, ge=0, le=1000, description="Per run: events (one GET events/{id} each) that covers_ordered_shows "
        "re-reads for ordered shows missing from dim_events (assets/repair_events.py); 0: no repair."
    )
    qtickets_sandbox_webhook_url: str | None = Field(
        None, description="The sandbox posts signed hooks for its own changes here (dev: the local serve)."
    )

    @field_validator("clickhouse_dsn")
    @classmethod
    def _dsn_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("chdb://", "http://", "https://")):
            raise ValueError("must start with chdb://, http:// or https://")
        return value

    @field_validator("clickhouse_cluster")
    @classmethod
    def _cluster_name(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not CLUSTER_NAME.match(value):
            raise ValueError("must be a cluster name (letters, digits, _ . - and {macros})")
        return value

    @field_validator("qtickets_sandbox_as_of")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-20T12:00:00+03:00")
        return value

    @field_validator("qtickets_sandbox_resales")
    @classmethod
    def _resales(cls, value: str) -> str:
        if value.strip():
            from .sandbox.account import parse_resales

            try:
                parse_resales(value)
            except ValueError as error:
                raise ValueError(f"must be SHOW_ID@ISO_INSTANT with an offset, comma-separated ({error})") \
                    from None
        return value

    @field_validator("clickhouse_database")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError("must be a plain identifier (letters, digits, underscore)")
        return value

    @field_validator("qtickets_data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def uses_sandbox(self) -> bool:
        return self.qtickets_api_base_url is None

    @property
    def resolved_clickhouse_dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{self.qtickets_data_dir / 'clickhouse'}"

    @property
    def webhook_store_path(self) -> Path:
        path = self.qtickets_webhook_store or self.qtickets_data_dir / "webhooks.sqlite3"
        return path.expanduser().resolve()

    def source_now(self) -> datetime:
        """The source's clock: a frozen sandbox (replays, demos) is at its own instant."""
        if self.uses_sandbox and self.qtickets_sandbox_as_of is not None:
            return self.qtickets_sandbox_as_of
        return datetime.now(UTC)

    @property
    def embedded(self) -> bool:
        return self.resolved_clickhouse_dsn.startswith("chdb://")


def load_env_file(path: str | os.PathLike | None) -> None:
    """Export an env file's values into the process environment (real env vars win).

    Dagster's `EnvVar` reads os.environ, so values must live there rather than only in Settings.
    """
    if path is None:
        return
    if not Path(path).is_file():
        raise SettingsError(f"{ENV_FILE_VAR}: env file {path} does not exist")
    for key, value in dotenv_values(path).items():
        if value is not None:
            os.environ.setdefault(key, value)


def _describe(error: ValidationError) -> str:
    # Built by hand: pydantic's own message repeats the input value, which may be a secret.
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        lines.append(f"{name}: {item['msg']}")
    return "invalid configuration: " + "; ".join(lines)


@cache
def get_settings() -> Settings:
    load_env_file(os.environ.get(ENV_FILE_VAR) or (".env" if Path(".env").is_file() else None))
    try:
        settings = Settings()
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
    token = settings.qtickets_api_token
    if not settings.uses_sandbox and (token is None or not token.get_secret_value().strip()):
        raise SettingsError("QTICKETS_API_TOKEN: required (and not empty) when QTICKETS_API_BASE_URL is set")
    today = settings.source_now().astimezone(MOSCOW).date()
    start = settings.qtickets_partitions_start
    if start > today:
        frozen = settings.uses_sandbox and settings.qtickets_sandbox_as_of is not None
        raise SettingsError(f"QTICKETS_PARTITIONS_START: {start} is after "
                            f"{'the frozen sandbox day' if frozen else 'today'} ({today}, Moscow): the first "
                            "daily partition cannot be in the future")
    if settings.clickhouse_cluster and settings.embedded:
        raise SettingsError("CLICKHOUSE_CLUSTER: needs a server CLICKHOUSE_DSN (http:// or https://)")
    if settings.alert_telegram_bot_token and not settings.alert_telegram_chat_id:
        raise SettingsError("ALERT_TELEGRAM_CHAT_ID: required when ALERT_TELEGRAM_BOT_TOKEN is set")
    return settings
