"""Asset checks on chDB: they pass on good data, fail on each kind of bad data with a description naming
the offending keys, and block nothing (the BI views are SQL over the facts: skipping them hides nothing)."""

from datetime import timedelta

import dagster as dg
import pytest

from qtickets_assets.assets import checks, marts, raw, views
from qtickets_assets.qtickets.resource import QTicketsResource
from qtickets_assets.transform import event_rows, inventory_rows
from qtickets_assets.warehouse import schema
from qtickets_assets.warehouse.io_manager import KEY
from qtickets_assets.warehouse.resource import ClickHouseResource
from tests.builders import (
    AS_OF,
    EVENTS,
    INVENTORY,
    OPENED_ON,
    SNAPSHOT,
    Source,
    at,
    basket,
    event,
    order,
    rows_asset,
    seat,
)

D = SNAPSHOT.date()
CHECKS = dg.load_asset_checks_from_modules([checks])
FACT_INSERT = (
    "INSERT INTO fact_qtickets_sales_daily (sales_date, event_id, show_id, tickets_sold, revenue, "
    "orders_count, refunded_tickets, refunds_amount, _loaded_at, _ver, _dedup_key) "
)


@pytest.fixture
def clickhouse(tmp_path) -> ClickHouseResource:
    """The checks' own findings: without the fact-days repair that runs before agrees_with_staging fails
    (tests/assets/test_repair_staging.py), which would rebuild the tampered days."""
    return ClickHouseResource(dsn=f"chdb://{tmp_path / 'clickhouse'}", lock_timeout_s=5, repair_max_days=0)


@pytest.fixture
def qtickets() -> QTicketsResource:
    """Likewise without the events re-read of covers_ordered_shows (tests/assets/test_repair_events.py)."""
    return QTicketsResource(sandbox_opened_on=OPENED_ON, sandbox_as_of=AS_OF.isoformat(), repair_max_events=0)


def graph(capacity: int) -> list:
    """Orders selling 3 tickets of show 11; its inventory holds `capacity` seats."""
    source = Source(
        order(
            1, 1, at(D, 9), [basket(1, 11, 1500), basket(2, 11, 1500), basket(3, 11, 900)], payed=at(D, 9, 5)
        )
    )
    seats = [seat(f"full_A-1;{n}", f"A-1;{n}", 1, 0, int(n <= 3)) for n in range(1, capacity + 1)]
    return [
        source.asset(),
        rows_asset("stg_qtickets_api_events_raw", event_rows([event(1, "Щелкунчик", [11])]), EVENTS),
        rows_asset("stg_qtickets_api_inventory_raw", inventory_rows([(1, 11, seats)], SNAPSHOT), INVENTORY),
        marts.fact_qtickets_sales_daily,
        marts.dim_events,
        marts.fact_qtickets_inventory_latest,
        *dg.load_assets_from_modules([views]),
        *CHECKS,
    ]


def run(resources, assets, selection=None, partitioned=True) -> dg.ExecuteInProcessResult:
    # The partition goes as a run tag: a checks-only selection has no asset to take a partitions_def from.
    return dg.materialize(
        assets,
        resources=resources,
        selection=selection,
        raise_on_error=False,
        tags={"dagster/partition": D.isoformat()} if partitioned else None,
    )


