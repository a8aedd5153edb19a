"""httpx client of the QTickets REST API v1 (qtickets_api.md).

- List endpoints take a JSON body on GET (`where`, `orderBy`, `page`, `perPage`, `select`). The page size
  the server really used is read back from `paging.perPage`; paging stops on `page * perPage >= total`
  or an empty page. Pages are yielded lazily, optionally fetched a few at a time (bounded concurrency).
- Filters are re-applied on the client (the server silently ignores what it does not understand), on the
  parsed records: a value that does not parse fails the read; nothing is dropped on unparsed text.
- Retries: 429 (`Retry-After`, else exponential backoff with jitter), 502/504, connect errors, timeouts,
  truncated JSON and HTML error pages; 503 at most twice (it is deterministic for a bad request);
  401/403 never. Every retry, and the time it costs, is charged to a `RetryBudget` shared by the
  run's clients, which every answered request refills a little: a long run rides out a steady fault
  rate, and a dead API fails the run fast instead of hanging the schedule.
- Errors name the path and never the token, and describe an answer (status, size, the API's error text)
  without quoting it: pages carry buyers' names, e-mails and phones. A malformed record raises
  `RecordError` (record id and field); the page it came in is written to `rejects_dir` (owner-only, pruned
  after a retention period) and the error gives the file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import orjson

from .models import Event, Model, Order, Record, RecordError, SeatRow, Show, parse
from .query import TIMESTAMP, dig, holds, parse_instant, project, select_tree, selected_only

log = logging.getLogger(__name__)
MSK = ZoneInfo("Europe/Moscow")
M = TypeVar("M", bound=Model)
# Pages a listing may ask for ahead of its caller, per request in flight. The caller's work is uneven (a
# chunk's insert stalls it while pages keep arriving): answered pages wait for it instead of idling the
# requests. A page of 100 orders is ~0.2 MB of JSON, so 16 waiting pages cost a few MB.
PAGES_AHEAD = 4

# The dimension needs a few columns; an untrimmed page of 10 events weighs ~1.26 MB (qtickets_api.md §6).
EVENT_SELECT = [
    "id", "name", "is_active", "deleted_at", "updated_at", "place_name",
    "city.id", "city.name", "city.timezone",
    "shows.id", "shows.is_active", "shows.start_date", "shows.finish_date", "shows.deleted_at",
]
# Organiser-wide counters of one show (qtickets_api.md §7); without `select` the API returns no counters.
SEAT_SELECT = [
    "id", "root_id", "name", "zone_id", "zone_root_id", "admission", "max_quantity", "free_quantity",
    "ordered_quantity", "payed_quantity", "in_basket_quantity", "available", "disabled", "price",
    "multiprice_code",
]


class QTicketsError(RuntimeError):
    """An API call failed; the message names the path and never the token."""

    def __init__(self, message: str, *, path: str = "", status: int | None = None):
        super().__init__(message)
        self.path, self.status = path, status


class QTicketsAuthError(QTicketsError):
    """401/403: a configuration problem, never retried."""


class QTicketsNotFound(QTicketsError):
    """404 `RESOURCE_NOT_FOUND`: unknown id, or an id of another account."""


@dataclass(frozen=True)
class RetryPolicy:
    # Per request: at a 30% fault rate one request fails 8 times in a row with p = 0.3^8 = 7e-5; a dead
    # API fails the first request after ~1 minute of backoff (0.5-1, 1-2, ... 15-30 s).
    max_attempts: int = 8
    budget: int = 30  # retries a run may spend in a row; each answered request earns some back
    max_503_retries: int = 2
    backoff_s: float = 1.0  # first backoff; doubles per attempt, with jitter
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0  # a longer Retry-After fails the run instead of parking it
    max_lost_s: float = 300.0  # likewise in seconds: failed attempts and waits before retries
    earned_per_answer: float = 1.0  # retries an answered request pays back (up to `budget`)
    earned_s_per_answer: float = 5.0  # seconds an answered request pays back (up to `max_lost_s`)


class RetryBudget:
    """What a run may still spend on retries, shared by the run's clients. It grows with the work: every
    answered request pays back `earned_per_answer` retries and `earned_s_per_answer` seconds, up to the
    initial `budget` / `max_lost_s`. So a backfill of any length rides out a steady fault rate (at 30%
    a request needs ~0.43 retries), while an API that answers too little drains it and fails the run
    after `budget` retries (or `max_lost_s` seconds) more than it earned."""

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self.retries_left, self.seconds_left = float(policy.budget), policy.max_lost_s
        self.retries = 0  # spent in total, for reports and tests
        self._lock = threading.Lock()

    def earn(self) -> None:
        """A request was answered."""
        with self._lock:
            self.retries_left = min(self.policy.budget, self.retries_left + self.policy.earned_per_answer)
            self.seconds_left = min(self.policy.max_lost_s,
                                    self.seconds_left + self.policy.earned_s_per_answer)

    def exhaust(self) -> None:
        """A request gave up, so the run fails: its other requests stop at their first failure instead of
        spending a minute each on a dead API."""
        with self._lock:
            self.retries_left, self.seconds_left = 0.0, 0.0

    def spend(self, lost_s: float, delay: float) -> bool:
        """Charge one retry; False when the budget cannot pay for it."""
        with self._lock:
            self.seconds_left -= lost_s
            if self.retries_left < 1 or delay > self.seconds_left:
                return False
            self.retries_left -= 1
            self.seconds_left -= delay
            self.retries += 1
            return True


@dataclass
class Page:
    number: int
    rows: list[Any]
    per_page: int
    total: int | None
    payload: dict[str, Any]


class _Retry(Exception):
    def __init__(self, reason: str, delay: float | None = None, status: int | None = None, body: str = ""):
        self.reason, self.delay, self.status, self.body = reason, delay, status, body
        self.lost_s = 0.0


_EMAIL = re.compile(r"[^\s\"'<>@]+@[^\s\"'<>@]+")
_DIGITS = re.compile(r"\+?\d[\d ()-]{5,}\d")  # phones, card and document numbers


def prune_rejects(rejects_dir: Path, keep_days: float, now: float | None = None) -> list[Path]:
    """Remove kept pages older than `keep_days` (they hold buyers' data); returns what was removed."""
    if not rejects_dir.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - keep_days * 86_400
    removed = []
    for kept in rejects_dir.glob("*.json"):
        if kept.stat().st_mtime < cutoff:
            kept.unlink(missing_ok=True)
            removed.append(kept)
    return removed


def describe(response: httpx.Response) -> str:
    """What an error may say about an answer: its size and type, and the API's own short error text
    (e-mails and long numbers masked). Never the body: a page of orders carries buyers' names, e-mails
    and phones, and errors travel to logs, alerts and meta_job_runs."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no Content-Type"
    text = f"{len(response.content)} bytes of {kind}"
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return text
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        said = " ".join(str(payload[k])[:120] for k in ("error", "code") if payload.get(k))
        text += f": {_DIGITS.sub('***', _EMAIL.sub('***', said))}"
    return text


def wall_time(moment: datetime) -> str:
    """A `where` literal: Moscow wall time, the format the API writes (qtickets_api.md §2.3)."""
    return moment.astimezone(MSK).strftime("%Y-%m-%d %H:%M:%S")


def current_shows(events: Iterable[Event], now: datetime) -> list[tuple[Event, Show]]:
    """Shows whose inventory is worth a call (one call each): of live events, not deleted, and active
    (on sale) or still to start."""
    return [
        (event, show) for event in events if event.deleted_at is None
        for show in event.shows
        if show.deleted_at is None
        and (show.is_active or (show.start_date is not None and show.start_date > now))
    ]


def started_shows(events: Iterable[Event], now: datetime) -> list[tuple[Event, Show]]:
    """Shows that have started and were not cancelled before their start (the event's or the show's
    `deleted_at` before `start_date`): their last inventory snapshot is their final occupancy."""
    started = []
    for event in events:
        for show in event.shows:
            if show.start_date is None or show.start_date > now:
                continue
            cancelled = [m for m in (event.deleted_at, show.deleted_at) if m is not None]
            if not cancelled or min(cancelled) >= show.start_date:
                started.append((event, show))
    return started


class Workers:
    """`count` daemon threads running the calls submitted to them, in order. Unlike a ThreadPoolExecutor's,
    a worker blocked in a request that never answers holds neither `shutdown` nor the process's exit: a
    run stopped by SIGTERM or Ctrl-C ends at once (its pending answers are not needed)."""

    def __init__(self, count: int):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._count = count
        for number in range(count):
            threading.Thread(target=self._work, name=f"qtickets-{number}", daemon=True).start()

    def submit(self, call: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._calls.put((future, call, args))
        return future

    def map(self, call: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """`call(item)` for each item, all submitted at once, results in order; the calls not started
        yet are cancelled when the caller stops early."""
        futures = [self.submit(call, item) for item in items]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def shutdown(self) -> None:
        """Cancel the calls not started yet and let the workers end after their current call."""
        while True:
            try:
                future, _, _ = self._calls.get_nowait()
            except queue.Empty:
                break
            future.cancel()
        for _ in range(self._count):
            self._calls.put(None)

    def _work(self) -> None:
        while (item := self._calls.get()) is not None:
            future, call, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(*args))
            except BaseException as error:  # noqa: BLE001 - handed to the caller, as an executor does
                future.set_exception(error)


class QTicketsClient:
    def __init__(self, base_url: str, token: str, *, transport: httpx.BaseTransport | None = None,
                 timeout_s: float = 60.0, per_page: int = 100, concurrency: int = 1,
                 retry: RetryPolicy | None = None, rejects_dir: str | Path | None = None,
                 budget: RetryBudget | None = None, unfiltered_limit: int = 5_000,
                 sleep: Callable[[float], None] = time.sleep):
        if concurrency < 1 or per_page < 1:
            raise ValueError("concurrency and per_page must be >= 1")
        self.per_page, self.concurrency = per_page, concurrency
        self.unfiltered_limit = unfiltered_limit  # rows we read when the server ignores `where`
        self.budget = budget or RetryBudget(retry or RetryPolicy())
        self.retry = self.budget.policy
        self.requests_made = self.retries_made = 0  # for run metadata (qtickets/api_requests, api_retries)
        self.rejects_dir = Path(rejects_dir) if rejects_dir else None
        self._token = token
        self._sleep = sleep
        self._jitter = random.Random()
        self._lock = threading.Lock()
        # One pool for every listing and seat call of this client: its workers bound the requests in
        # flight to `concurrency`, also while one listing's last pages and the next one's first are awaited.
        self._pool = Workers(concurrency) if concurrency > 1 else None
        self._http = httpx.Client(
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                     "Cache-Control": "no-cache"},
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown()
        self._http.close()

    def __enter__(self) -> QTicketsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request ------------------------------------------------------------------------------------

    def request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET `path` with a JSON body; retried per the policy. Returns the decoded envelope."""
        attempt = retries_503 = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                payload = self._attempt(path, body)
                self.budget.earn()
                return payload
            except _Retry as retry:
                retry.lost_s = time.monotonic() - started
                if retry.status == 503:
                    retries_503 += 1
                    if retries_503 > self.retry.max_503_retries:
                        raise QTicketsError(f"GET {path}: HTTP 503 after {attempt} attempts: {retry.body}",
                                            path=path, status=503) from None
                delay = retry.delay if retry.delay is not None else self._backoff(attempt)
                self._spend(path, attempt, retry, delay)
                with self._lock:
                    self.retries_made += 1
                log.warning("GET %s: %s; retry %d in %.1f s", path, retry.reason, attempt, delay)
                self._sleep(delay)

    def _attempt(self, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        with self._lock:
            self.requests_made += 1
        try:
            response = self._http.request("GET", path, json=body)
        except httpx.TimeoutException as error:
            raise _Retry(f"timeout ({type(error).__name__})") from None
        except httpx.TransportError as error:  # connect errors, dropped connections
            raise _Retry(f"transport error ({type(error).__name__}: {self._redact(str(error))})") from None
        status = response.status_code

        def body() -> str:  # only error paths describe the body, and never quote it (buyers' data)
            return self._redact(describe(response))

        if status in (401, 403):
            raise QTicketsAuthError(
                f"GET {path}: HTTP {status}: the API rejected the token; check QTICKETS_API_TOKEN "
                f"(not retried): {body()}", path=path, status=status)
        content_type = response.headers.get("Content-Type", "")
        if "html" in content_type or response.content.lstrip()[:1] == b"<":
            if status == 404:  # the server's page for a route that does not exist
                raise QTicketsError(f"GET {path}: HTTP 404 with an HTML page: no such API route",
                                    path=path, status=404)
            raise _Retry(f"HTTP {status} with an HTML page instead of JSON", status=status, body=body())
        if status == 429:
            raise _Retry("HTTP 429 (rate limited)", self._retry_after(path, response), status)
        if status in (502, 504):
            raise _Retry(f"HTTP {status}", status=status, body=body())
        if status == 503:
            raise _Retry("HTTP 503", status=503, body=body())
        if status == 404:
            raise QTicketsNotFound(f"GET {path}: HTTP 404: {body()}", path=path, status=404)
        if status != 200:
            raise QTicketsError(f"GET {path}: HTTP {status}: {body()}", path=path, status=status)
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise _Retry("invalid or truncated JSON", status=status, body=body()) from None
        if not isinstance(payload, dict) or "data" not in payload:
            raise QTicketsError(f"GET {path}: HTTP 200 without a `data` envelope: {body()}",
                                path=path, status=status)
        return payload

    def _spend(self, path: str, attempt: int, retry: _Retry, delay: float) -> None:
        """Charge one retry (and the time it costs) to the run's budget, or fail."""
        detail = f": {retry.body}" if retry.body else ""
        if attempt >= self.retry.max_attempts:
            self.budget.exhaust()
            raise QTicketsError(f"GET {path}: {retry.reason}{detail}; gave up after {attempt} attempts",
                                path=path, status=retry.status)
        if not self.budget.spend(retry.lost_s, delay):
            raise QTicketsError(f"GET {path}: {retry.reason}{detail}; the run's retry budget "
                                f"({self.retry.budget} retries, {self.retry.max_lost_s:.0f} s more than its "
                                "answered requests earned) is spent: the API looks down",
                                path=path, status=retry.status)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.retry.backoff_max_s, self.retry.backoff_s * 2 ** (attempt - 1))
        return ceiling * self._jitter.uniform(0.5, 1.0)  # jitter: clients that failed together spread out

    def _retry_after(self, path: str, response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            delay = float(value)
        except ValueError:
            try:
                delay = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                return None
        if delay > self.retry.retry_after_max_s:
            raise QTicketsError(f"GET {path}: HTTP 429 with Retry-After {value}: longer than "
                                f"{self.retry.retry_after_max_s:.0f} s, giving up", path=path, status=429)
        return max(delay, 0.0)

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    # -- paging -----------------------------------------------------------------------------------------

    def _page(self, path: str, body: dict[str, Any], number: int, per_page: int) -> Page:
        payload = self.request(path, {**body, "page": number, "perPage": per_page})
        rows = payload.get("data")
        if not isinstance(rows, list):
            raise QTicketsError(f"GET {path}: page {number}: `data` is not a list", path=path)
        paging = payload.get("paging") or {}
        current = paging.get("currentPage")
        if rows and current is not None and int(current) != number:
            raise QTicketsError(f"GET {path}: asked for page {number}, got page {current}: the server "
                                "ignores `page`; refusing to loop over page 1", path=path)
        total = paging.get("total")
        return Page(number, rows, int(paging.get("perPage") or per_page),
                    None if total is None else int(total), payload)

    def pages(self, path: str, body: dict[str, Any] | None = None, *,
              asked_all: Callable[[], None] | None = None) -> Iterator[Page]:
        """Every non-empty page of a list endpoint, lazily and in order. Up to `concurrency` requests are
        in flight, and up to PAGES_AHEAD x `concurrency` pages are asked for ahead of the caller (answered
        ones wait in order), so fetching goes on while the caller parses and writes. The stop rule uses
        the latest page's `paging` (its total may grow while we read).

        With `concurrency` > 1, page 1 is asked for at this call, before the caller's first `next`: a
        caller may start the next listing ahead of reading it. `asked_all` is called (once, in the
        caller's thread) when the listing has asked for every page it knows of: the cue to start the next."""
        body = dict(body or {})
        asked = int(body.pop("perPage", self.per_page))
        body.pop("page", None)
        return self._listing(path, body, asked, self._ask(path, body, 1, asked), asked_all)

    def _ask(self, path: str, body: dict[str, Any], number: int, per_page: int) -> Future[Page] | None:
        """A page asked of the pool's workers; None without a pool (read when it is needed)."""
        return self._pool.submit(self._page, path, body, number, per_page) if self._pool else None

    def _listing(self, path: str, body: dict[str, Any], asked: int, first: Future[Page] | None,
                 asked_all: Callable[[], None] | None) -> Iterator[Page]:
        in_flight: deque[tuple[int, Future[Page] | None]] = deque([(1, first)])
        # Pages asked for ahead of the caller; the pool's workers bound the requests in flight.
        ahead = PAGES_AHEAD * self.concurrency if self._pool else 1
        next_number, total, per_page = 2, None, asked

        def last_page() -> float:
            if total is None:  # no paging block: go on until an empty page
                return math.inf
            return math.ceil(total / per_page)

        def fill() -> None:
            nonlocal next_number
            while len(in_flight) < ahead and next_number <= last_page():
                in_flight.append((next_number, self._ask(path, body, next_number, asked)))
                next_number += 1

        try:
            while in_flight:
                number, future = in_flight.popleft()
                page = future.result() if future else self._page(path, body, number, asked)
                if not page.rows:
                    break
                per_page, total = page.per_page, page.total if page.total is not None else total
                last = total is None and len(page.rows) < per_page  # without a paging block
                if not last:
                    fill()  # before the caller works on this page: requests stay in flight meanwhile
                if asked_all and (last or next_number > last_page()):
                    asked_all()
                    asked_all = None
                yield page
                if last:
                    break
        finally:
            # A listing left early (an error, a caller that stopped, Ctrl-C): its queued pages are not
            # asked; the ones being answered are not waited for (a request that hangs must not hold a stop).
            for _, future in in_flight:
                if future:
                    future.cancel()
        if asked_all:  # it ended on an empty page
            asked_all()

    def _keep_matching(self, path: str, page: Page, records: list[M], where: list[dict[str, Any]]) -> list[M]:
        """The parsed records of a page that satisfy `where`, re-checked here on the PARSED values: a value
        the models could not parse has already failed the read, so nothing is dropped on raw text."""
        tests = [(_reader(type(records[0]), c["column"]), {**c, "value": _literal(c.get("value"))})
                 for c in where] if records else []
        kept = [record for record in records if _passes(record, tests)]
        if page.number == 1 and len(kept) < len(records) and (page.total or 0) > self.unfiltered_limit:
            # A server that ignores `where` would make every run read the whole history: stop.
            raise QTicketsError(
                f"GET {path}: the server ignored `where` ({len(records) - len(kept)} of "
                f"{len(records)} rows on page 1 fail it) and offers all {page.total} rows; "
                "not reading them (check the filter format, qtickets_api.md §2.2)", path=path)
        return kept

    def _parse(self, model: type[M], row: Any, path: str, page: Page | None = None,
               payload: dict[str, Any] | None = None) -> M:
        try:
            return parse(model, row)
        except RecordError as error:
            number = page.number if page else None
            raw = payload if payload is not None else page.payload if page else None
            kept = self._keep_rejected(path, number, raw)
            raise error.kept_at(kept) from None

    def _keep_rejected(self, path: str, number: int | None, payload: Any) -> Path | None:
        """Write the raw page of a malformed record where an operator can read it: only the owner may, as
        it holds buyers' data (and `prune_rejects` removes it after the retention period)."""
        if self.rejects_dir is None:
            return None
        self.rejects_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") + (f"-page{number}" if number else "")
        target = self.rejects_dir / f"{stamp}-{name}.json"
        with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as out:
            json.dump(payload, out, ensure_ascii=False, indent=1)
        return target

    # -- orders -----------------------------------------------------------------------------------------

    def orders(self, where: list[dict[str, Any]] | None = None, *,
               asked_all: Callable[[], None] | None = None) -> Iterator[Order]:
        """Orders matching `where`, id ascending (stable while new orders arrive), each id once. The
        listing starts at this call (`pages`, with `asked_all`)."""
        where = where or []
        return self._orders(self.pages("orders", {"where": where, "orderBy": {"id": "asc"}},
                                       asked_all=asked_all), where)

    def _orders(self, pages: Iterator[Page], where: list[dict[str, Any]]) -> Iterator[Order]:
        seen: set[int] = set()
        for page in pages:
            parsed = [self._parse(Order, row, "orders", page) for row in page.rows]
            for order in self._keep_matching("orders", page, parsed, where):
                if order.id not in seen:  # a row pushed across a page boundary while we read
                    seen.add(order.id)
                    yield order

    def orders_between(self, column: str, start: datetime, end: datetime,
                       created_before: datetime | None = None, *,
                       asked_all: Callable[[], None] | None = None) -> Iterator[Order]:
        """Orders whose `column` (created_at, payed_at, updated_at) lies in [start, end), and with
        `created_before` only those created before it (asked of the server in the same `where`). The
        listing starts at this call (`pages`, with `asked_all`)."""
        where = [
            {"column": column, "operator": ">=", "value": wall_time(start)},
            {"column": column, "operator": "<", "value": wall_time(end)},
        ]
        if created_before is not None:
            where.append({"column": "created_at", "operator": "<", "value": wall_time(created_before)})
        return (order for order in self.orders(where, asked_all=asked_all)
                if (moment := getattr(order, column)) is not None and start <= moment < end
                and (created_before is None or order.created_at < created_before))

    def orders_after(self, last_id: int) -> Iterator[Order]:
        """Orders with id > `last_id`: the backfill / catch-up read."""
        where = [{"column": "id", "operator": ">", "value": last_id}]
        return (order for order in self.orders(where) if order.id > last_id)

    def orders_by_ids(self, ids: Iterable[int]) -> Iterator[Order]:
        """The current state of the given orders (e.g. re-reads after webhooks), `per_page` ids a call."""
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), self.per_page):
            chunk = wanted[start:start + self.per_page]
            yield from (o for o in self.orders([{"column": "id", "operator": "in", "value": chunk}])
                        if o.id in set(chunk))

    def order(self, order_id: int) -> Order | None:
        """One order, or None when it is unknown or belongs to another account."""
        path = f"orders/{int(order_id)}"
        try:
            payload = self.request(path)
        except QTicketsNotFound:
            return None
        return self._parse(Order, payload["data"], path, payload=payload)

    # -- events and inventory -----------------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Every event with its shows, deleted ones included, trimmed with `select`. A server that ignores
        `select` sends the full payload, which parses all the same (extra fields are kept)."""
        body: dict[str, Any] = {"select": EVENT_SELECT, "orderBy": {"id": "asc"}}
        try:
            pages = self.pages("events", body)
            first = next(pages, None)
        except QTicketsError as error:
            if error.status != 503:
                raise
            # A server that chokes on dotted `select` (a SQL error surfaces as 503): read the full payload.
            log.warning("GET events: `select` refused (%s); reading the full payload", error)
            body.pop("select")
            pages = self.pages("events", body)
            first = next(pages, None)
        if first is None:
            return
        if "select" in body and not selected_only(first.rows[0], select_tree(EVENT_SELECT)):
            log.info("GET events: the server ignored `select`; using the full payload")
        for page in _chain(first, pages):
            for row in page.rows:
                yield self._parse(Event, row, "events", page)

    def event(self, event_id: int) -> Event | None:
        """One event with its shows (`GET events/{id}`, documented and seen live), or None when the API
        answers 404 (unknown, or another account's). Asked without a body, as `orders/{id}`: whether a
        single resource honours `select` is unknown; the answer is trimmed here to EVENT_SELECT, so its
        staging JSON is the listing's."""
        path = f"events/{int(event_id)}"
        try:
            payload = self.request(path)
        except QTicketsNotFound:
            return None
        data = payload["data"]
        if not isinstance(data, dict):
            raise QTicketsError(f"GET {path}: `data` is {type(data).__name__}, expected an event", path=path)
        return self._parse(Event, project(data, select_tree(EVENT_SELECT)), path, payload=payload)

    def show_seats(self, show_id: int) -> list[SeatRow]:
        """Flat seat rows of one show (one per seat and tariff) with organiser-wide counters."""
        return self._seat_rows(show_id, self._seat_payload(show_id))

    def _seat_payload(self, show_id: int) -> dict[str, Any]:
        return self.request(f"shows/{int(show_id)}/seats", {"select": SEAT_SELECT, "flat": True})

    def _seat_rows(self, show_id: int, payload: dict[str, Any]) -> list[SeatRow]:
        path = f"shows/{int(show_id)}/seats"
        data = payload["data"]
        if data == []:  # PHP's empty map
            return []
        if not isinstance(data, dict):
            raise QTicketsError(f"GET {path}: `data` is {type(data).__name__}, expected rows keyed by id",
                                path=path)
        rows = []
        for key, row in data.items():
            if not isinstance(row, dict) or "seats" in row:
                raise QTicketsError(f"GET {path}: got a zone hierarchy instead of flat rows "
                                    "(`flat` ignored?)", path=path)
            rows.append(self._parse(SeatRow, {"id": key, **row}, path, payload=payload))
        return rows

    def seats_of(self, show_ids: Iterable[int]) -> Iterator[tuple[int, list[SeatRow]]]:
        """(show id, rows) for each show, `concurrency` calls at a time, in the given order."""
        ids = list(show_ids)
        if self.concurrency == 1:
            yield from ((show_id, self.show_seats(show_id)) for show_id in ids)
            return
        # The workers only fetch; the rows are validated here, while they wait for their next answers
        # (validating in a worker would hold its next request back by that show's parse).
        for show_id, payload in zip(ids, self._pool.map(self._seat_payload, ids), strict=True):
            yield show_id, self._seat_rows(show_id, payload)


def _chain(first: Page, rest: Iterator[Page]) -> Iterator[Page]:
    yield first
    yield from rest


def _reader(model: type[Record], column: str) -> Callable[[Record], Any]:
    """How a `where` column is read from a parsed record: its model field, or (a dotted column, an
    undeclared field) the raw record. Chosen once per page, not per record."""
    if column in model.model_fields:
        return attrgetter(column)
    return lambda record: dig(record.raw, column)


def _passes(record: Record, tests: list[tuple[Callable[[Record], Any], dict[str, Any]]]) -> bool:
    for read, cond in tests:
        if not holds(read(record), cond):
            return False
    return True


def _literal(value: Any) -> Any:
    """A where-literal as the parsed fields hold it: timestamps as aware datetimes (Moscow wall time)."""
    if isinstance(value, str) and TIMESTAMP.match(value):
        return parse_instant(value)
    if isinstance(value, list):
        return [_literal(item) for item in value]
    return value
