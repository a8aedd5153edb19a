"""Alerts to people: a generic JSON webhook, a Telegram bot and a Slack incoming webhook.

Every backend is optional and configured by env (see settings.py); the URLs and the bot token are secrets,
passed to Dagster as `EnvVar`s, and never appear in logs or errors: a failed delivery is reported as
"<backend>: HTTP 404" or "<backend>: ConnectError", never with the URL that httpx would print.
"""

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import dagster as dg
import httpx
from pydantic import Field

log = logging.getLogger(__name__)

TELEGRAM_API = "https://api.telegram.org"
TELEGRAM_LIMIT = 4096  # characters per message
ICONS = {"critical": "🔴", "warning": "🟠", "ok": "🟢", "info": "ℹ️"}


class NotifyError(RuntimeError):
    """Every configured backend failed to deliver an alert."""


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

    def send(self, alert: Alert) -> list[str]:
        """Deliver to every backend; returns the ones that accepted it. Raises NotifyError only when
        backends are configured and all of them failed (the caller then retries later)."""
        delivered, failures = [], []
        with httpx.Client(timeout=self.timeout_s) as client:
            for backend in self.backends():
                url, body = self._request(backend, alert)
                try:
                    client.post(url, json=body).raise_for_status()
                    delivered.append(backend)
                except httpx.HTTPStatusError as error:
                    failures.append(f"{backend}: HTTP {error.response.status_code}")
                except httpx.HTTPError as error:
                    failures.append(f"{backend}: {type(error).__name__}")  # str(error) may hold the URL
        if failures:
            log.warning("alert %r not delivered to %s", alert.title, ", ".join(failures))
        if failures and not delivered:
            raise NotifyError("alert not delivered: " + "; ".join(failures))
        if not self.backends():
            log.warning("no alert backend configured (ALERT_* settings); alert: %s", alert.plain())
        return delivered

    def secrets(self) -> tuple[str, ...]:
        return (self.webhook_url, self.telegram_bot_token, self.slack_webhook_url)