def evaluations(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def execute(clickhouse, sql: str, **parameters) -> None:
    with clickhouse.get_client() as client:
        client.command(sql, parameters=parameters, settings={"async_insert": 0})


def test_checks_pass_on_good_data(resources):
    result = run(resources, graph(capacity=5))
    assert result.success
    found = evaluations(result)
    assert len(found) == sum(len(d.check_keys) for d in CHECKS) and all(e.passed for e in found.values())
    assert result.asset_materializations_for_node("v_sales_latest")


def test_sold_over_capacity_fails_its_check_naming_the_show_and_blocks_nothing(resources):
    result = run(resources, graph(capacity=2))  # 3 tickets sold of a 2-seat show
    found = evaluations(result)
    failed = found[("fact_qtickets_inventory_latest", "sold_within_capacity")]
    assert not failed.passed and failed.metadata["offending_rows"].value == 1
    assert failed.description.startswith("1 shows over capacity (show_id, capacity, free_seats, sold_seats, "
                                         "fact tickets_sold), e.g. (11, 2, ")
    assert "still so after the repair: " in failed.description
    assert all(e.passed for key, e in found.items() if key[1] != "sold_within_capacity")
    # The view reads the facts live: its refresh changes nothing a dashboard sees, so nothing is skipped.
    assert result.success and result.asset_materializations_for_node("v_sales_latest")


def only_check(asset: str, name: str) -> dict:
    """Run one check alone (a partitioned check needs the partition, the others must not get one)."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), name)
    return {"selection": dg.AssetSelection.checks(key), "partitioned": name == "agrees_with_staging"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tamper", "check"),
    [
        # A fact row that staging does not back (e.g. a stale write): the fact disagrees with staging.
        (
            FACT_INSERT + "SELECT sales_date, event_id, show_id, tickets_sold + 1, revenue, orders_count, "
            "refunded_tickets, refunds_amount, now64(3), _ver + 1, _dedup_key "
            "FROM fact_qtickets_sales_daily FINAL",
            ("fact_qtickets_sales_daily", "agrees_with_staging"),
        ),
        (
            FACT_INSERT + "SELECT sales_date, event_id, 99, 1, -100, 1, 0, 0, now64(3), _ver + 1, 0 "
            "FROM fact_qtickets_sales_daily",
            ("fact_qtickets_sales_daily", "counts_non_negative"),
        ),
        # A fact row whose tickets staging no longer has (e.g. a write that failed half-way).
        (
            "INSERT INTO fact_qtickets_sales_daily SELECT * REPLACE (_ver + 1 AS _ver, 1 AS _deleted) "
            "FROM fact_qtickets_sales_daily FINAL",
            ("fact_qtickets_sales_daily", "agrees_with_staging"),
        ),
        # The same show under two events: the inventory grain (show_id) is broken.
        (
            "INSERT INTO fact_qtickets_inventory_latest (event_id, show_id, capacity, free_seats, "
            "sold_seats, snapshot_at, _loaded_at, _ver, _dedup_key) SELECT event_id + 1, show_id, capacity, "
            "free_seats, sold_seats, snapshot_at, now64(3), _ver + 1, 0 "
            "FROM fact_qtickets_inventory_latest FINAL",
            ("fact_qtickets_inventory_latest", "one_row_per_show"),
        ),
        # A ticket of a show that the events snapshot did not bring (dim_events has no row for it).
        (
            "INSERT INTO stg_qtickets_api_orders_raw (order_id, basket_id, event_id, show_id, _ver, "
            "_dedup_key) VALUES (777, 1, 1, 12, 1, 0)",
            ("dim_events", "covers_ordered_shows"),
        ),
        ("CREATE OR REPLACE VIEW v_sales_14d AS SELECT 1 AS event_id", ("v_sales_14d", "queryable")),
        # Revenue as a float: dashboards would sum rounding errors.
        (
            "CREATE OR REPLACE VIEW v_sales_14d AS SELECT sales_date, event_id, tickets_sold, "
            "toFloat64(revenue) AS revenue FROM fact_qtickets_sales_daily",
            ("v_sales_14d", "queryable"),
        ),
    ],
)
def test_each_check_catches_its_kind_of_bad_data(resources, clickhouse, tamper, check):
    assets = graph(capacity=5)
    assert run(resources, assets).success
    execute(clickhouse, tamper)
    result = run(resources, assets, **only_check(*check))
    found = evaluations(result)
    assert check in found and not found[check].passed and found[check].description  # the alert's text
    metadata = found[check].metadata
    assert metadata["offending_rows"].value >= 1 if "offending_rows" in metadata else "error" in metadata
    assert not result.get_asset_materialization_events()  # only checks ran


@pytest.mark.slow
def test_agreement_names_the_problem_of_each_key(resources, clickhouse):
    assets = graph(capacity=5)
    assert run(resources, assets).success
    # One more ticket in the fact than staging backs, and a fact row for a show staging never sold.
    execute(clickhouse, FACT_INSERT + "SELECT sales_date, event_id, show_id, tickets_sold + 1, revenue, "
            "orders_count, refunded_tickets, refunds_amount, now64(3), _ver + 1, _dedup_key "
            "FROM fact_qtickets_sales_daily FINAL")
    execute(clickhouse, FACT_INSERT + "VALUES ({day:Date}, 1, 12, 1, 100, 1, 0, 0, now64(3), 1, 1)", day=D)
    result = run(resources, assets, **only_check("fact_qtickets_sales_daily", "agrees_with_staging"))
    found = evaluations(result)[("fact_qtickets_sales_daily", "agrees_with_staging")]
    sample = sorted(found.metadata["sample"].value)
    assert not found.passed and found.metadata["offending_rows"].value == 2
    assert [(row[2], row[3]) for row in sample] == [("11", "different"), ("12", "not in staging")]
    assert sample[0][4:6] == ["4", "3"]  # tickets_sold: fact, staging


def test_checks_that_cannot_fail_are_not_written():
    """Every staging table's sorting key is its business key (the marts' keys are their sorting keys by
    construction, writes.rebuild), so after FINAL a key cannot repeat: no keys_unique check is needed."""
    for asset in (raw.stg_qtickets_api_orders_raw, raw.stg_qtickets_api_events_raw,
                  raw.stg_qtickets_api_inventory_raw):
        name = asset.key.path[-1]
        assert schema.table(name).order_by == asset.specs_by_key[asset.key].metadata[KEY], name
    assert not [c for d in CHECKS for c in d.check_keys if c.name == "keys_unique"]


@pytest.mark.slow
def test_agreement_is_checked_for_the_run_s_days_only(resources, clickhouse):
    assets = graph(capacity=5)
    assert run(resources, assets).success
    # Another day's fact row goes stale; today's partition still agrees with staging.
    execute(
        clickhouse,
        "INSERT INTO fact_qtickets_sales_daily (sales_date, event_id, show_id, tickets_sold, "
        "revenue, orders_count, refunded_tickets, refunds_amount, _loaded_at, _ver, _dedup_key) "
        "VALUES ({day:Date}, 1, 11, 5, 500, 1, 0, 0, now64(3), 1, 0)",
        day=D - timedelta(days=3),
    )
    result = run(resources, assets, **only_check("fact_qtickets_sales_daily", "agrees_with_staging"))
    assert evaluations(result)[("fact_qtickets_sales_daily", "agrees_with_staging")].passed


@pytest.mark.slow
def test_every_view_check_fails_on_a_view_that_lost_its_contract(resources, clickhouse):
    assets = graph(capacity=5)
    assert run(resources, assets).success
    names = list(views.CONTRACT)
    for name in names:
        execute(clickhouse, f"CREATE OR REPLACE VIEW {name} AS SELECT 1 AS event_id")
    keys = [dg.AssetCheckKey(dg.AssetKey(name), "queryable") for name in names]
    found = evaluations(run(resources, assets, selection=dg.AssetSelection.checks(*keys), partitioned=False))
    assert {asset for asset, _ in found} == set(names)
    assert not [key for key, e in found.items() if e.passed]
