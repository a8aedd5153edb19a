"""`qtickets-assets serve`: the QTickets webhook receiver, `/healthz/qtickets_api` and `/metrics`.

- `POST /webhooks/qtickets` (qtickets_api.md §12): checks `X-Signature` = hex(HMAC-SHA1(raw body,
  QTICKETS_WEBHOOK_SECRET)) in constant time and records (order id, event) in the pending-hooks store
  (webhooks/store.py) before answering 200, so a crash after the answer loses nothing. A redelivery adds a
  row that the same re-read clears. The vendor retries anything but 200 (10 attempts), so every answer
  other than 200 means "this request can never be stored": 401 bad signature, 400 not an order hook,
  413 over 1 MiB, 503 no secret configured (the operator's fix turns the retries into successes).
- `GET /healthz/qtickets_api`: 200 when both facts were materialized within 2 hours, else 503. Read from
  the Dagster instance (materialization events, freshness states, last runs), never from the warehouse,
  so it answers at once while a run holds the embedded engine.
- `GET /metrics`: the Prometheus text format, computed from the instance and the store at each scrape.

The service never opens the warehouse: the embedded engine belongs to the process of the run.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .webhooks import signature
from .webhooks.store import HookStore

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # the order object is a few KB; a bigger body is not a QTickets hook
EVENT_TYPES = frozenset({"created", "updated", "payed", "deleted", "refunded", "checked"})
EVENT_NAME = re.compile(r"^[a-z_]{1,32}$")
FACTS = ("fact_qtickets_sales_daily", "fact_qtickets_inventory_latest")
# The checks that find a fact's numbers wrong (assets/checks.py; tests/test_service.py keeps them equal).
FACT_CHECKS = {"fact_qtickets_sales_daily": ("agrees_with_staging", "counts_non_negative"),
               "fact_qtickets_inventory_latest": ("one_row_per_show", "sold_within_capacity")}
MAX_AGE = timedelta(hours=2)  # the old healthcheck's rule, and the facts' freshness policy (fail at 2 h)
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
ROW_COUNT = "dagster/row_count"
API_REQUESTS, API_RETRIES = "qtickets/api_requests", "qtickets/api_retries"


class Rejected(Exception):
    def __init__(self, status: int, reason: str, detail: str):
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


async def read_limited(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, refused (413) as soon as it exceeds `limit`: a huge body is never buffered whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Rejected(413, "too_large", f"body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(413, "too_large", f"body over {limit} bytes")
    return bytes(body)


def parse_hook(body: bytes, headers) -> tuple[int, str]:
    """(order id, event) of a signed hook, or Rejected(400). The body is the order object itself."""
    model = headers.get("x-model-name", "Order")
    if model != "Order":
        raise Rejected(400, "not_an_order", f"X-Model-Name {model[:40]!r}: only Order hooks are handled")
    event = headers.get("x-event-type", "").strip().lower()
    if not EVENT_NAME.match(event):
        raise Rejected(400, "bad_event", "X-Event-Type is missing or malformed")
    try:
        order = json.loads(body)
    except ValueError:
        raise Rejected(400, "bad_json", "the body is not JSON") from None
    order_id = order.get("id") if isinstance(order, dict) else None
    if isinstance(order_id, str) and order_id.isdigit():
        order_id = int(order_id)
    if not isinstance(order_id, int) or isinstance(order_id, bool) or order_id <= 0:
        raise Rejected(400, "no_order_id", "the body is not an order object (no numeric id)")
    return order_id, event


# --- health ----------------------------------------------------------------------------------------------

def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def last_runs(instance: dg.DagsterInstance, jobs: Iterable[str],
              statuses: list[dg.DagsterRunStatus] | None = None) -> dict[str, dg.RunRecord]:
    """The newest run of each job (with one of `statuses`, if given)."""
    runs = {}
    for job in jobs:
        records = instance.get_run_records(dg.RunsFilter(job_name=job, statuses=statuses or []), limit=1)
        if records:
            runs[job] = records[0]
    return runs


def failing_checks(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """Per fact, its checks whose latest evaluation found numbers wrong (a fresh fact is not healthy then)."""
    keys = [dg.AssetCheckKey(dg.AssetKey(fact), name)
            for fact, names in FACT_CHECKS.items() for name in names]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    failing: dict[str, list[str]] = {fact: [] for fact in FACT_CHECKS}
    for key, record in latest.items():
        evaluation = record.event.dagster_event.event_specific_data if record.event else None
        if isinstance(evaluation, dg.AssetCheckEvaluation) and not evaluation.passed and (
                evaluation.severity == dg.AssetCheckSeverity.ERROR):
            failing[key.asset_key.to_user_string()].append(key.name)
    return failing


def health_report(instance: dg.DagsterInstance, jobs: Iterable[str], now: float | None = None) -> dict:
    """Both facts materialized within MAX_AGE and their latest checks passed -> healthy. Ages come from
    the instance's materialization events; the freshness states (evaluated by the daemon) and the jobs'
    last runs are reported alongside."""
    now = time.time() if now is None else now
    keys = [dg.AssetKey(name) for name in FACTS]
    records = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records(keys)}
    states = instance.get_freshness_state_records(keys)
    facts = {}
    for key in keys:
        entry = records.get(key)
        event = entry.last_materialization if entry else None
        age = None if event is None else max(0.0, now - event.timestamp)
        state = states.get(key)
        facts[key.to_user_string()] = {
            "last_materialized_at": _iso(event.timestamp) if event else None,
            "age_s": None if age is None else round(age, 1),
            "run_id": event.run_id if event else None,
            "fresh": age is not None and age <= MAX_AGE.total_seconds(),
            "freshness_state": state.freshness_state.value if state else "UNKNOWN",
        }
    for name, problems in failing_checks(instance).items():
        facts[name]["failed_checks"] = problems
    runs = {
        job: {"status": record.dagster_run.status.value, "run_id": record.dagster_run.run_id,
              "started_at": _iso(record.start_time), "ended_at": _iso(record.end_time)}
        for job, record in sorted(last_runs(instance, jobs).items())
    }
    return {"healthy": all(fact["fresh"] and not fact["failed_checks"] for fact in facts.values()),
            "checked_at": _iso(now),
            "max_age_s": MAX_AGE.total_seconds(), "facts": facts, "last_runs": runs}


# --- metrics ---------------------------------------------------------------------------------------------

def _metadata_number(entry, name: str) -> float | None:
    value = entry.asset_materialization.metadata.get(name) if entry.asset_materialization else None
    value = getattr(value, "value", value)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class StateCollector:
    """Gauges read from the Dagster instance and the hook store at each scrape (a custom collector:
    the values live in those stores, not in this process)."""

    def __init__(self, instance: Callable[[], dg.DagsterInstance], store: HookStore, jobs: Iterable[str]):
        self.instance, self.store, self.jobs = instance, store, list(jobs)

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        instance = self.instance()
        age = GaugeMetricFamily("qtickets_asset_age_seconds",
                                "Seconds since the asset's last materialization (freshness age).",
                                labels=["asset"])
        rows = GaugeMetricFamily("qtickets_asset_rows_written",
                                 "Rows written by the asset's last materialization (dagster/row_count).",
                                 labels=["asset"])
        requests = GaugeMetricFamily("qtickets_asset_api_requests",
                                     "QTickets API requests made by the asset's last materialization.",
                                     labels=["asset"])
        retries = GaugeMetricFamily("qtickets_asset_api_retries",
                                    "QTickets API retries in the asset's last materialization.",
                                    labels=["asset"])
        for record in instance.get_asset_records():
            entry = record.asset_entry
            event = entry.last_materialization
            if event is None:
                continue
            asset = entry.asset_key.to_user_string()
            age.add_metric([asset], max(0.0, now - event.timestamp))
            for family, name in ((rows, ROW_COUNT), (requests, API_REQUESTS), (retries, API_RETRIES)):
                value = _metadata_number(event, name)
                if value is not None:
                    family.add_metric([asset], value)
        yield from (age, rows, requests, retries)

        report = health_report(instance, [], now)
        yield GaugeMetricFamily("qtickets_healthy", "1 when both facts are fresher than 2 hours and pass "
                                "their checks (/healthz/qtickets_api answers 200).",
                                value=int(report["healthy"]))

        status = GaugeMetricFamily("qtickets_job_last_run_status",
                                   "1 for the status of the job's newest run.", labels=["job", "status"])
        success = GaugeMetricFamily("qtickets_job_last_finished_run_success",
                                    "1 when the job's last finished run succeeded, 0 when it failed.",
                                    labels=["job"])
        duration = GaugeMetricFamily("qtickets_job_last_finished_run_duration_seconds",
                                     "Wall time of the job's last finished run.", labels=["job"])
        ended = GaugeMetricFamily("qtickets_job_last_finished_run_end_timestamp_seconds",
                                  "Unix time when the job's last finished run ended.", labels=["job"])
        for job, record in sorted(last_runs(instance, self.jobs).items()):
            status.add_metric([job, record.dagster_run.status.value], 1)
        for job, record in sorted(last_runs(instance, self.jobs, FINISHED).items()):
            if record.start_time and record.end_time:
                success.add_metric([job], int(record.dagster_run.status == dg.DagsterRunStatus.SUCCESS))
                duration.add_metric([job], record.end_time - record.start_time)
                ended.add_metric([job], record.end_time)
        yield from (status, success, duration, ended)

        depth, oldest = self.store.depth()
        yield GaugeMetricFamily("qtickets_webhook_queue_depth",
                                "Hooks received and not yet applied by a run.", value=depth)
        yield GaugeMetricFamily("qtickets_webhook_oldest_pending_age_seconds",
                                "Age of the oldest pending hook (0 when none is pending).",
                                value=max(0.0, now - oldest) if oldest is not None else 0.0)


# --- the app ---------------------------------------------------------------------------------------------

def create_app(secret: str | None, store: HookStore, instance: Callable[[], dg.DagsterInstance],
               jobs: Iterable[str]) -> Starlette:
    """The service. `instance` is called at each request that needs the Dagster instance (it may cache)."""
    jobs = list(jobs)
    registry = CollectorRegistry()
    received = Counter("qtickets_webhooks_received", "Hooks stored, by X-Event-Type.", ["event"],
                       registry=registry)
    rejected = Counter("qtickets_webhooks_rejected", "Hook requests refused, by reason.", ["reason"],
                       registry=registry)
    registry.register(StateCollector(instance, store, jobs))

    async def webhook(request: Request) -> Response:
        try:
            if not secret:
                raise Rejected(503, "no_secret", "QTICKETS_WEBHOOK_SECRET is not configured")
            body = await read_limited(request)
            given = request.headers.get("x-signature", "").strip().lower().encode("latin-1")
            if not hmac.compare_digest(signature(body, secret).encode(), given):
                raise Rejected(401, "bad_signature", "X-Signature does not match the body")
            order_id, event = parse_hook(body, request.headers)
        except Rejected as error:
            rejected.labels(error.reason).inc()
            log.warning("webhook refused (%s): %s", error.status, error.detail)
            return JSONResponse({"error": error.detail}, status_code=error.status)
        except ClientDisconnect:
            return Response(status_code=400)
        if event not in EVENT_TYPES:  # a new vendor event is still an order change: re-reading is safe
            log.warning("webhook with an undocumented X-Event-Type %r for order %d: stored", event, order_id)
        await run_in_threadpool(store.add, order_id, event)  # on disk before the answer
        received.labels(event).inc()
        log.info("webhook %s for order %d stored", event, order_id)
        return JSONResponse({"stored": True, "order_id": order_id, "event": event})

    def healthz(request: Request) -> Response:
        report = health_report(instance(), jobs)
        return JSONResponse(report, status_code=200 if report["healthy"] else 503)

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/webhooks/qtickets", webhook, methods=["POST"]),
        Route("/healthz/qtickets_api", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ])


def cached_instance() -> Callable[[], dg.DagsterInstance]:
    """The instance of DAGSTER_HOME, opened at the first request that needs it."""
    lock, opened = threading.Lock(), []

    def get() -> dg.DagsterInstance:
        with lock:
            if not opened:
                opened.append(dg.DagsterInstance.get())
            return opened[0]

    return get
