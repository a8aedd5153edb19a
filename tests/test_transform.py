"""API models -> staging rows: the raw JSON columns cost their size in memory, not orjson's buffer."""

import tracemalloc

from qtickets_assets.transform import order_rows
from tests.builders import D, at, basket, order


def test_raw_json_values_cost_about_their_size():
    orders = [order(1000 + i, 24001, at(D, 10, i % 60), [basket(10_000 + i, 300001, 900)], payed=at(D, 11))
              for i in range(200)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rows = order_rows(orders)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    raw = sum(len(value) for name in ("order_json", "basket_json") for value in rows.columns[name])
    # Every other column together is a few hundred bytes a row; orjson's results alone held ~8 KB each.
    assert len(rows) == 200
    assert grown < 2 * raw + 200 * 1_000
