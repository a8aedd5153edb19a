"""Pipeline throughput ("pages in RAM"): pre-rendered sandbox pages -> parse -> validate -> transform ->
insert into chDB, the orders asset's and the IO manager's own functions, no network.

Floor, measured in the same run on the same bytes: orjson parse + one Arrow batch of the baskets,
untransformed, via insert_arrow, once per --batch-pages pages; the pipeline chunks and inserts as the asset
and the IO manager do (`order_chunks`, `insert_chunks`). Reports medians of --repeat runs and the ratio
pipeline/floor (per repeat).

    .venv/bin/python bench/throughput.py --orders 40000 --repeat 5
    .venv/bin/python bench/throughput.py --smoke           # tiny, for CI: proves the script runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
from common import load

from qtickets_assets.assets.raw import order_chunks
from qtickets_assets.qtickets.models import Order, parse
from qtickets_assets.sandbox import Sandbox, render_order
from qtickets_assets.warehouse.engine import INSERT_SETTINGS, open_client
from qtickets_assets.warehouse.migrations import migrate
from qtickets_assets.warehouse.writes import insert_chunks, new_version

PAGE = 100
TABLE = "stg_qtickets_api_orders_raw"
FLOOR_DDL = """CREATE TABLE IF NOT EXISTS floor_baskets (order_id Int64, id Int64, show_id Int64, price Int64,
    created_at String, updated_at String, seat_id String) ENGINE = MergeTree ORDER BY (order_id, id)"""


def pages_of(orders: int, per_day: int) -> tuple[list[bytes], int, int]:
    days = max(2, orders // per_day + 2)
    # Events every 6 hours: at this daily volume fewer events would sell out and cap the orders.
    sandbox = Sandbox(opened_on=datetime(2026, 1, 1).date(), orders_per_day=per_day, event_every_days=0.25)
    now = sandbox.account.opened_at + timedelta(days=days)
    plans = sandbox.account.orders_until(now)[:orders]
    pages, tickets = [], 0
    for start in range(0, len(plans), PAGE):
        data = [render_order(p, now) for p in plans[start:start + PAGE]]
        tickets += sum(len(o["baskets"]) for o in data)
        pages.append(json.dumps({"data": data, "paging": {"perPage": PAGE, "currentPage": 1,
                                                          "total": len(plans)}}).encode())
    return pages, tickets, len(plans)


def batches(pages: list[bytes], size: int) -> list[list[bytes]]:
    return [pages[start:start + size] for start in range(0, len(pages), size)]


def pipeline(client, pages: list[bytes], batch_pages: int) -> None:
    """The orders asset's path: records parsed into models, chunked into staging rows with the collector
    paused (`order_chunks`, the asset's chunk size), written as the IO manager writes (`insert_chunks`:
    stamped, Arrow, batched). `batch_pages` is the floor's."""
    orders = (parse(Order, row, source="page") for page in pages for row in orjson.loads(page)["data"])
    insert_chunks(client, TABLE, (rows for rows, _ in order_chunks(orders)), new_version())


def floor(client, pages: list[bytes], batch_pages: int) -> None:
    for chunk in batches(pages, batch_pages):
        baskets = [
            {"order_id": o["id"], "id": b["id"], "show_id": b["show_id"], "price": b["price"],
             "created_at": b["created_at"], "updated_at": b["updated_at"], "seat_id": b["seat_id"]}
            for page in chunk for o in orjson.loads(page)["data"] for b in o["baskets"]
        ]
        client.insert_arrow("floor_baskets", pa.Table.from_pylist(baskets), settings=INSERT_SETTINGS)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch-pages", type=int, default=50, 
                        help="the floor's pages (of 100 orders) per insert")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.orders, args.repeat = 500, 1
    pages, tickets, orders = pages_of(args.orders, per_day=2_000)
    megabytes = sum(map(len, pages)) / 1e6
    with tempfile.TemporaryDirectory() as tmp, open_client(f"chdb://{Path(tmp) / 'ch'}") as client:
        migrate(client, "bench")
        client.command(FLOOR_DDL)
        ours, floors, loads = [], [], [load()]
        for _ in range(args.repeat):
            for runner, out in ((pipeline, ours), (floor, floors)):
                started = time.perf_counter()
                runner(client, pages, args.batch_pages)
                out.append(time.perf_counter() - started)
            loads.append(load())
    ours_s, floor_s = statistics.median(ours), statistics.median(floors)
    ratio = statistics.median(o / f for o, f in zip(ours, floors, strict=True))
    return {
        "orders": orders, "tickets": tickets, "pages": len(pages), "payload_mb": round(megabytes, 1),
        "pipeline_tickets_per_s": round(tickets / ours_s), "floor_tickets_per_s": round(tickets / floor_s),
        "pipeline_over_floor": round(ratio, 2), "repeat": args.repeat, "batch_pages": args.batch_pages,
        "loadavg": loads,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
