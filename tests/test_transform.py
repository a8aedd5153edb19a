"""API models -> staging rows: the raw JSON columns cost their size in memory, not orjson's buffer."""

import tracemalloc
from decimal import Decimal

import orjson

from qtickets_assets.qtickets.models import Order, parse
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


def test_one_row_per_basket_with_its_order_and_an_order_without_baskets_keeps_one_row():
    two = order(1001, 24001, at(D, 10), [basket(11, 300001, 900), basket(12, 300002, 1200)], payed=at(D, 11))
    none = order(1002, 24001, at(D, 12), [])
    rows = order_rows([two, none]).columns
    assert rows["order_id"] == [1001, 1001, 1002]
    assert rows["basket_id"] == [11, 12, 0]
    assert rows["show_id"] == [300001, 300002, 0]
    assert rows["price"] == [Decimal(900), Decimal(1200), Decimal(0)]
    assert rows["payed"] == [1, 1, 0]
    assert rows["payed_at"] == [at(D, 11), at(D, 11), None]
    assert rows["seat_id"] == ["PARTERRE-1;12", "PARTERRE-1;13", ""]
    assert rows["multiprice_code"] == ["", "", ""]
    assert rows["utm_source"] == ["", "", ""]
    assert [orjson.loads(value) for value in rows["basket_json"]] == [*two.raw["baskets"], {}]
    order_json = [orjson.loads(value) for value in rows["order_json"]]
    assert order_json[0] == order_json[1] == {k: v for k, v in two.raw.items() if k != "baskets"}
    assert "baskets" not in order_json[2] and order_json[2]["id"] == 1002
    assert all(len(values) == 3 for values in rows.values())


def test_utm_values_are_text():
    record = order(1001, 24001, at(D, 10), [basket(11, 300001, 900)]).raw
    parsed = parse(Order, {**record, "utm": {"utm_source": "vk", "utm_medium": None, "utm_campaign": 7}})
    rows = order_rows([parsed]).columns
    assert (rows["utm_source"], rows["utm_medium"], rows["utm_campaign"]) == (["vk"], [""], ["7"])


def test_no_orders_give_every_column_empty():
    rows = order_rows([])
    assert len(rows) == 0 and "order_json" in rows.columns and "basket_json" in rows.columns
