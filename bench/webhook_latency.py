"""Time from a sandbox change to the change visible in v_sales_latest under `qtickets-assets dev`.

The whole path, as shipped: `dev` (webserver, daemon, `serve`, the sandbox's webhook sender) on a fresh
instance and data directory, after one `load` of the history. A change is a sale (`payed`), a
cancellation of a paid order (`deleted`) or a refund (`refunded`): what moves v_sales_latest. Its moment
comes from the sandbox's plans (the account is a pure function of (seed, T), so this process knows when
each change happens). It is visible once a run that started after it, and read it (the hook's order id in
the orders staging metadata, or, for payments and cancellations that move `updated_at`, any refresh), has
materialized v_sales_latest (a view over the rebuilt fact: visible when that step ends). Read from the
Dagster instance only: this process never opens the warehouse that the runs own.

The sandbox sells faster than the default so that a change comes every ~40 s (--orders-per-day, with more
events to sell: --event-every-days); the history is a week (--history-days) to keep the first load small.

    .venv/bin/python bench/webhook_latency.py                 # 10 changes, ports 3310/3311
    .venv/bin/python bench/webhook_latency.py --changes 20 --port 3320
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

FACT_CHANGES = {"payed", "deleted", "refunded"}
JOBS = ("qtickets_webhooks", "qtickets_refresh")


def runs_that_read(instance, since: float) -> list[dict]:
    """Successful runs started after `since`: start time, the hooked order ids their orders staging
    re-read, and when they materialized v_sales_latest."""
    import dagster as dg

    found = []
    for job in JOBS:
        records = instance.get_run_records(
            dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=200)
        for record in records:
            if not record.start_time or record.start_time < since:
                continue
            hooked, view_at = set(), None
            events = instance.get_records_for_run(record.dagster_run.run_id,
                                                  of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
            for event in events:
                entry = event.event_log_entry
                key = entry.dagster_event.asset_key.to_user_string()
                metadata = entry.asset_materialization.metadata
                if key == "stg_qtickets_api_orders_raw" and "qtickets/webhook_order_ids" in metadata:
                    hooked |= set(metadata["qtickets/webhook_order_ids"].value)
                if key == "v_sales_latest":
                    view_at = entry.timestamp
            if view_at is not None:
                found.append({"job": job, "run_id": record.dagster_run.run_id, "started": record.start_time,
                              "hooked": hooked, "view_at": view_at})
    return sorted(found, key=lambda run: run["view_at"])


def visible_at(change: tuple[datetime, int, str], runs: list[dict]) -> dict | None:
    moment, order_id, event = change
    for run in runs:
        if run["started"] > moment.timestamp() and (
                order_id in run["hooked"] or (event != "refunded" and run["job"] == "qtickets_refresh")):
            return run
    return None


def fact_changes(sandbox, since: datetime, until: datetime) -> list[tuple[datetime, int, str]]:
    from qtickets_assets.sandbox.webhooks import changes

    picked = []
    for moment, order_id, event in changes(sandbox.account, since, until):
        order = sandbox.account.order(order_id, until)
        if event in ("payed", "refunded") or (event == "deleted" and order.payed_at is not None
                                              and order.payed_at < moment):
            picked.append((moment, order_id, event))
    return picked


def wait_for(url: str, deadline: float) -> int:
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=5).status_code
        except httpx.HTTPError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--orders-per-day", type=int, default=3000)
    parser.add_argument("--event-every-days", type=float, default=0.2, help="enough events to sell that much")
    parser.add_argument("--history-days", type=int, default=7)
    parser.add_argument("--port", type=int, default=3310, help="UI port; serve gets port + 1")
    parser.add_argument("--timeout-s", type=float, default=1800)
    args = parser.parse_args(argv)

    from qtickets_assets.sandbox import Sandbox

    work = Path(tempfile.mkdtemp(prefix="webhook-latency-"))
    opened_on = date.today() - timedelta(days=args.history_days)
    env = {**os.environ, "DAGSTER_HOME": str(work / "home"), "QTICKETS_DATA_DIR": str(work / "data"),
           "QTICKETS_PARTITIONS_START": opened_on.isoformat(),
           "QTICKETS_SANDBOX_ORDERS_PER_DAY": str(args.orders_per_day),
           "QTICKETS_SANDBOX_EVENT_EVERY_DAYS": str(args.event_every_days)}
    for name in ("QTICKETS_API_BASE_URL", "CLICKHOUSE_DSN", "QTICKETS_SANDBOX_AS_OF", "QTICKETS_ENV_FILE"):
        env.pop(name, None)
    (work / "home").mkdir()
    cli = [sys.executable, "-m", "qtickets_assets.cli"]
    began = time.monotonic()
    # The history first (the fact must cover the days that old refunds touch); recorded in the instance.
    from qtickets_assets.cli import PACKAGE_DIR

    (work / "home" / "dagster.yaml").write_text((PACKAGE_DIR / "dagster.yaml").read_text())
    subprocess.run([*cli, "load", "--since-hours", str(24 * args.history_days + 24)], env=env, cwd=work,
                   check=True, stdout=subprocess.DEVNULL)
    load_s = time.monotonic() - began
    dev = subprocess.Popen([*cli, "dev", "--port", str(args.port)], env=env, cwd=work,
                           stdout=(work / "dev.log").open("w"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    import dagster as dg

    sandbox = Sandbox(seed=int(env.get("QTICKETS_SANDBOX_SEED", 42)), opened_on=opened_on,
                      orders_per_day=args.orders_per_day, event_every_days=args.event_every_days)
    try:
        deadline = time.monotonic() + args.timeout_s
        wait_for(f"http://127.0.0.1:{args.port + 1}/healthz/qtickets_api", deadline)
        wait_for(f"http://127.0.0.1:{args.port}/server_info", deadline)
        start = datetime.now(UTC)  # changes after dev is up (its sender starts from this moment on)
        latencies: dict[tuple, dict] = {}
        with dg.DagsterInstance.get() as instance:
            while time.monotonic() < deadline:
                time.sleep(5)
                now = datetime.now(UTC)
                changes = fact_changes(sandbox, start, now)[: args.changes]
                runs = runs_that_read(instance, start.timestamp())
                for change in changes:
                    if change not in latencies and (run := visible_at(change, runs)):
                        latencies[change] = {"order_id": change[1], "event": change[2],
                                             "latency_s": round(run["view_at"] - change[0].timestamp(), 1),
                                             "job": run["job"]}
                if len(changes) == args.changes and len(latencies) == args.changes:
                    break
            runs = runs_that_read(instance, start.timestamp())
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
    values = sorted(item["latency_s"] for item in latencies.values())
    report = {
        "changes": len(values), "median_s": statistics.median(values) if values else None,
        "max_s": values[-1] if values else None,
        "latencies": sorted(latencies.values(), key=lambda item: item["latency_s"]),
        "runs": {job: sum(run["job"] == job for run in runs) for job in JOBS},
        "orders_per_day": args.orders_per_day, "history_days": args.history_days, "load_s": round(load_s, 1),
        "work_dir": str(work),
    }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
