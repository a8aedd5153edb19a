"""End to end over HTTP against a peer: the sandbox on a real local port (`qtickets-assets sandbox serve`,
its own process, clock frozen), the same request for both: every order, `orderBy id asc`, --per-page a page.

- ours: `QTicketsClient.orders()` (retries, paging rules, `where` re-check, pydantic models) -> the staging
  transform (`order_rows`) -> chDB, one insert per --batch orders, stamped as the IO manager stamps;
- ours_c4: the same with `concurrency=4` (pages fetched 4 at a time, overlapping the server's work);
- dlt: `rest_api` source, GET with a JSON body, page_number paginator on the body's `page`, stopping on the
  first empty page, into duckdb (dlt normalizes baskets into a child table). dlt runs in a subprocess of
  the interpreter given by --dlt-python (a venv with `dlt[duckdb]`: the `bench` extra); it times only
  `pipeline.run`; its peak RSS is reported too.

Why not the Dagster asset: the asset reads orders created and orders paid in the range (`where` on
created_at / payed_at); the sandbox filters the whole slice for every page it serves (O(n) a page), so over
200k orders the server, not the client, would be measured. README.md has the asset's number at 24k orders.

Medians of --repeat runs, alternating; ratios per repeat (same run), then their median.

    .venv/bin/python bench/e2e_vs_dlt.py --orders 200000 --repeat 3 --dlt-python /tmp/dltv/bin/python
    .venv/bin/python bench/e2e_vs_dlt.py --smoke
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from common import SANDBOX_TOKEN, dlt_available, dlt_command, history, load, run_watched, serve_sandbox


def run_dlt(python: str, base_url: str, per_page: int, cap_mb: float, memory_limit: str) -> dict:
    workdir = tempfile.mkdtemp(prefix="bench-dlt-")
    try:
        command, env = dlt_command(python, base_url, workdir, per_page, memory_limit)
        run = run_watched(command, cap_mb, env=env, cwd=workdir)
        if run["killed"] or run["returncode"]:
            raise RuntimeError(f"dlt failed (killed over {cap_mb} MB: {run['killed']}): "
                               f"{run['stderr'][-2000:]}")
        return {**json.loads(run["stdout"].strip().splitlines()[-1]), "peak_rss_mb": run["peak_rss_mb"]}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_ours(base_url: str, per_page: int, concurrency: int, batch: int) -> dict:
    """Our client's full read (dlt's request) -> models -> transform -> chDB, `batch` orders an insert."""

    from qtickets_assets.qtickets.client import QTicketsClient
    from qtickets_assets.transform import order_rows
    from qtickets_assets.warehouse.resource import ClickHouseResource
    from qtickets_assets.warehouse.writes import arrow_schema, insert_columns, new_version, stamp

    table = "stg_qtickets_api_orders_raw"

    def insert(client, orders) -> None:  # the IO manager's write, minus its whole-scope tombstones
        insert_columns(client, table, stamp(table, order_rows(orders), version), arrow_schema(client, table))

    with tempfile.TemporaryDirectory() as tmp:
        clickhouse = ClickHouseResource(dsn=f"chdb://{Path(tmp) / 'ch'}")
        clickhouse.migrate()  # schema first: not part of the timed run
        version = new_version()
        with clickhouse.get_client() as client:
            started = time.perf_counter()
            with QTicketsClient(base_url, SANDBOX_TOKEN, per_page=per_page, concurrency=concurrency) as api:
                pending = []
                for order in api.orders():
                    pending.append(order)
                    if len(pending) >= batch:
                        insert(client, pending)
                        pending = []
                if pending:
                    insert(client, pending)
            elapsed = time.perf_counter() - started
            orders, tickets = client.query(
                "SELECT uniqExact(order_id), count() FROM stg_qtickets_api_orders_raw FINAL"
            ).result_rows[0]
    return {"seconds": elapsed, "orders": orders, "tickets": tickets}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--per-day", type=int, default=2_000)
    parser.add_argument("--event-every-days", type=float, default=0.25, help="sandbox: enough events to sell")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-page", type=int, default=100,
                        help="page size of both (QTicketsResource's default)")
    parser.add_argument("--dlt-python", default=shutil.which("python", path=str(Path(sys.executable).parent)))
    parser.add_argument("--dlt-cap-mb", type=float, default=8_000, help="kill dlt above this RSS (no swap)")
    parser.add_argument("--duckdb-memory-limit", default="2GB", help="dlt's duckdb connection memory_limit")
    parser.add_argument("--runners", default="ours,ours_c4,dlt", help="comma-separated subset")
    parser.add_argument("--batch", type=int, default=5_000, help="ours: orders per insert")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    runners = args.runners.split(",")
    if args.smoke:
        args.orders, args.per_day, args.repeat = 600, 300, 1
        runners = [name for name in runners if name != "ours_c4"]
    warnings.filterwarnings("ignore")
    first_day, as_of = history(args.orders, args.per_day, datetime.now(ZoneInfo("Europe/Moscow")))
    # Our partitions must start with the account (read at import of qtickets_assets).
    os.environ["QTICKETS_PARTITIONS_START"] = first_day
    os.environ.pop("QTICKETS_ENV_FILE", None)
    with_dlt = dlt_available(args.dlt_python)
    runs: dict[str, list[float]] = {"ours": [], "ours_c4": [], "dlt": []}
    counts: dict[str, dict] = {}
    failures: dict[str, list[str]] = {}
    sandbox = serve_sandbox(first_day, args.per_day, as_of.astimezone(UTC), args.event_every_days)
    with sandbox as (base_url, total):
        loads = [load()]
        for _ in range(args.repeat):
            for name, runner in (
                ("ours", lambda: run_ours(base_url, args.per_page, 1, args.batch)),
                ("ours_c4", lambda: run_ours(base_url, args.per_page, 4, args.batch)),
                ("dlt", lambda: run_dlt(args.dlt_python, base_url, args.per_page, args.dlt_cap_mb,
                                        args.duckdb_memory_limit)),
            ):
                if name not in runners or (name == "dlt" and not with_dlt):
                    continue
                try:
                    outcome = runner()
                except RuntimeError as error:  # e.g. dlt killed over its memory cap: say so, go on
                    failures.setdefault(name, []).append(str(error)[:300])
                    continue
                runs[name].append(outcome["seconds"])
                counts[name] = {k: v for k, v in outcome.items() if k != "seconds"}
            loads.append(load())
    days = (as_of.date() - datetime.fromisoformat(first_day).date()).days + 1
    report = {"account_orders": total, "days": days, "repeat": args.repeat,
              "loadavg": loads}
    for name, seconds in runs.items():
        if seconds:
            median = statistics.median(seconds)
            report[name] = {"median_s": round(median, 2), "runs_s": [round(s, 2) for s in seconds],
                            "orders_per_s": round(total / median), **counts[name]}
    report["failures"] = failures
    if "dlt" in runners and not with_dlt:
        report["dlt"] = f"skipped: no dlt in {args.dlt_python} (pip install -e '.[bench]' or --dlt-python)"
    for name in ("ours", "ours_c4"):
        # Ratio per repeat (same run), then the median of those.
        if runs[name] and len(runs[name]) == len(runs["dlt"]):
            report[f"{name}_over_dlt"] = round(statistics.median(
                d / o for d, o in zip(runs["dlt"], runs[name], strict=True)), 2)
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
