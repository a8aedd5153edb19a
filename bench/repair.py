"""Issue 16: the extra requests a capacity repair costs at the size of the observed real account.

The `real` account of bench/tick.py (~126k orders of history, ~50 active or future shows), one show made
over capacity the way the issue saw it (`sandbox.Resale`: 4 tickets paid 2+ days earlier refunded with no
webhook, the show then sold out). The warehouse first holds every day since the show's event went on sale
(one run over those partitions), then the next 15-minute tick (`qtickets_refresh` over yesterday..today)
runs twice on the same state, same clock: with the repair off (QTICKETS_REPAIR_MAX_SHOWS=0; the check
fails) and on (it re-reads the show's paid orders by id; the check passes). Requests are counted on the
wire (bench/tick.py's transport); the repair's own are the orders requests filtered by `id`.

    .venv/bin/python bench/repair.py               # latency 0: requests do not depend on it
    .venv/bin/python bench/repair.py --smoke
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load  # noqa: E402
from tick import SHAPES, WIRE, SlowTransport  # noqa: E402

MSK = ZoneInfo("Europe/Moscow")


def pick_show(sandbox, at: datetime, tick: datetime):
    """Of `Sandbox.resale_candidates`, the show whose event went on sale last."""
    return max((sandbox.account.events_by_id[show.event_id].created_at, show.id)
               for show, _ in sandbox.resale_candidates(at, tick))[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="real")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.shape = "smoke"
    shape = SHAPES[args.shape]
    today = datetime.now(MSK).date()
    now = datetime.combine(today - timedelta(days=1), datetime.min.time(), MSK) + timedelta(hours=12)
    at, tick = now + timedelta(minutes=5), now + timedelta(minutes=15)
    opened_on = (now - timedelta(days=shape["days"])).date()
    tmp = tempfile.TemporaryDirectory()
    os.environ.setdefault("QTICKETS_PARTITIONS_START", opened_on.isoformat())
    warnings.filterwarnings("ignore")

    import dagster as dg

    from qtickets_assets import automation
    from qtickets_assets.assets import checks, marts, raw, views
    from qtickets_assets.qtickets.client import QTicketsClient
    from qtickets_assets.qtickets.resource import QTicketsResource
    from qtickets_assets.runs import RANGE_END, RANGE_START
    from qtickets_assets.sandbox import SANDBOX_BASE_URL, SANDBOX_TOKEN, Sandbox, parse_resales
    from qtickets_assets.warehouse.io_manager import ClickHouseIOManager
    from qtickets_assets.warehouse.resource import ClickHouseResource

    clock = [now]
    account = dict(seed=42, opened_on=opened_on, orders_per_day=shape["orders_per_day"],
                   event_every_days=shape["event_every_days"])
    show = pick_show(Sandbox(**account, clock=lambda: now), at, tick)
    resales = f"{show}@{at.isoformat()}"

    class WiredSandbox(QTicketsResource):
        """The sandbox with the resale, at `clock`, behind the counting transport."""

        def sandbox(self) -> Sandbox:
            return Sandbox(**account, clock=lambda: clock[0], resales=parse_resales(self.sandbox_resales))

        def get_client(self) -> QTicketsClient:
            return QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN,
                                  transport=SlowTransport(self.sandbox().transport(), args.latency_ms / 1000),
                                  timeout_s=self.timeout_s, per_page=self.per_page,
                                  concurrency=self.concurrency, rejects_dir=tmp.name)

    box = WiredSandbox(sandbox_resales=resales).sandbox()
    history = len(box.account.orders_until(tick))
    event = box.account.events_by_id[box.account.shows[show].event_id]
    clickhouse = ClickHouseResource(dsn=f"chdb://{tmp.name}/clickhouse")

    def run(first: datetime, last: datetime, **limits) -> tuple[dg.ExecuteInProcessResult, dict]:
        qtickets = WiredSandbox(sandbox_resales=resales, **limits)
        defs = dg.Definitions(
            assets=dg.load_assets_from_modules([raw, marts, views]),
            asset_checks=dg.load_asset_checks_from_modules([checks]), jobs=[automation.refresh_job],
            resources={"clickhouse": clickhouse, "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
                       "qtickets": qtickets},
            executor=dg.in_process_executor)
        keys = automation.day_range(first, last)
        WIRE.reset()
        ids = []
        original = SlowTransport.handle_request

        def counting(self, request):  # the repair's requests: orders filtered by id
            where = json.loads(request.content or b"{}").get("where") or []
            if request.url.path.endswith("/orders") and any(c["column"] == "id" for c in where):
                ids.append(len(next(c["value"] for c in where if c["column"] == "id")))
            return original(self, request)

        SlowTransport.handle_request = counting
        started = time.perf_counter()
        try:
            result = defs.resolve_job_def(automation.refresh_job.name).execute_in_process(
                instance=instance, tags={RANGE_START: keys.start, RANGE_END: keys.end},
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        finally:
            SlowTransport.handle_request = original
        [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "sold_within_capacity"]
        wall = round(time.perf_counter() - started, 1)
        return result, {"requests": WIRE.requests, "id_requests": len(ids), "ids_asked": sum(ids),
                        "response_kb": round(WIRE.bytes / 1024), "wall_s": wall,
                        "check_passed": check.passed,
                        "repair": {k.removeprefix("repair/"): v.value for k, v in check.metadata.items()
                                   if k.startswith("repair/") and k != "repair/summary"}}

    loads = [load()]
    with dg.DagsterInstance.ephemeral() as instance:
        first = datetime.combine(event.created_at.astimezone(MSK).date(), datetime.min.time(), MSK)
        filled, fill = run(first, now)
        assert filled.success
        clock[0] = tick
        off_result, off = run(tick - timedelta(days=1), tick, repair_max_shows=0)
        on_result, on = run(tick - timedelta(days=1), tick)
        assert off_result.success and not off["check_passed"], off
        assert on_result.success and on["check_passed"], on
    loads.append(load())
    report = {
        "shape": args.shape, "history_orders": history, "show": show,
        "show_capacity": box.account.shows[show].capacity,
        "event_on_sale_since": event.created_at.date().isoformat(), "fill": fill,
        "tick_repair_off": off, "tick_repair_on": on,
        "extra_requests": on["requests"] - off["requests"], "latency_ms": args.latency_ms, "loadavg": loads,
    }
    tmp.cleanup()
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
