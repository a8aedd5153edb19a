"""The hot path at the floor: one backfill of the product's own orders asset through Dagster, beside the
floor and dlt, on the same account served by the sandbox on a real local port (its own process, clock
frozen), each runner a fresh child process measured by its `wait4` rusage (CPU user + system, peak RSS).

- ours: `dagster asset materialize -m qtickets_assets.definitions --select stg_qtickets_api_orders_raw
  --partition-range FIRST...LAST` (one run over the range: BackfillPolicy.single_run), configured by
  environment variables alone (the real-API path: QTICKETS_API_BASE_URL, an embedded chDB DSN,
  QTICKETS_CONCURRENCY); its Python startup and imports count, as they do for the others;
- floor: httpx + orjson + flatten (one dict per basket with its order's fields) + `insert_arrow` into
  chDB (one insert per 2,000 orders, as the asset), the orders created in the range, id ascending, 100 a
  page, one request at a time;
- ours_empty: the same Dagster command over one day without orders (the day before the account opens):
  what a run costs before its first order (Python, Dagster, the definitions, chDB opened and migrated);
- dlt: `rest_api` source (every order, id ascending, 100 a page) into duckdb, parquet loader files, in
  the interpreter given by --dlt-python (the `bench` extra).

Requests are counted by the server (its access log). Then `pages in RAM` (bench/throughput.py: the same
transform and insert on pre-rendered pages, no network) in the same run.

    .venv/bin/python bench/backfill.py --orders 44000 --repeat 1
    .venv/bin/python bench/backfill.py --smoke
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from common import (
    ROOT,
    SANDBOX_TOKEN,
    dlt_available,
    dlt_command,
    history,
    load,
    requests_in,
    run_watched,
    serve_sandbox,
)

DAGSTER = Path(sys.executable).with_name("dagster")
PER_PAGE = 100  # QTicketsResource.per_page, and the floor's and dlt's page size

FLOOR_RUN = """
import json, sys
import httpx, orjson, pyarrow as pa
from qtickets_assets.warehouse.engine import open_client

base_url, token, dsn, first, last = sys.argv[1:6]
where = [{"column": "created_at", "operator": ">=", "value": first + " 00:00:00"},
         {"column": "created_at", "operator": "<=", "value": last + " 23:59:59"}]
with open_client(dsn) as client, httpx.Client(base_url=base_url, timeout=600,
                                              headers={"Authorization": "Bearer " + token}) as http:
    client.command("CREATE TABLE floor_baskets (order_id Int64, event_id Int64, order_created_at String, "
                   "payed_at Nullable(String), id Int64, show_id Int64, price Int64, created_at String, "
                   "updated_at String, seat_id String) ENGINE = MergeTree ORDER BY (order_id, id)")
    page, total, baskets = 1, None, []
    while total is None or (page - 1) * 100 < total:
        body = orjson.loads(http.request("GET", "orders", json={"where": where, "orderBy": {"id": "asc"},
                                                                "page": page, "perPage": 100}).content)
        if not body["data"]:
            break
        total = body["paging"]["total"]
        baskets += [{"order_id": o["id"], "event_id": o["event_id"], "order_created_at": o["created_at"],
                     "payed_at": o["payed_at"], "id": b["id"], "show_id": b["show_id"], "price": b["price"],
                     "created_at": b["created_at"], "updated_at": b["updated_at"], "seat_id": b["seat_id"]}
                    for o in body["data"] for b in o["baskets"]]
        if page % 20 == 0 or page * 100 >= total:  # one insert per 2,000 orders, as the orders asset
            client.insert_arrow("floor_baskets", pa.Table.from_pylist(baskets), settings={"async_insert": 0})
            baskets = []
        page += 1
    orders, tickets = client.query("SELECT uniqExact(order_id), count() FROM floor_baskets").result_rows[0]
print(json.dumps({"orders": orders, "tickets": tickets}))
"""

COUNT_RUN = """
import json, sys
from qtickets_assets.warehouse.engine import open_client
with open_client(sys.argv[1]) as client:
    orders, tickets = client.query(
        "SELECT uniqExact(order_id), count() FROM zakaz.stg_qtickets_api_orders_raw FINAL").result_rows[0]
