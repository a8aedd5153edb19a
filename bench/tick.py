"""One 15-minute tick through Dagster, in-process, at the size of the observed real account, with network
latency: the `qtickets_refresh` job (whole graph, partition range yesterday..today in one run, as the
schedule asks) against the sandbox with --latency-ms added to every request (an httpx transport that
sleeps before answering, so concurrent requests overlap as on a real network).

Account shape `real` (qtickets_api.md §2.4, §6; tests/test_qtickets_tick.py): ~126k orders over 600 days
(195/day), ~220 events, ~50 active/future shows. (The sandbox cannot also give 750 orders/day with only
~50 live shows: its events sell out; each extra 100 orders in the range costs one more page per pass.)
The clock starts mid-day (12:00 Moscow, yesterday: every partition exists) and moves --advance-min (15)
between ticks, as the schedule's does, so each tick's watermark read (orders changed since the newest
landed `updated_at` minus the overlap) sees one interval of changes. One warm-up tick (schema, first
fill) is not timed; then --repeat ticks; medians of wall time, requests (and those of the watermark
read) and response bytes.

    .venv/bin/python bench/tick.py --repeat 5
    .venv/bin/python bench/tick.py --concurrency 4   # QTICKETS_CONCURRENCY (default: the setting's, 4)
    .venv/bin/python bench/tick.py --history --repeat 1   # the whole history (every partition) in one run
    .venv/bin/python bench/tick.py --server   # the sandbox answers from its own process (as a real API)
    .venv/bin/python bench/tick.py --smoke
"""

import argparse
import atexit
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
import warnings
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from common import load, serve_sandbox

MSK = ZoneInfo("Europe/Moscow")
SHAPES = {"real": dict(days=600, orders_per_day=195, event_every_days=2.9),
          "smoke": dict(days=20, orders_per_day=50, event_every_days=4.0)}


