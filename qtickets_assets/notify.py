"""Alerts to people: a generic JSON webhook, a Telegram bot and a Slack incoming webhook, through an outbox.

Every backend is optional and configured by env (see settings.py); the URLs and the bot token are secrets,
passed to Dagster as `EnvVar`s, and never appear in logs or errors: a failed delivery is reported as
"<backend>: HTTP 404" or "<backend>: ConnectError", never with the URL that httpx would print.

The outbox: a sensor first writes each alert, once per backend, to a SQLite file in the instance's storage
directory, then delivers what is pending. Dagster advances a sensor's cursor even when the evaluation fails
or times out, so an alert that exists only in memory is lost; one in the outbox is retried at every
evaluation (the freshness sensor's, every minute) until its backend accepts it, each backend on its own.
All sends of an evaluation run at once under one deadline, well below the sensor's 60 s limit; each result
is written as soon as it arrives and a send in flight is leased, so an evaluation that was cut off never
makes the next one send the same alert to the same backend again.
"""

import json
import logging
import re
import sqlite3
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
from pydantic import Field

from .local_store import sqlite_store

log = logging.getLogger(__name__)

TELEGRAM_API = "https://api.telegram.org"
TELEGRAM_LIMIT = 4096  # characters per message
ICONS = {"critical": "🔴", "warning": "🟠", "ok": "🟢", "info": "ℹ️"}


class NotifyError(RuntimeError):
    """A backend did not accept an alert (the message names the backend, never its URL)."""


@dataclass(frozen=True)
class Alert:
    kind: str  # freshness | run_failure
    severity: str  # critical | warning | ok | info
    title: str
    text: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    url: str = ""
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def plain(self) -> str:
        lines = [f"{ICONS.get(self.severity, '')} {self.title}".strip()]
        if self.text:
            lines.append(self.text)
        lines += [f"{name}: {value}" for name, value in self.fields.items()]
        if self.url:
            lines.append(self.url)
        return "\n".join(lines)


# Shapes that carry credentials in free text (error messages, URLs): masked before anything leaves.
_SECRET_SHAPES = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),
    (re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+"), r"\1***"),
    (re.compile(r"(hooks\.slack\.com/services/)\S+"), r"\1***"),
]


