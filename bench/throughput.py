"""Pipeline throughput: pre-fetched sandbox pages -> parse -> validate -> transform -> insert into chDB.

Floor, measured in the same run on the same bytes: orjson parse + one Arrow batch of the baskets,
untransformed, via insert_arrow. Reports medians of --repeat runs and the ratio pipeline/floor.

    .venv/bin/python bench/throughput.py --orders 40000 --repeat 5
    .venv/bin/python bench/throughput.py --smoke           # tiny, for CI: proves the script runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa

from qtickets_assets.qtickets.models import Order, parse
from qtickets_assets.qtickets.sandbox import Sandbox, render_order
from qtickets_assets.transform import order_rows
from qtickets_assets.warehouse.engine import INSERT_SETTINGS, open_client
from qtickets_assets.warehouse.io_manager import dedup_key, new_version
from qtickets_assets.warehouse.migrations import migrate

PAGE = 100
FLOOR_DDL = """CREATE TABLE IF NOT EXISTS floor_baskets (order_id Int64, id Int64, show_id Int64, price Int64,
    created_at String, updated_at String, seat_id String) ENGINE = MergeTree ORDER BY (order_id, id)"""


def pages_of(orders: int, per_day: int) -> tuple[list[bytes], int]:
    days = max(2, orders // per_day + 2)
    sandbox = Sandbox(opened_on=datetime(2026, 1, 1).date(), orders_per_day=per_day)
    now = sandbox.account.opened_at.replace(tzinfo=sandbox.account.opened_at.tzinfo) + __import__(
        "datetime").timedelta(days=days)
    plans = sandbox.account.orders_until(now)[:orders]
    pages, tickets = [], 0
    for start in range(0, len(plans), PAGE):
        data = [render_order(p, now) for p in plans[start:start + PAGE]]
        tickets += sum(len(o["baskets"]) for o in data)
        pages.append(json.dumps({"data": data, "paging": {"perPage": PAGE, "currentPage": 1,
                                                          "total": len(plans)}}).encode())
    return pages, tickets


def pipeline(client, pages: list[bytes]) -> None:
    version = new_version()
    for number, page in enumerate(pages, 1):
        orders = [parse(Order, row, source=f"page {number}") for row in json.loads(page)["data"]]
        rows = order_rows(orders)
        count = len(rows)
        columns = dict(rows.columns)
        columns["_dedup_key"] = [dedup_key(o, b) for o, b in zip(columns["order_id"], columns["basket_id"])]
        columns["_ver"] = [version] * count
        columns["_loaded_at"] = [datetime.now(UTC)] * count
        client.insert("stg_qtickets_api_orders_raw", data=list(columns.values()), column_names=list(columns),
                      column_oriented=True, settings=INSERT_SETTINGS)


def floor(client, pages: list[bytes]) -> None:
    for page in pages:
        baskets = [
            {"order_id": o["id"], "id": b["id"], "show_id": b["show_id"], "price": b["price"],
             "created_at": b["created_at"], "updated_at": b["updated_at"], "seat_id": b["seat_id"]}
            for o in orjson.loads(page)["data"] for b in o["baskets"]
        ]
        client.insert_arrow("floor_baskets", pa.Table.from_pylist(baskets), settings=INSERT_SETTINGS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.orders, args.repeat = 500, 1
    pages, tickets = pages_of(args.orders, per_day=2_000)
    megabytes = sum(map(len, pages)) / 1e6
    with tempfile.TemporaryDirectory() as tmp, open_client(f"chdb://{Path(tmp) / 'ch'}") as client:
        migrate(client, "bench")
        client.command(FLOOR_DDL)
        ours, floors = [], []
        for _ in range(args.repeat):
            for runner, out in ((pipeline, ours), (floor, floors)):
                started = time.perf_counter()
                runner(client, pages)
                out.append(time.perf_counter() - started)
    ours_s, floor_s = statistics.median(ours), statistics.median(floors)
    print(json.dumps({
        "orders": args.orders, "tickets": tickets, "pages": len(pages), "payload_mb": round(megabytes, 1),
        "pipeline_tickets_per_s": round(tickets / ours_s), "floor_tickets_per_s": round(tickets / floor_s),
        "pipeline_over_floor": round(ours_s / floor_s, 2), "repeat": args.repeat,
    }))


if __name__ == "__main__":
    main()
