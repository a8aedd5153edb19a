"""httpx client of the QTickets REST API v1.

List endpoints take a JSON body on GET (`where`, `orderBy`, `page`, `perPage`); the page size actually
used is read back from `paging.perPage`. Pages are yielded lazily. Filters are re-applied on the client
because the server silently ignores what it does not understand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from .models import Order, parse

log = logging.getLogger(__name__)
MSK = ZoneInfo("Europe/Moscow")


class QTicketsError(RuntimeError):
    """An API call failed; the message names the path and never the token."""


def wall_time(moment: datetime) -> str:
    """A `where` literal: Moscow wall time, the format the API writes (qtickets_api.md §2.3)."""
    return moment.astimezone(MSK).strftime("%Y-%m-%d %H:%M:%S")


class QTicketsClient:
    def __init__(self, base_url: str, token: str, *, transport: httpx.BaseTransport | None = None,
                 timeout_s: float = 60.0, per_page: int = 100):
        self.per_page = per_page
        self._http = httpx.Client(
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                     "Cache-Control": "no-cache"},
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> QTicketsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.request("GET", path, json=body)
        if "json" not in response.headers.get("Content-Type", ""):
            raise QTicketsError(f"GET {path}: HTTP {response.status_code} with a non-JSON body (an HTML page?)")
        if response.status_code in (401, 403):
            raise QTicketsError(f"GET {path}: HTTP {response.status_code}: the API rejected QTICKETS_API_TOKEN")
        if response.status_code != 200:
            raise QTicketsError(f"GET {path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json()

    def pages(self, path: str, body: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list endpoint, lazily."""
        body = dict(body or {})
        page, per_page = 1, self.per_page
        while True:
            payload = self.request(path, {**body, "page": page, "perPage": per_page})
            rows = payload.get("data") or []
            if not rows:
                return
            yield rows
            paging = payload.get("paging") or {}
            per_page = int(paging.get("perPage") or len(rows))
            if page * per_page >= int(paging.get("total") or 0):
                return
            page += 1

    def orders_between(self, column: str, start: datetime, end: datetime) -> Iterator[Order]:
        """Orders whose `column` (created_at or payed_at) lies in [start, end)."""
        body = {
            "where": [
                {"column": column, "operator": ">=", "value": wall_time(start)},
                {"column": column, "operator": "<", "value": wall_time(end)},
            ],
            "orderBy": {"id": "asc"},
        }
        for number, rows in enumerate(self.pages("orders", body), start=1):
            for row in rows:
                order = parse(Order, row, source=f"orders page {number}")
                moment = getattr(order, column)
                if moment is not None and start <= moment < end:
                    yield order
