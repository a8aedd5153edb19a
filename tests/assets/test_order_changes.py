"""Orders rewritten outside a run's partitions (watermark read, webhook re-reads) on the real orders asset,
against a controllable API (respx) and chDB: what the write replaces, what it leaves alone, which sales
days the fact rebuilds and reports."""

from datetime import timedelta

import dagster as dg
import orjson

from qtickets_assets.assets import marts
from qtickets_assets.qtickets.models import Order, parse
from tests.builders import D, api_time, at, basket, fact, order, query, run


def staged(clickhouse, order_id):
    return query(clickhouse, "SELECT basket_id, payed_at, order_deleted_at FROM stg_qtickets_api_orders_raw "
                 "FINAL WHERE order_id = {id:UInt64} ORDER BY basket_id", id=order_id)


def fact_days(result) -> dict[str, int]:
    """Fact partitions the run reported, with their row counts."""
    return {e.partition: e.materialization.metadata["dagster/row_count"].value
            for e in result.get_asset_materialization_events()
            if e.asset_key == marts.fact_qtickets_sales_daily.key}


OLD = D - timedelta(days=5)


def updated(record: Order, moment) -> Order:
    """The order as the API shows it after a change at `moment` (order.updated_at moves)."""
    return parse(Order, {**record.raw, "updated_at": api_time(moment)})


def test_an_old_order_changed_since_the_watermark_is_replaced_in_full(api, clickhouse, hooks):
    moved = order(1, 101, at(OLD), [basket(11, 7, 1000), basket(12, 7, 1500)], payed=at(OLD, 12, 10))
    kept = order(2, 101, at(OLD, 13), [basket(21, 7, 900)], payed=at(OLD, 13, 5))
    today = order(3, 101, at(D, 9), [basket(31, 7, 700)], payed=at(D, 9, 5))
    api.put(moved, kept, today)
    run(clickhouse, hooks, OLD, D)
    assert fact(clickhouse, OLD)[(OLD, 101, 7)][:2] == (3, 3400)

    # Order 1: one ticket removed, the payment re-dated to the next day, and a later updated_at.
    api.put(updated(order(1, 101, at(OLD), [basket(11, 7, 1000)], payed=at(OLD + timedelta(days=1), 10)),
                    at(D, 10)))
    result = run(clickhouse, hooks, D)

    assert staged(clickhouse, 1) == [(11, at(OLD + timedelta(days=1), 10), None)]  # basket 12 tombstoned
    assert staged(clickhouse, 2) == [(21, at(OLD, 13, 5), None)]  # outside the window, untouched
    # Both payment days rebuilt in this run (the old one read from staging before the rewrite) ...
    assert fact(clickhouse, OLD)[(OLD, 101, 7)][:2] == (1, 900)
    assert fact(clickhouse, OLD + timedelta(days=1))[(OLD + timedelta(days=1), 101, 7)][:2] == (1, 1000)
    # ... and reported as materializations of their partitions, each with its own row count.
    next_day = (OLD + timedelta(days=1)).isoformat()
    assert fact_days(result) == {D.isoformat(): 1, OLD.isoformat(): 1, next_day: 1}
    assert not query(clickhouse, "SELECT * FROM meta_sales_days_to_rebuild FINAL")  # applied, unmarked


def test_the_watermark_read_asks_only_for_changes_since_the_newest_landed_one(api, clickhouse, hooks):
    api.put(order(1, 101, at(OLD), [basket(11, 7, 1000)], payed=at(OLD, 12, 10)),
            order(2, 101, at(D, 9), [basket(21, 7, 700)], payed=at(D, 9, 30)))
    run(clickhouse, hooks, OLD, D)
    api.requests.clear()
    run(clickhouse, hooks, D)
    asked = [orjson.loads(r.content)["where"] for r in api.requests if r.url.path.endswith("/orders")]
    changed = [w for w in asked if w and w[0]["column"] == "updated_at"]
    # The newest landed updated_at is order 2's payment (D 09:30); the overlap is 10 minutes (Moscow wall).
    assert changed == [[{"column": "updated_at", "operator": ">=", "value": f"{D} 09:20:00"}]]


def test_a_cancellation_outside_the_window_leaves_the_window_alone(api, clickhouse, hooks):
    old = order(1, 101, at(OLD), [basket(11, 7, 1000)], payed=at(OLD, 12, 10))
    api.put(old, order(2, 101, at(D, 9), [basket(21, 7, 700)], payed=at(D, 9, 30)))
    run(clickhouse, hooks, OLD, D)
    api.put(order(1, 101, at(OLD), [basket(11, 7, 1000)], payed=at(OLD, 12, 10), deleted=at(D, 10)))
    run(clickhouse, hooks, D)
    assert staged(clickhouse, 1) == [(11, at(OLD, 12, 10), at(D, 10))]
    assert fact(clickhouse, OLD)[(OLD, 101, 7)][:2] == (0, 0)
    assert fact(clickhouse, D)[(D, 101, 7)][:2] == (1, 700)


def test_hooked_ids_are_re_read_and_a_404_removes_the_order(api, clickhouse, hooks):
    refunded = order(1, 101, at(OLD), [basket(11, 7, 1000)], payed=at(OLD, 12, 10))
    vanished = order(2, 101, at(OLD, 13), [basket(21, 7, 900)], payed=at(OLD, 13, 5))
    api.put(refunded, vanished, order(3, 101, at(D, 9), [basket(31, 7, 700)], payed=at(D, 9, 30)))
    run(clickhouse, hooks, OLD, D)

    # A refund does not move updated_at: only the hook tells. Order 2 is gone from the API (404).
    api.put(order(1, 101, at(OLD), [basket(11, 7, 1000, refunded_at=at(D, 11), refunded_amount=1000)],
                  payed=at(OLD, 12, 10)))
    del api.records[2]
    hooks.add(1, "refunded")
    hooks.add(2, "deleted")
    with dg.instance_for_test() as instance:
        result = run(clickhouse, hooks, D, instance=instance)
    assert staged(clickhouse, 2) == []
    assert fact(clickhouse, OLD)[(OLD, 101, 7)] == (0, 0, 0, 1, 1000)
    assert OLD.isoformat() in fact_days(result)
    assert hooks.depth()[0] == 0  # cleared at the end of the successful run


def test_server_mode_clears_hooks_from_the_sensor_after_a_successful_run(api, clickhouse, hooks, monkeypatch):
    from qtickets_assets.settings import get_settings
    from qtickets_assets.webhooks.drain import webhook_hooks_applied

    api.put(order(1, 101, at(OLD), [basket(11, 7, 1000)], payed=at(OLD, 12, 10)))
    hooks.add(1, "refunded")
    monkeypatch.setenv("QTICKETS_WEBHOOK_STORE", str(hooks.path))
    get_settings.cache_clear()
    try:
        with dg.instance_for_test() as instance:
            result = run(clickhouse, hooks, D, instance=instance, one_process=False)
            hooks.add(1, "checked")  # arrived while the run went: not applied by it
            assert hooks.depth()[0] == 2  # steps in other processes: nobody saw the run's end
            success = next(r.event_log_entry.dagster_event for r in instance.get_records_for_run(
                result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records)
            webhook_hooks_applied(dg.build_run_status_sensor_context(
                sensor_name="webhook_hooks_applied", dagster_event=success, dagster_instance=instance,
                dagster_run=instance.get_run_by_id(result.run_id)))
    finally:
        get_settings.cache_clear()
    assert hooks.pending().order_ids == [1] and hooks.depth()[0] == 1  # only the later hook is left
