"""Memory: peak RSS of a full backfill (the daily-partitioned assets, orders staging and the sales fact,
over the whole partition range in one run, as BackfillPolicy.single_run does; chDB embedded) at each --sizes
orders.

The sandbox serves the account from its own process on a local port; each backfill runs in a fresh child
process whose peak RSS (`wait4` ru_maxrss: Python, pyarrow and the embedded engine together) is reported,
with the floor (the same process once Dagster is imported and chDB is open and migrated) and the growth.
A watchdog kills a child whose RSS passes --cap-mb (the machine has no swap) and reports it as "> cap".

    .venv/bin/python bench/memory.py --sizes 100000,1000000
    .venv/bin/python bench/memory.py --smoke
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from datetime import datetime
from zoneinfo import ZoneInfo

from common import ROOT, SANDBOX_TOKEN, history, load, peak_rss_mb, run_watched, serve_sandbox


def backfill(base_url: str, first_day: str, last_day: str) -> dict:
    """The child: one run of the whole graph over [first_day, last_day]."""
    warnings.filterwarnings("ignore")
    import dagster as dg

    from qtickets_assets.assets import marts, raw
    from qtickets_assets.qtickets.resource import QTicketsResource
    from qtickets_assets.runs import RANGE_END, RANGE_START
    from qtickets_assets.warehouse.io_manager import ClickHouseIOManager
    from qtickets_assets.warehouse.resource import ClickHouseResource

    with tempfile.TemporaryDirectory() as tmp:
        clickhouse = ClickHouseResource(dsn=f"chdb://{tmp}/clickhouse")
        qtickets = QTicketsResource(base_url=base_url, token=SANDBOX_TOKEN, rejects_dir=f"{tmp}/rejects")
        clickhouse.migrate()  # the engine loaded and the schema made: the process's floor
        baseline_mb = round(peak_rss_mb())
        started, cpu_started = time.perf_counter(), time.process_time()
        result = dg.materialize(
            [raw.stg_qtickets_api_orders_raw, marts.fact_qtickets_sales_daily],
            resources={"clickhouse": clickhouse, "qtickets": qtickets,
                       "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse)},
            tags={RANGE_START: first_day, RANGE_END: last_day}, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        with clickhouse.get_client() as client:
            tickets = client.query("SELECT count() FROM stg_qtickets_api_orders_raw FINAL").result_rows[0][0]
    return {"success": result.success, "seconds": round(seconds, 1), "run_cpu_s": round(cpu_s, 1),
            "staged_rows": tickets,
            "baseline_rss_mb": baseline_mb}


def measure(base_url: str, first_day: str, last_day: str, cap_mb: float) -> dict:
    """Run the child, watch its RSS, return its report plus its peak RSS."""
    env = {**os.environ, "QTICKETS_PARTITIONS_START": first_day}
    env.pop("QTICKETS_ENV_FILE", None)
    run = run_watched([sys.executable, __file__, "--child", base_url, first_day, last_day], cap_mb,
                      cwd=ROOT, env=env)
    peak_mb = run["peak_rss_mb"]
    if run["killed"]:
        return {"peak_rss_mb": f"> {cap_mb:.0f} (killed by the watchdog)"}
    if run["returncode"]:
        raise RuntimeError(f"backfill child failed ({run['returncode']}): {run['stderr'][-2000:]}")
    report = json.loads(run["stdout"].strip().splitlines()[-1])
    return {**report, "peak_rss_mb": peak_mb, "growth_mb": peak_mb - report["baseline_rss_mb"],
            "cpu_s": run["cpu_s"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000", help="orders of history, comma-separated")
    parser.add_argument("--per-day", type=int, default=5_000)
    parser.add_argument("--event-every-days", type=float, default=0.1, help="sandbox: enough events to sell")
    parser.add_argument("--cap-mb", type=float, default=8_000)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("BASE_URL", "FIRST_DAY", "LAST_DAY"))
    args = parser.parse_args(argv)
    if args.child:
        return backfill(*args.child)
    if args.smoke:
        args.sizes, args.per_day = "400", 200
    report: dict = {"per_day": args.per_day, "results": []}
    for size in map(int, args.sizes.split(",")):
        first_day, as_of = history(size, args.per_day, datetime.now(ZoneInfo("Europe/Moscow")))
        sandbox = serve_sandbox(first_day, args.per_day, as_of, args.event_every_days)
        with sandbox as (base_url, total):
            before = load()
            outcome = measure(base_url, first_day, as_of.date().isoformat(), args.cap_mb)
            report["results"].append({"orders": total, "days": f"{first_day}..{as_of.date()}", **outcome,
                                      "loadavg": [before, load()]})
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