print(json.dumps({"orders": orders, "tickets": tickets}))
"""

def measured(command: list[str], cap_mb: float, access_log: Path, **popen) -> dict:
    """Run one runner as a child; its CPU, peak RSS, wall and the requests the server saw meanwhile."""
    before = requests_in(access_log)
    run = run_watched(command, cap_mb, **popen)
    if run["killed"] or run["returncode"]:
        raise RuntimeError(f"{command[:3]} failed (killed over {cap_mb} MB: {run['killed']}): "
                           f"{run['stderr'][-3000:]}")
    after = requests_in(access_log)
    served = {kind: after[kind] - before.get(kind, 0) for kind in after if after[kind] - before.get(kind, 0)}
    return {"cpu_s": run["cpu_s"], "wall_s": run["wall_s"], "peak_rss_mb": run["peak_rss_mb"],
            "requests": sum(served.values()), "requests_by_path": served, "stdout": run["stdout"]}


def run_ours(base_url: str, first: str, last: str, concurrency: int, cap_mb: float, access_log: Path) -> dict:
    """The orders asset over [first, last] (the daily partitions start at `first`) in a fresh warehouse."""
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
        dsn = f"chdb://{tmp}/clickhouse"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QTICKETS_", "CLICKHOUSE_"))}
        env.update(QTICKETS_API_BASE_URL=base_url, QTICKETS_API_TOKEN=SANDBOX_TOKEN, CLICKHOUSE_DSN=dsn,
                   QTICKETS_PARTITIONS_START=first, QTICKETS_DATA_DIR=tmp, DAGSTER_HOME=tmp,
                   QTICKETS_CONCURRENCY=str(concurrency))
        command = [str(DAGSTER), "asset", "materialize", "-m", "qtickets_assets.definitions",
                   "--select", "stg_qtickets_api_orders_raw", "--partition-range", f"{first}...{last}"]
        result = measured(command, cap_mb, access_log, env=env, cwd=tmp)
        count = run_watched([sys.executable, "-c", COUNT_RUN, dsn], cap_mb, env=env, cwd=tmp)
        result.update(json.loads(count["stdout"].strip().splitlines()[-1]))
    del result["stdout"]
    return result


def run_floor(base_url: str, first: str, last: str, cap_mb: float, access_log: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        command = [sys.executable, "-c", FLOOR_RUN, base_url, SANDBOX_TOKEN, f"chdb://{tmp}/ch", first, last]
        result = measured(command, cap_mb, access_log, cwd=tmp)
    counts = json.loads(result.pop("stdout").strip().splitlines()[-1])
    return {**result, **counts}


def run_dlt(python: str, base_url: str, cap_mb: float, access_log: Path) -> dict:
    workdir = tempfile.mkdtemp(prefix="bench-dlt-")
    try:
        command, env = dlt_command(python, base_url, workdir, PER_PAGE, "2GB", "parquet")
        result = measured(command, cap_mb, access_log, env=env, cwd=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    counts = json.loads(result.pop("stdout").strip().splitlines()[-1])
    return {**result, **counts}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=44_000)
    parser.add_argument("--per-day", type=int, default=2_000)
    parser.add_argument("--event-every-days", type=float, default=0.25, help="sandbox: enough events to sell")
    parser.add_argument("--concurrency", type=int, default=2, help="ours: QTICKETS_CONCURRENCY (default 2)")
    parser.add_argument("--dlt-python", default=shutil.which("python", path=str(Path(sys.executable).parent)))
    parser.add_argument("--cap-mb", type=float, default=6_000, help="kill a runner above this RSS (no swap)")
    parser.add_argument("--runners", default="ours,floor,dlt", help="comma-separated subset")
    parser.add_argument("--in-ram-orders", type=int, default=40_000, help="bench/throughput.py's size")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    runners = args.runners.split(",")
    if args.smoke:
        args.orders, args.per_day, args.in_ram_orders = 600, 300, 500
    warnings.filterwarnings("ignore")
    first, as_of = history(args.orders, args.per_day, datetime.now(ZoneInfo("Europe/Moscow")))
    last = as_of.date().isoformat()
    with_dlt = "dlt" in runners and dlt_available(args.dlt_python)
    report: dict = {"range": f"{first}...{last}", "per_page": PER_PAGE, "loadavg": [load()]}
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        access_log = Path(tmp) / "access.log"
        with serve_sandbox(first, args.per_day, as_of.astimezone(UTC), args.event_every_days,
                           access_log=access_log) as (base_url, total):
            report.update(account_orders=total, order_pages=math.ceil(total / PER_PAGE))
            if "ours" in runners:
                report["ours"] = run_ours(base_url, first, last, args.concurrency, args.cap_mb, access_log)
                report["loadavg"].append(load())
                before = (date.fromisoformat(first) - timedelta(days=1)).isoformat()
                report["ours_empty"] = run_ours(base_url, before, before, args.concurrency, args.cap_mb,
                                                access_log)
                report["loadavg"].append(load())
            if "floor" in runners:
                report["floor"] = run_floor(base_url, first, last, args.cap_mb, access_log)
                report["loadavg"].append(load())
            if with_dlt:
                report["dlt"] = run_dlt(args.dlt_python, base_url, args.cap_mb, access_log)
                report["loadavg"].append(load())
            elif "dlt" in runners:
                report["dlt"] = f"skipped: no dlt in {args.dlt_python} (pip install -e '.[bench]')"
    ours = report.get("ours")
    if ours:
        report["ours_requests_over_order_pages"] = round(ours["requests"] / report["order_pages"], 3)
        for peer in ("floor", "dlt"):
            if isinstance(report.get(peer), dict):
                report[f"ours_cpu_over_{peer}"] = round(ours["cpu_s"] / report[peer]["cpu_s"], 3)
        # What the orders themselves cost, over what a run costs before its first order.
        report["ours_cpu_above_empty_run_s"] = round(ours["cpu_s"] - report["ours_empty"]["cpu_s"], 2)
    if "ours" in runners:
        sys.path.insert(0, str(ROOT / "bench"))
        from throughput import main as throughput

        report["in_ram"] = throughput(["--orders", str(args.in_ram_orders), "--repeat", "3"]
                                      + (["--smoke"] if args.smoke else []))
    report["loadavg"].append(load())
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