class Wire:
    """Requests and response bytes seen by the transports of this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests, self.bytes, self.orders_lower_bounds, self.watermark_requests = 0, 0, [], 0
            self.sandbox_s = 0.0  # CPU the in-process sandbox spent answering (same cores, same GIL)


WIRE = Wire()


class SlowTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, latency_s: float):
        self.inner, self.latency_s = inner, latency_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        time.sleep(self.latency_s)
        started = time.thread_time()
        response = self.inner.handle_request(request)
        response.read()
        answered = time.thread_time() - started
        with WIRE.lock:
            WIRE.requests += 1
            WIRE.sandbox_s += answered
            WIRE.bytes += len(response.content)
            if request.url.path.endswith("/orders"):
                where = json.loads(request.content).get("where") or []
                WIRE.orders_lower_bounds += [c["value"] for c in where if c["operator"] in (">", ">=")]
                WIRE.watermark_requests += any(c["column"] == "updated_at" for c in where)
        return response


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="real")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="QTICKETS_CONCURRENCY; default: the setting's default")
    parser.add_argument("--history", action="store_true",
                        help="one run over the whole history (every daily partition) instead of a tick")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--advance-min", type=float, default=15.0, help="sandbox clock step between ticks")
    parser.add_argument("--server", action="store_true",
                        help="the sandbox answers from its own process on a local port, as an API answers "
                             "from its own machine (restarted at each tick's clock before the tick is timed)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.shape, args.repeat, args.latency_ms = "smoke", 1, 5.0
    shape = SHAPES[args.shape]
    today = datetime.now(MSK).date()
    now = datetime.combine(today - timedelta(days=1), datetime.min.time(), MSK) + timedelta(hours=12)
    opened_on = (now - timedelta(days=shape["days"])).date()
    tmp = tempfile.TemporaryDirectory()
    # Read at the first import of qtickets_assets: the daily partitions start with the account.
    os.environ.setdefault("QTICKETS_PARTITIONS_START", opened_on.isoformat())
    warnings.filterwarnings("ignore")

    import dagster as dg

    from qtickets_assets import automation
    from qtickets_assets.assets import checks, marts, raw, views
    from qtickets_assets.qtickets.client import QTicketsClient
    from qtickets_assets.qtickets.resource import QTicketsResource
    from qtickets_assets.runs import RANGE_END, RANGE_START
    from qtickets_assets.sandbox import SANDBOX_BASE_URL, SANDBOX_TOKEN, Sandbox
    from qtickets_assets.settings import Settings

    if args.concurrency is None:
        args.concurrency = Settings.model_fields["qtickets_concurrency"].default
    from qtickets_assets.warehouse.io_manager import ClickHouseIOManager
    from qtickets_assets.warehouse.resource import ClickHouseResource

    latency_s = args.latency_ms / 1000
    clock = [now]  # the sandbox's instant; moved between ticks

    class SlowSandbox(QTicketsResource):
        """The sandbox resource at `clock`, behind a transport with network latency."""

        def sandbox(self) -> Sandbox:
            return Sandbox(seed=self.sandbox_seed, opened_on=opened_on, clock=lambda: clock[0],
                           orders_per_day=self.sandbox_orders_per_day,
                           event_every_days=self.sandbox_event_every_days)

        def get_client(self) -> QTicketsClient:
            inner = httpx.HTTPTransport() if server else self.sandbox().transport()
            return QTicketsClient(server[0] if server else SANDBOX_BASE_URL, SANDBOX_TOKEN,
                                  transport=SlowTransport(inner, latency_s),
                                  timeout_s=self.timeout_s, per_page=self.per_page,
                                  concurrency=self.concurrency, rejects_dir=tmp.name)

    qtickets = SlowSandbox(sandbox_opened_on=opened_on.isoformat(), sandbox_as_of=now.isoformat(),
                           sandbox_orders_per_day=shape["orders_per_day"],
                           sandbox_event_every_days=shape["event_every_days"], concurrency=args.concurrency)
    box = qtickets.sandbox()
    stack = contextlib.ExitStack()
    atexit.register(stack.close)  # the server stops also when the run fails
    server: list[str] = []  # the base URL of the sandbox's own process, with --server
    history = len(box.account.orders_until(now))  # plans the account: not part of any tick
    events = sum(1 for e in box.account.events if e.created_at <= now)
    shows = len(box.polled_shows(now))
    clickhouse = ClickHouseResource(dsn=f"chdb://{tmp.name}/clickhouse")
    resources = {"clickhouse": clickhouse, "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
                 "qtickets": qtickets}
    defs = dg.Definitions(
        assets=dg.map_asset_specs(automation.with_freshness_policy,
                                  dg.load_assets_from_modules([raw, marts, views])),
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        jobs=[automation.refresh_job], resources=resources, executor=dg.in_process_executor,
    )
    job = defs.resolve_job_def(automation.refresh_job.name)
    first = datetime.combine(opened_on, datetime.min.time(), MSK) if args.history else now - timedelta(days=1)
    keys = automation.day_range(first, now)
    tags = {RANGE_START: keys.start, RANGE_END: keys.end}
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    walls, cpus, requests, watermark_requests, sizes, sandbox, loads = [], [], [], [], [], [], [load()]
    with dg.DagsterInstance.ephemeral() as instance:
        warm_up = 0 if args.history else 1  # a history run is the first fill itself
        for tick in range(args.repeat + warm_up):
            clock[0] = now + timedelta(minutes=args.advance_min * tick)
            if args.server:  # the same account (seed, shape) in its own process, frozen at the tick's clock
                stack.close()
                server[:] = [stack.enter_context(serve_sandbox(
                    opened_on.isoformat(), shape["orders_per_day"], clock[0], shape["event_every_days"]))[0]]
            WIRE.reset()
            started, cpu_started = time.perf_counter(), time.process_time()
            result = job.execute_in_process(instance=instance, tags=tags, run_config=quiet)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            assert result.success
            lowest = min(datetime.fromisoformat(v).replace(tzinfo=MSK) for v in WIRE.orders_lower_bounds)
            # No history re-read: every orders request is bounded below by the range's first day.
            assert lowest >= datetime.fromisoformat(keys.start).replace(tzinfo=MSK), lowest
            if tick >= warm_up:
                walls.append(wall)
                cpus.append(cpu)
                requests.append(WIRE.requests)
                watermark_requests.append(WIRE.watermark_requests)
                sizes.append(WIRE.bytes)
                sandbox.append(WIRE.sandbox_s)
                steps = step_seconds(instance, result.run_id)
        loads.append(load())
    window_orders = sum(1 for o in box.account.orders_until(now)
                        if o.created_at >= datetime.fromisoformat(keys.start).replace(tzinfo=MSK))
    report = {
        "mode": "history" if args.history else "tick", "shape": args.shape,
        "history_orders": history, "events": events, "polled_shows": shows,
        "orders_created_in_range": window_orders, "range": f"{keys.start}..{keys.end}",
        "latency_ms": args.latency_ms, "concurrency": args.concurrency, "repeat": args.repeat,
        "wall_s_median": round(statistics.median(walls), 2), "wall_s_runs": [round(w, 2) for w in walls],
        # This process's CPU (every thread, the in-process sandbox's answers included).
        "cpu_s_median": round(statistics.median(cpus), 2),
        "requests_median": statistics.median(requests), "advance_min": args.advance_min,
        "watermark_requests_median": statistics.median(watermark_requests),
        "watermark_requests_max": max(watermark_requests),
        "response_kb_median": round(statistics.median(sizes) / 1024),
        # The stand-in server's share of cpu_s (a real API answers on its own machine).
        "sandbox_cpu_s_median": None if server else round(statistics.median(sandbox), 2),
        "sandbox_server": bool(server),
        "slowest_steps_s_last_run": dict(sorted(steps.items(), key=lambda s: -s[1])[:6]),
        "network_floor_s": round(statistics.median(requests) * latency_s / args.concurrency, 1),
        "loadavg": loads,
    }
    stack.close()
    tmp.cleanup()
    return report


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Each step's wall seconds in a run, from its event log (start to success or failure)."""
    import dagster as dg

    started, took = {}, {}
    for record in instance.get_records_for_run(run_id, of_type={
            dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE}).records:
        entry = record.event_log_entry
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            started[entry.step_key] = entry.timestamp
        else:
            took[entry.step_key] = round(entry.timestamp - started[entry.step_key], 2)
    return took


if __name__ == "__main__":
    print(json.dumps(main()))
