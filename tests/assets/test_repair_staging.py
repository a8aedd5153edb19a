"""The fact-days repair of `agrees_with_staging` (assets/repair_days.py) on chDB: order staging changed
after the fact was built (a write the fact's rebuild did not follow), so the fact's days differ; the check
rebuilds exactly those days from staging, reports each as a materialization of its partition and passes.
A day the fact was never built over is not rebuilt and still fails, named; a cap of 0 fails as before."""

from datetime import timedelta

import dagster as dg

from qtickets_assets.assets import checks, marts
from qtickets_assets.runs import record_run
from qtickets_assets.warehouse.io_manager import ClickHouseIOManager
from qtickets_assets.warehouse.resource import ClickHouseResource
from tests.builders import D, Source, at, basket, fact, materialize, order, physical_rows, recorded_run

CHECK = dg.AssetCheckKey(marts.SALES_KEY, "agrees_with_staging")
BEFORE = D - timedelta(days=1)
OLD = D - timedelta(days=20)


def stale_fact(resources) -> Source:
    """The fact of BEFORE..D is built; then an order of D has a ticket refunded and only staging is
    rewritten: the fact of D still counts 2 tickets where staging has 1."""
    tickets = [basket(11, 11, 1500), basket(12, 11, 1500)]
    source = Source(order(1, 1, at(D, 9), tickets, payed=at(D, 9, 5)),
                    order(2, 1, at(BEFORE, 9), [basket(21, 12, 900)], payed=at(BEFORE, 9, 5)))
    materialize(resources, source, BEFORE, D)
    source.put(order(1, 1, at(D, 9), [tickets[0], basket(12, 11, 1500, refunded_at=at(D, 10),
                                                          refunded_amount=1500)], payed=at(D, 9, 5)))
    assert dg.materialize([source.asset()], resources=resources, partition_key=D.isoformat()).success
    assert fact(resources["clickhouse"], D)[(D, 1, 11)][0] == 2
    return source


def check(resources, source: Source, tags: dict | None) -> tuple[dg.ExecuteInProcessResult,
                                                                 dg.AssetCheckEvaluation]:
    """The check alone, over the run's days given by `tags` (every day without them); the run is
    recorded in meta_job_runs."""
    with dg.instance_for_test() as instance:
        result = dg.materialize([source.asset(), marts.fact_qtickets_sales_daily, checks.agrees_with_staging],
                                resources=resources, selection=dg.AssetSelection.checks(CHECK),
                                tags=tags, raise_on_error=False, instance=instance)
        record_run(resources["clickhouse"], instance, result.run_id, finished=True)
    [evaluation] = result.get_asset_check_evaluations()
    return result, evaluation


def days_of(first, last) -> dict:
    return {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat()}


def rebuilt_partitions(result) -> dict[str, dict]:
    return {e.partition: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events() if e.asset_key == marts.SALES_KEY}


def with_cap(clickhouse: ClickHouseResource, cap: int) -> dict:
    capped = ClickHouseResource(dsn=clickhouse.dsn, lock_timeout_s=5, repair_max_days=cap)
    return {"clickhouse": capped, "clickhouse_io": ClickHouseIOManager(clickhouse=capped)}


def test_a_fact_day_that_differs_from_staging_is_rebuilt_before_the_check_fails(resources, clickhouse):
    source = stale_fact(resources)
    truth = fact(clickhouse)
    truth[(D, 1, 11)] = (1, 1500, 1, 1, 1500)  # one ticket sold, one refunded
    result, evaluation = check(resources, source, days_of(BEFORE, D))

    assert result.success and evaluation.passed
    assert evaluation.metadata["repair/keys"].value == [f"day:{D}"]  # exactly the differing day
    assert evaluation.metadata["repair/reread"].value == 0  # from staging: no API request
    assert evaluation.metadata["repair/capped"].value is False
    assert fact(clickhouse) == truth
    assert recorded_run(clickhouse, result.run_id) == ("ok", [f"day:{D}"], 0, 0)
    # The rebuilt day is reported as a materialization of its partition with its own counts.
    assert rebuilt_partitions(result) == {D.isoformat(): {"dagster/row_count": 1, "tickets_sold": 1,
                                                          "revenue": 1500.0}}

    # Idempotent: nothing differs any more, nothing is rebuilt or written again.
    rows = physical_rows(clickhouse, "fact_qtickets_sales_daily")
    result, evaluation = check(resources, source, days_of(BEFORE, D))
    assert evaluation.passed and evaluation.metadata["repair/keys"].value == []
    assert not rebuilt_partitions(result)
    assert physical_rows(clickhouse, "fact_qtickets_sales_daily") == rows and fact(clickhouse) == truth


def test_without_the_repair_the_same_day_fails_the_check_naming_it(resources, clickhouse):
    source = stale_fact(resources)
    result, evaluation = check({**resources, **with_cap(clickhouse, 0)}, source, days_of(BEFORE, D))

    assert result.success and not evaluation.passed  # no check blocks: its alert says it
    [row] = evaluation.metadata["sample"].value
    assert row[:4] == [D.isoformat(), "1", "11", "different"] and row[4:6] == ["2", "1"]
    assert evaluation.metadata["repair/keys"].value == [] and evaluation.metadata["repair/capped"].value
    assert "QTICKETS_REPAIR_MAX_DAYS=0" in evaluation.description
    # The cap stopped the repair: the numbers are wrong, so the run's record is `failed`.
    assert recorded_run(clickhouse, result.run_id) == ("failed", [], 0, 1)
    assert fact(clickhouse, D)[(D, 1, 11)][0] == 2  # untouched


def test_a_day_the_fact_was_never_built_over_still_fails_naming_it(resources, clickhouse):
    source = stale_fact(resources)
    # Staging gets a sale paid on OLD, a day no run of the fact has covered: staging may hold only part of
    # its sales (e.g. orders re-read by id), so rebuilding it would publish a partial day.
    source.put(order(3, 2, at(OLD, 9), [basket(31, 21, 700)], payed=at(OLD, 9, 5)))
    assert dg.materialize([source.asset()], resources=resources, partition_key=OLD.isoformat()).success
    result, evaluation = check(resources, source, None)  # the check alone: every day

    assert result.success and not evaluation.passed
    assert evaluation.metadata["repair/keys"].value == [f"day:{D}"]  # the fixable day was rebuilt
    [row] = evaluation.metadata["sample"].value  # what still differs
    assert row[:4] == [OLD.isoformat(), "2", "21", "missing in fact"]
    assert "not rebuilt (outside the days the fact was built over" in evaluation.description
    assert OLD.isoformat() in evaluation.description
    assert set(rebuilt_partitions(result)) == {D.isoformat()}
    assert (OLD, 2, 21) not in fact(clickhouse) and fact(clickhouse, D)[(D, 1, 11)][0] == 1
