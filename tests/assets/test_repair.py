"""The capacity repair (assets/repair.py) on chDB against a controllable API (respx): a refund of an older
order that no read saw (no webhook, `updated_at` unchanged, no reconcile), its seat sold again, is re-read
by the inventory asset and the check passes; counters that stay below the sold count still fail it."""

from datetime import timedelta

import dagster as dg
import orjson

from qtickets_assets.assets import checks, marts
from qtickets_assets.qtickets.resource import QTicketsResource
from qtickets_assets.runs import failed_checks, record_run
from qtickets_assets.transform import inventory_rows
from qtickets_assets.warehouse.io_manager import ClickHouseIOManager
from qtickets_assets.webhooks.store import HookStore
from tests.builders import API, INVENTORY, SNAPSHOT, D, at, basket, fact, order, query, run, seat, write

OLD = D - timedelta(days=5)
SHOW = 7


def sold_again(api, clickhouse, tmp_path, capacity: int):
    """Order 1 (2 tickets of the show, paid on OLD) lands; one ticket is refunded without a hook and its
    seat sold again today: the fact counts 3 tickets of a show whose counters say `capacity`."""
    hooks = HookStore(tmp_path / "hooks.sqlite3")
    tickets = [basket(11, SHOW, 1000), basket(12, SHOW, 1000)]
    day_before = D - timedelta(days=1)
    api.put(order(1, 101, at(OLD), tickets, payed=at(OLD, 12, 10)),
            order(2, 101, at(day_before), [basket(21, 8, 500)], payed=at(day_before, 9)))
    run(clickhouse, hooks, OLD, day_before)  # order 2 moves the watermark past order 1
    refunded = basket(12, SHOW, 1000, refunded_at=at(D, 8), refunded_amount=1000)
    api.put(order(1, 101, at(OLD), [tickets[0], refunded], payed=at(OLD, 12, 10)),  # updated_at unchanged
            order(3, 101, at(D, 9), [basket(31, SHOW, 1000)], payed=at(D, 9, 5)))
    run(clickhouse, hooks, D)
    assert fact(clickhouse, OLD)[(OLD, 101, SHOW)][0] == 2  # the refund is not seen by the tick
    seats = [seat(f"full_A-1;{n}", f"A-1;{n}", 1, 0, 1) for n in range(1, capacity + 1)]
    write({"clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse)}, "stg_qtickets_api_inventory_raw",
          inventory_rows([(101, SHOW, seats)], SNAPSHOT), INVENTORY)


def inventory(clickhouse, instance=None, **limits) -> dg.ExecuteInProcessResult:
    qtickets = QTicketsResource(base_url=API, token="t", per_page=100, **limits)
    return dg.materialize(
        [marts.fact_qtickets_inventory_latest, checks.sold_within_capacity], instance=instance,
        resources={"clickhouse": clickhouse, "qtickets": qtickets}, raise_on_error=False)


def id_reads(api) -> list[list[int]]:
    """The `where id in` lists of the order reads the API got."""
    reads = [orjson.loads(r.content or b"{}").get("where") or [] for r in api.requests]
    return [c["value"] for w in reads for c in w if c["column"] == "id"]


def test_a_resold_seat_of_a_stale_older_order_is_repaired_in_the_same_run(api, clickhouse, tmp_path):
    sold_again(api, clickhouse, tmp_path, capacity=2)
    api.requests.clear()
    with dg.instance_for_test() as instance:
        result = inventory(clickhouse, instance)
        # The repaired keys reach meta_job_runs (the shape every repair kind shares: "kind:key").
        record_run(clickhouse, instance, result.run_id, finished=True)

    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["repair/keys"].value == [f"show:{SHOW}"]
    [metadata] = [e.materialization.metadata for e in result.get_asset_materialization_events()
                  if e.asset_key == marts.fact_qtickets_inventory_latest.key]
    assert metadata["repair/reread"].value == 2 and metadata["repair/capped"].value is False
    assert query(clickhouse, "SELECT status, repaired, repair_reread, repair_capped FROM meta_job_runs") == [
        ("ok", [f"show:{SHOW}"], 2, 0)]
    assert id_reads(api) == [[1, 3]]  # one extra request: ceil(2 orders / 100 per page)
    # The fact equals the API's truth: 1 ticket on OLD (one refunded), 1 today.
    assert fact(clickhouse, OLD)[(OLD, 101, SHOW)][:4] == (1, 1000, 1, 1)
    assert fact(clickhouse, D)[(D, 101, SHOW)][:2] == (1, 1000)
    # The rebuilt days are reported as materializations of the fact's partitions.
    rebuilt = {e.partition for e in result.get_asset_materialization_events()
               if e.asset_key == marts.SALES_KEY}
    assert rebuilt == {OLD.isoformat(), D.isoformat()}


def test_counters_still_below_the_sold_count_after_the_re_read_fail_the_check(api, clickhouse, tmp_path):
    sold_again(api, clickhouse, tmp_path, capacity=1)  # 2 tickets sold even after the repair
    with dg.instance_for_test() as instance:
        result = inventory(clickhouse, instance, repair_max_orders=1)
        # The alert's text (check_failure_alerts) and meta_job_runs.failed_checks: the show, what was re-read.
        [alert] = failed_checks(instance, result.run_id)
        record_run(clickhouse, instance, result.run_id, finished=True)

    assert result.success  # the check blocks nothing: the views read the facts live anyway
    assert alert.startswith("fact_qtickets_inventory_latest:sold_within_capacity: 1 shows over capacity")
    assert f"e.g. ({SHOW}, 1, 0, 1, 2)" in alert  # still 2 tickets counted on 1 seat after the re-read
    assert f"re-read 1 paid orders of shows [{SHOW}]" in alert and "cap hit" in alert
    assert query(clickhouse,
                 "SELECT status, error, failed_checks, repaired, repair_capped FROM meta_job_runs") == [
        ("failed", "checks failed: fact_qtickets_inventory_latest:sold_within_capacity", [alert],
         [f"show:{SHOW}"], 1)]  # the numbers are wrong: the run's record is not `ok`
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.metadata["offending_rows"].value == 1
    assert check.metadata["sample"].value[0][0] == str(SHOW)  # names the show
    assert check.metadata["repair/keys"].value == [f"show:{SHOW}"]
    assert check.metadata["repair/reread"].value == 1 and check.metadata["repair/capped"].value
    assert fact(clickhouse, OLD)[(OLD, 101, SHOW)][0] == 1  # the repair within the cap still landed