def scrub(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """`text` with known secret values and credential-shaped substrings masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern, replacement in _SECRET_SHAPES:
        text = pattern.sub(replacement, text)
    return text


class Notifier(dg.ConfigurableResource):
    """Sends an `Alert` to every configured backend; an unconfigured notifier only logs."""

    webhook_url: str = Field("", description="Generic JSON webhook (POST of the alert as JSON).")
    telegram_bot_token: str = Field("", description="Telegram bot token (from @BotFather).")
    telegram_chat_id: str = Field("", description="Telegram chat, group or channel id.")
    slack_webhook_url: str = Field("", description="Slack incoming-webhook URL.")
    ui_url: str = Field("", description="Dagster UI address for links in alerts.")
    timeout_s: float = 10.0
    deadline_s: float = Field(40.0, description="All sends of one sensor evaluation end by then "
                                                "(Dagster stops a sensor evaluation after 60 s).")

    def backends(self) -> list[str]:
        names = []
        if self.webhook_url:
            names.append("webhook")
        if self.telegram_bot_token and self.telegram_chat_id:
            names.append("telegram")
        if self.slack_webhook_url:
            names.append("slack")
        return names

    def _request(self, backend: str, alert: Alert) -> tuple[str, dict]:
        if backend == "webhook":
            return self.webhook_url, {"source": "qtickets-assets", **asdict(alert)}
        if backend == "telegram":
            url = f"{TELEGRAM_API}/bot{self.telegram_bot_token}/sendMessage"
            return url, {"chat_id": self.telegram_chat_id, "text": alert.plain()[:TELEGRAM_LIMIT],
                         "disable_web_page_preview": True}
        return self.slack_webhook_url, {"text": alert.plain()}

    def deliver(self, backend: str, alert: Alert, timeout_s: float | None = None) -> None:
        """POST the alert to one backend; NotifyError("<backend>: HTTP 502") when it did not accept it."""
        url, body = self._request(backend, alert)
        try:
            with httpx.Client(timeout=timeout_s or self.timeout_s) as client:
                client.post(url, json=body).raise_for_status()
        except httpx.HTTPStatusError as error:
            raise NotifyError(f"{backend}: HTTP {error.response.status_code}") from None
        except httpx.HTTPError as error:  # str(error) may hold the URL
            raise NotifyError(f"{backend}: {type(error).__name__}") from None

    def secrets(self) -> tuple[str, ...]:
        return (self.webhook_url, self.telegram_bot_token, self.slack_webhook_url)


# --- the outbox ------------------------------------------------------------------------------------------

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_outbox (
    alert_id TEXT NOT NULL,
    backend TEXT NOT NULL,
    alert TEXT NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL,
    leased_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (alert_id, backend)
)
"""
KEEP_S = 7 * 24 * 3600  # delivered alerts are forgotten after a week; undelivered ones are given up then


def outbox_path(instance: dg.DagsterInstance) -> Path:
    """Next to the instance's other local state (the shared storage volume in production)."""
    return Path(instance.storage_directory()) / "alert_outbox.sqlite3"


@dataclass
class Delivery:
    delivered: list[str] = field(default_factory=list)  # "<backend>: <title>"
    failed: list[str] = field(default_factory=list)  # "<backend>: HTTP 502: <title>"
    in_flight: int = 0  # still sending at the deadline: their result is recorded when it arrives

    def summary(self) -> str:
        parts = [f"delivered {len(self.delivered)}"]
        if self.failed:
            parts.append("not delivered (retried next evaluation): " + "; ".join(self.failed))
        if self.in_flight:
            parts.append(f"{self.in_flight} still sending at the deadline")
        return ", ".join(parts)


class Outbox:
    def __init__(self, path: Path):
        self.path = path

    def put(self, alert_id: str, alert: Alert, backends: list[str]) -> None:
        """Keep `alert` for each backend. The same `alert_id` again (a re-evaluation) changes nothing."""
        if not backends:
            log.warning("no alert backend configured (ALERT_* settings); alert: %s", alert.plain())
            return
        with sqlite_store(self.path, OUTBOX_SCHEMA) as db:
            body, now = json.dumps(asdict(alert)), time.time()
            db.executemany("INSERT OR IGNORE INTO alert_outbox (alert_id, backend, alert, created_at) "
                           "VALUES (?, ?, ?, ?)", [(alert_id, backend, body, now) for backend in backends])

    def pending(self) -> list[tuple[str, str]]:
        with sqlite_store(self.path, OUTBOX_SCHEMA) as db:
            return db.execute("SELECT alert_id, backend FROM alert_outbox WHERE delivered_at IS NULL "
                              "ORDER BY created_at").fetchall()

    def _lease(self, db: sqlite3.Connection, backends: list[str], until: float) -> list[tuple]:
        """Take the pending sends nobody else is making (an earlier, cut-off evaluation may still be)."""
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            expired = db.execute("DELETE FROM alert_outbox WHERE created_at < ? AND delivered_at IS NULL",
                                 (now - KEEP_S,)).rowcount
            if expired:
                log.error("%d alert sends given up after %d days undelivered", expired, KEEP_S // 86400)
            db.execute("DELETE FROM alert_outbox WHERE created_at < ?", (now - KEEP_S,))
            marks = ",".join("?" * len(backends))
            rows = db.execute(
                f"SELECT alert_id, backend, alert FROM alert_outbox WHERE delivered_at IS NULL "
                f"AND leased_until < ? AND backend IN ({marks}) ORDER BY created_at",
                (now, *backends)).fetchall()
            db.executemany("UPDATE alert_outbox SET leased_until = ? WHERE alert_id = ? AND backend = ?",
                           [(until, alert_id, backend) for alert_id, backend, _ in rows])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return rows

    def deliver(self, notifier: "Notifier") -> Delivery:
        """Send every pending alert to its backend, all at once, within `notifier.deadline_s`."""
        result = Delivery()
        backends = notifier.backends()
        if not backends:
            return result
        start = time.monotonic()
        with sqlite_store(self.path, OUTBOX_SCHEMA) as db:
            # The lease outlives every send of this evaluation: each one's timeout ends at the deadline.
            rows = self._lease(db, backends, time.time() + notifier.deadline_s + 5)
        if not rows:
            return result

        def send(alert_id: str, backend: str, alert: Alert) -> None:
            timeout = max(1.0, min(notifier.timeout_s, notifier.deadline_s - (time.monotonic() - start)))
            error = ""
            try:
                notifier.deliver(backend, alert, timeout)
            except NotifyError as failure:
                error = str(failure)
            # Recorded as soon as it is known, even after the evaluation stopped waiting for it.
            with sqlite_store(self.path, OUTBOX_SCHEMA) as db:
                db.execute("UPDATE alert_outbox SET delivered_at = ?, leased_until = 0, "
                           "attempts = attempts + 1, last_error = ? WHERE alert_id = ? AND backend = ?",
                           (None if error else time.time(), error, alert_id, backend))
            if error:
                raise NotifyError(error)

        pool = ThreadPoolExecutor(min(16, len(rows)), thread_name_prefix="alert")
        futures: dict[Future, tuple[str, Alert]] = {}
        for alert_id, backend, body in rows:
            alert = Alert(**json.loads(body))
            futures[pool.submit(send, alert_id, backend, alert)] = (backend, alert)
        done, in_flight = wait(futures, timeout=notifier.deadline_s - (time.monotonic() - start))
        pool.shutdown(wait=False)
        for future in done:
            backend, alert = futures[future]
            if future.exception() is None:
                result.delivered.append(f"{backend}: {alert.title}")
            else:
                result.failed.append(f"{future.exception()}: {alert.title}")
        result.in_flight = len(in_flight)
        if result.failed:
            log.warning("alerts not delivered, retried at the next evaluation: %s", "; ".join(result.failed))
        return result
