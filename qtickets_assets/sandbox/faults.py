"""Fault injection for the sandbox: the transient failures a client must survive (qtickets_api.md §16).

A fault is drawn per request at a configurable rate from a seeded generator, so a run's failures are
reproducible (in request order). `injected` counts what was served, for tests and the serve log.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

KINDS = ("429", "429-retry-after", "502", "503", "504", "slow", "truncated", "html200")
_GATEWAY_HTML = "<html><head><title>{status}</title></head><body><center><h1>{status}</h1></center>" \
                "<hr><center>nginx/1.14.1</center></body></html>"
_JSON = {"Content-Type": "application/json", "Server": "nginx/1.14.1"}


@dataclass(frozen=True)
class Fault:
    kind: str
    response: httpx.Response | None = None  # replaces the real answer when set

    def apply(self, response: httpx.Response) -> httpx.Response:
        if self.kind != "truncated":
            return response
        cut = response.content[: max(1, len(response.content) // 2)]  # a connection dropped mid-body
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("content-length", "content-encoding")}
        return httpx.Response(response.status_code, content=cut, headers=headers)


class Faults:
    """Injects one of `kinds` into a `rate` share of requests."""

    def __init__(self, rate: float = 0.1, kinds: Iterable[str] = KINDS, seed: int = 0, slow_s: float = 2.0,
                 retry_after_s: int = 1):
        unknown = set(kinds) - set(KINDS)
        if unknown or not 0 <= rate <= 1:
            raise ValueError(f"faults: rate must be in [0, 1] and kinds among {KINDS}, got {rate}, {unknown}")
        self.rate, self.kinds = rate, tuple(kinds)
        self.slow_s, self.retry_after_s = slow_s, retry_after_s
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self, request: httpx.Request) -> Fault | None:
        with self._lock:
            if not self.kinds or self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.injected[kind] += 1
        if kind == "slow":
            # In-process, honour the client's read timeout the way a socket would; on a port, just be slow.
            timeout = (request.extensions.get("timeout") or {}).get("read")
            if timeout is not None and timeout <= self.slow_s:
                time.sleep(timeout)
                raise httpx.ReadTimeout("sandbox: the answer took too long", request=request)
            time.sleep(self.slow_s)
            return Fault(kind)
        if kind == "truncated":
            return Fault(kind)
        if kind == "429":
            return Fault(kind, httpx.Response(429, json={"error": "Too Many Requests", "status": 429},
                                              headers=_JSON))
        if kind == "429-retry-after":
            return Fault(kind, httpx.Response(429, json={"error": "Too Many Requests", "status": 429},
                                              headers={**_JSON, "Retry-After": str(self.retry_after_s)}))
        if kind == "503":
            return Fault(kind, httpx.Response(503, json={"error": "Unknown error", "status": 503,
                                                         "code": "UNKNOWN_ERROR", "info": []}, headers=_JSON))
        if kind == "html200":  # a proxy's error page served with 200
            return Fault(kind, httpx.Response(200, text=_GATEWAY_HTML.format(status="Service Unavailable"),
                                              headers={"Content-Type": "text/html; charset=UTF-8"}))
        status = int(kind)  # 502 / 504 from the nginx in front
        return Fault(kind, httpx.Response(status, text=_GATEWAY_HTML.format(status=status),
                                          headers={"Content-Type": "text/html", "Server": "nginx/1.14.1"}))
