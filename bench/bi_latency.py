"""BI latency: v_sales_latest and v_sales_14d over N tickets (default 10M) in chDB.

Staging is filled in-engine (INSERT ... SELECT FROM numbers()), then the real fact asset is materialized
over the whole date range in one run, then each view is queried --repeat times; medians reported.

    .venv/bin/python bench/bi_latency.py --tickets 10000000
    .venv/bin/python bench/bi_latency.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from common import load

warnings.filterwarnings("ignore")

# ~2.2 tickets per order, 400 days of sales, 300 shows of 100 events; 80% paid, 3% refunded.
FILL = """
INSERT INTO stg_qtickets_api_orders_raw
    (order_id, basket_id, event_id, show_id, order_created_at, order_updated_at, payed, payed_at,
     quantity, price, original_price, refunded_at, refunded_amount, _loaded_at, _ver, _dedup_key)
SELECT
    intDiv(number, 2) + 1 AS order_id,
    number + 1 AS basket_id,
    24000 + intDiv(order_id % 300, 3) AS event_id,
    300000 + order_id % 300 AS show_id,
    toDateTime64({start:DateTime}, 3, 'Europe/Moscow')
        + toIntervalSecond(intDiv(order_id * {days:UInt32} * 86400, {orders:UInt64})) AS created,
    created AS order_updated_at,
    order_id % 5 != 0 AS payed,
    if(payed, created + toIntervalMinute(order_id % 30), NULL) AS payed_at,
    1, toDecimal64(500 + (order_id % 7) * 250, 2) AS price, price,
    if(payed AND number % 33 = 0, payed_at + toIntervalDay(3), NULL), if(payed AND number % 33 = 0, price, 0),
    now64(3), 1, cityHash64(order_id, basket_id)
FROM numbers({tickets:UInt64})
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.tickets, args.days, args.repeat = 20_000, 20, 2
    end = date.today() + timedelta(days=1)
    start = end - timedelta(days=args.days + 1)
    # Read at the first import of qtickets_assets: the daily partitions must cover the filled days.
    os.environ.setdefault("QTICKETS_PARTITIONS_START", start.isoformat())
    from qtickets_assets.assets import marts
    from qtickets_assets.warehouse.resource import ClickHouseResource

    loads = [load()]
    with tempfile.TemporaryDirectory() as tmp:
        clickhouse = ClickHouseResource(dsn=f"chdb://{Path(tmp) / 'ch'}")
        with clickhouse.get_client() as client:
            began = time.perf_counter()
            client.command(FILL, parameters={"start": start.isoformat() + " 00:00:00", "days": args.days,
                                             "orders": args.tickets // 2, "tickets": args.tickets},
                           settings={"async_insert": 0})
            fill_s = time.perf_counter() - began
        began = time.perf_counter()
        result = dg.materialize(
            [marts.fact_qtickets_sales_daily], resources={"clickhouse": clickhouse},
            tags={"dagster/asset_partition_range_start": start.isoformat(),
                  "dagster/asset_partition_range_end": (end - timedelta(days=1)).isoformat()},
        )
        assert result.success
        facts_s = time.perf_counter() - began
        timings = {}
        with clickhouse.get_client() as client:
            for view in ("v_sales_latest", "v_sales_14d"):
                samples = []
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    rows = client.query(f"SELECT * FROM {view}").result_rows
                    samples.append(time.perf_counter() - began)
                timings[view] = {"median_ms": round(statistics.median(samples) * 1000, 1), "rows": len(rows)}
            fact_rows = client.query("SELECT count() FROM fact_qtickets_sales_daily FINAL").result_rows[0][0]
    return {"tickets": args.tickets, "fact_rows": fact_rows, "fill_s": round(fill_s, 1),
            "facts_s": round(facts_s, 1), **timings, "repeat": args.repeat, "loadavg": loads + [load()]}


if __name__ == "__main__":
    print(json.dumps(main()))
