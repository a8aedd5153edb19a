"""The whole graph over 30 days of the sandbox account, in one run, against the sandbox's ground truth.

Every fact, dimension and inventory row must equal what the sandbox says it sold, listed and holds as of
the frozen clock; every asset check must pass; the BI views must agree with the facts.
"""

from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import pytest

from qtickets_assets.assets import checks, marts, raw, views
from qtickets_assets.qtickets.resource import QTicketsResource
from tests.builders import AS_OF, MSK, OPENED_ON

pytestmark = pytest.mark.slow  # each test builds a sandbox account or runs a benchmark

ASSETS = dg.load_assets_from_modules([raw, marts, views])
CHECKS = dg.load_asset_checks_from_modules([checks])
LAST = AS_OF.date() - timedelta(days=1)
FIRST = LAST - timedelta(days=29)


def run_range(resources, first: date, last: date, selection=None) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        resources=resources,
        selection=selection,
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )
    assert result.success
    return result


def query(clickhouse, sql: str, **parameters) -> list[tuple]:
    with clickhouse.get_client() as client:
        return client.query(sql, parameters=parameters).result_rows


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """One 30-day run shared by the tests of this module (it is the expensive part)."""
    from qtickets_assets.warehouse.io_manager import ClickHouseIOManager
    from qtickets_assets.warehouse.resource import ClickHouseResource

    clickhouse = ClickHouseResource(
        dsn=f"chdb://{tmp_path_factory.mktemp('wh') / 'clickhouse'}", lock_timeout_s=5
    )
    # Big pages: the sandbox renders the account per page request, and 30 days are ~3600 orders.
    qtickets = QTicketsResource(sandbox_opened_on=OPENED_ON, sandbox_as_of=AS_OF.isoformat(), per_page=1000)
    resources = {
        "clickhouse": clickhouse,
        "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
        "qtickets": qtickets,
    }
    result = run_range(resources, FIRST, LAST)
    return clickhouse, qtickets.sandbox(), result


def test_every_fact_row_equals_the_sandbox_truth(warehouse):
    clickhouse, sandbox, _ = warehouse
    rows = query(
        clickhouse,
        "SELECT sales_date, event_id, show_id, tickets_sold, revenue, orders_count, "
        "refunded_tickets, refunds_amount FROM fact_qtickets_sales_daily FINAL",
    )
    got = {tuple(r[:3]): tuple(r[3:]) for r in rows}
    want = {
        key: (v["tickets_sold"], v["revenue"], v["orders_count"], v["refunded_tickets"], v["refunds_amount"])
        for key, v in sandbox.expected_sales_daily(AS_OF).items()
        if FIRST <= key[0] <= LAST
    }
    assert len({k[0] for k in want}) == 30 and sum(v[0] for v in want.values()) > 3000
    assert sum(v[2] for v in want.values()) > 0 and sum(v[3] for v in want.values()) > 0  # refunds exist
    assert got == want


def test_every_dim_row_equals_the_sandbox_truth(warehouse):
    clickhouse, sandbox, _ = warehouse
    rows = query(
        clickhouse,
        "SELECT event_id, show_id, event_name, city, city_timezone, venue, show_start_at, "
        "show_finish_at, is_active, is_deleted FROM dim_events FINAL",
    )
    got = {(r[0], r[1]): (r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), bool(r[9])) for r in rows}
    want = {
        key: (
            v["event_name"],
            v["city"],
            v["city_timezone"],
            v["venue"],
            v["show_start_at"],
            v["show_finish_at"],
            bool(v["is_active"]),
            bool(v["is_deleted"]),
        )
        for key, v in sandbox.expected_dim_events(AS_OF).items()
    }
    assert any(v[7] for v in want.values()), "no soft-deleted event: the test would prove less"
    assert {v[2] for v in want.values()} >= {"Europe/Moscow", "Asia/Novosibirsk"}
    assert got == want


def test_every_inventory_row_equals_the_sandbox_truth(warehouse):
    clickhouse, sandbox, _ = warehouse
    rows = query(
        clickhouse,
        "SELECT show_id, event_id, capacity, free_seats, sold_seats "
        "FROM fact_qtickets_inventory_latest FINAL",
    )
    got = {r[0]: {"event_id": r[1], "capacity": r[2], "free_seats": r[3], "sold_seats": r[4]} for r in rows}
    want = sandbox.expected_inventory(AS_OF)
    assert len(want) > 5 and any(v["sold_seats"] for v in want.values())
    assert got == want


def test_soft_deleted_event_keeps_its_sales_history(warehouse):
    clickhouse, sandbox, _ = warehouse
    deleted = {e for (e, _), v in sandbox.expected_dim_events(AS_OF).items() if v["is_deleted"]}
    sold = query(
        clickhouse,
        "SELECT event_id, sum(tickets_sold) FROM fact_qtickets_sales_daily FINAL "
        "WHERE event_id IN {ids:Array(UInt64)} GROUP BY event_id",
        ids=sorted(deleted),
    )
    assert sold and all(tickets > 0 for _, tickets in sold)
    listed = query(
        clickhouse,
        "SELECT event_id, tickets_sold_total FROM v_sales_latest WHERE event_id IN {ids:Array(UInt64)}",
        ids=sorted(deleted),
    )
    assert sorted(listed) == sorted(sold)


def test_v_sales_latest_agrees_with_facts_and_inventory(warehouse):
    clickhouse, sandbox, _ = warehouse
    view = {
        r[0]: r[1:]
        for r in query(
            clickhouse,
            "SELECT event_id, event_name, tickets_sold_total, revenue_total, capacity, free_seats, "
            "sold_seats FROM v_sales_latest",
        )
    }
    names = {e: v["event_name"] for (e, _), v in sandbox.expected_dim_events(AS_OF).items()}
    totals: dict[int, list] = {}
    for (sales_date, event, _show), v in sandbox.expected_sales_daily(AS_OF).items():
        if FIRST <= sales_date <= LAST:
            row = totals.setdefault(event, [0, Decimal(0)])
            row[0] += v["tickets_sold"]
            row[1] += v["revenue"]
    inventory: dict[int, list] = {}
    for v in sandbox.expected_inventory(AS_OF).values():
        row = inventory.setdefault(v["event_id"], [0, 0, 0])
        row[0] += v["capacity"]
        row[1] += v["free_seats"]
        row[2] += v["sold_seats"]
    assert set(view) == set(totals) | set(inventory)
    for event, (name, tickets, revenue, capacity, free, sold) in view.items():
        assert name == names[event]
        assert (tickets, revenue) == tuple(totals.get(event, (0, Decimal(0))))
        assert (capacity, free, sold) == tuple(inventory.get(event, (0, 0, 0)))


def test_pace_curve_ends_at_each_shows_total(warehouse):
    """v_sales_pace per show: running totals by sales date whose last point is the show's total in the
    fact (and in the sandbox's truth); days before the show count Moscow days to its start."""
    clickhouse, sandbox, _ = warehouse
    pace = query(
        clickhouse,
        "SELECT event_id, show_id, sales_date, days_before_show, tickets_sold, revenue, "
        "tickets_sold_cumulative, revenue_cumulative, show_start_at FROM v_sales_pace "
        "ORDER BY event_id, show_id, sales_date",
    )
    last: dict[tuple, tuple] = {}
    running: dict[tuple, list] = {}
    for event, show, sales_date, days, tickets, revenue, tickets_cum, revenue_cum, start in pace:
        total = running.setdefault((event, show), [0, Decimal(0)])
        total[0] += tickets
        total[1] += revenue
        assert (tickets_cum, revenue_cum) == tuple(total)
        assert days == (start.astimezone(MSK).date() - sales_date).days
        last[(event, show)] = (tickets_cum, revenue_cum)
    fact = query(
        clickhouse,
        "SELECT event_id, show_id, sum(tickets_sold), sum(revenue) FROM fact_qtickets_sales_daily FINAL "
        "GROUP BY event_id, show_id",
    )
    assert last == {(e, s): (t, r) for e, s, t, r in fact}
    truth: dict[tuple, list] = {}
    for (sales_date, event, show), v in sandbox.expected_sales_daily(AS_OF).items():
        if FIRST <= sales_date <= LAST:
            row = truth.setdefault((event, show), [0, Decimal(0)])
            row[0] += v["tickets_sold"]
            row[1] += v["revenue"]
    assert last == {k: tuple(v) for k, v in truth.items()}
    assert len(last) > 10 and max(row[3] for row in pace) > 7  # curves span more than a week


def test_every_check_passed_and_reported(warehouse):
    _, _, result = warehouse
    evaluations = result.get_asset_check_evaluations()
    assert {(e.asset_key.path[-1], e.check_name) for e in evaluations} == {
        (c.asset_key.path[-1], c.name) for d in CHECKS for c in d.check_keys
    }
    assert all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]
    staged = result.asset_materializations_for_node("stg_qtickets_api_orders_raw")
    assert (
        len(staged) == 30 and len(result.asset_materializations_for_node("fact_qtickets_sales_daily")) == 30
    )


def test_a_range_run_reports_each_days_own_counts(warehouse):
    """One run over 30 days materializes 30 partitions; each carries that day's numbers (the sandbox's
    truth for the fact, the day's live rows for staging), not the range's."""
    clickhouse, sandbox, result = warehouse
    truth: dict[str, list] = {}
    for (sales_date, _, _), v in sandbox.expected_sales_daily(AS_OF).items():
        if FIRST <= sales_date <= LAST:
            day = truth.setdefault(sales_date.isoformat(), [0, 0, 0.0])
            day[0] += 1
            day[1] += v["tickets_sold"]
            day[2] += float(v["revenue"])
    materialized = result.asset_materializations_for_node
    facts = {m.partition: m.metadata for m in materialized("fact_qtickets_sales_daily")}
    assert len(facts) == 30 and len({m["tickets_sold"].value for m in facts.values()}) > 5
    for day, (rows, tickets, revenue) in truth.items():
        metadata = facts[day]
        assert (metadata["dagster/row_count"].value, metadata["tickets_sold"].value) == (rows, tickets), day
        assert metadata["revenue"].value == pytest.approx(revenue), day
    staged_rows = dict(query(
        clickhouse,
        "SELECT toString(toDate(order_created_at, 'Europe/Moscow')) AS day, count() "
        "FROM stg_qtickets_api_orders_raw FINAL GROUP BY day",
    ))
    staged = {m.partition: m.metadata for m in materialized("stg_qtickets_api_orders_raw")}
    assert {day: m["dagster/row_count"].value for day, m in staged.items()} == {
        day: staged_rows.get(day, 0) for day in staged
    }
    written = {m["rows_written_by_run"].value for m in staged.values()}
    assert len(written) == 1 and written.pop() >= sum(staged_rows.get(day, 0) for day in staged)


def test_views_carry_a_markdown_preview(warehouse):
    """Each view's materialization shows a few rows of its usual question; the pace preview's top show is
    the show that sold most in the sandbox's truth."""
    clickhouse, sandbox, result = warehouse
    for name in views.PREVIEWS:
        text = result.asset_materializations_for_node(name)[0].metadata["preview"].value
        table = [line for line in text.splitlines() if line.startswith("| ")]
        # v_sales_14d follows the real clock, so the frozen account may have left it: count, don't assume.
        rows = query(clickhouse, f"SELECT count() FROM ({views.PREVIEWS[name][1]})")[0][0]
        assert rows or name == "v_sales_14d", name
        assert text.startswith("**") and len(table) == (1 + min(rows, views.PREVIEW_ROWS) if rows else 0), (
            name, text)
    shows: dict[int, int] = {}
    for (sales_date, _, show), v in sandbox.expected_sales_daily(AS_OF).items():
        if FIRST <= sales_date <= LAST:
            shows[show] = shows.get(show, 0) + v["tickets_sold"]
    pace = result.asset_materializations_for_node("v_sales_pace")[0].metadata["preview"].value
    top = [line for line in pace.splitlines() if line.startswith("| ")][1]
    assert top.split(" | ")[2] == str(max(shows.values()))


def test_day_by_day_ends_in_the_same_facts_as_the_range_backfill(warehouse, tmp_path):
    """The schedule's way (one partition per run) and the backfill's way (one run over the range)."""
    from qtickets_assets.warehouse.io_manager import ClickHouseIOManager
    from qtickets_assets.warehouse.resource import ClickHouseResource

    backfilled, _, _ = warehouse
    clickhouse = ClickHouseResource(dsn=f"chdb://{tmp_path / 'daily'}", lock_timeout_s=5)
    resources = {
        "clickhouse": clickhouse,
        "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
        "qtickets": QTicketsResource(sandbox_opened_on=OPENED_ON, sandbox_as_of=AS_OF.isoformat()),
    }
    days = [LAST - timedelta(days=2), LAST - timedelta(days=1), LAST]
    sales = [raw.stg_qtickets_api_orders_raw, marts.fact_qtickets_sales_daily]
    for day in days:
        assert dg.materialize(sales, resources=resources, partition_key=day.isoformat()).success
    sql = (
        "SELECT * EXCEPT (_loaded_at, _ver) FROM fact_qtickets_sales_daily FINAL "
        "WHERE sales_date >= {first:Date} ORDER BY sales_date, event_id, show_id"
    )
    daily = query(clickhouse, sql, first=days[0])
    assert len(daily) > 20
    assert daily == query(backfilled, sql, first=days[0])


def test_a_started_show_keeps_its_last_snapshot_flagged_final(clickhouse):
    """Each run polls the shows on sale; a show that started in between keeps its last snapshot before the
    start (final), a show cancelled before its start leaves; v_show_occupancy shows both kinds."""
    from qtickets_assets.warehouse.io_manager import ClickHouseIOManager

    inventory = [
        raw.stg_qtickets_api_events_raw,
        raw.stg_qtickets_api_inventory_raw,
        marts.fact_qtickets_inventory_latest,
        marts.dim_events,
    ]
    earlier = AS_OF - timedelta(days=4)
    for moment in (earlier, AS_OF):
        qtickets = QTicketsResource(sandbox_opened_on=OPENED_ON, sandbox_as_of=moment.isoformat())
        resources = {
            "clickhouse": clickhouse,
            "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
            "qtickets": qtickets,
        }
        assert dg.materialize(inventory, resources=resources).success
    sandbox = qtickets.sandbox()
    want = sandbox.expected_inventory_after([earlier, AS_OF])
    started = {s for s, v in want.items() if v["is_final"]}
    assert started, "no show started in between: the test would prove nothing"
    assert set(sandbox.expected_inventory(earlier)) - set(want), "no show cancelled: proves less"
    # A past show's occupancy is its last snapshot before the start.
    for show in started:
        assert sandbox.account.shows[show].start <= AS_OF
        assert {k: want[show][k] for k in ("capacity", "free_seats", "sold_seats")} == {
            k: sandbox.expected_inventory(earlier)[show][k] for k in ("capacity", "free_seats", "sold_seats")
        }
    rows = query(
        clickhouse,
        "SELECT show_id, event_id, capacity, free_seats, sold_seats, is_final, snapshot_at "
        "FROM fact_qtickets_inventory_latest FINAL",
    )
    got = {r[0]: {"event_id": r[1], "capacity": r[2], "free_seats": r[3], "sold_seats": r[4],
                  "is_final": bool(r[5])} for r in rows}
    assert got == {s: {k: v for k, v in row.items() if k != "polled_at"} for s, row in want.items()}
    snapshots = {r[0]: r[6] for r in rows}
    assert max(snapshots[s] for s in started) < min(snapshots[s] for s in set(want) - started)
    view = {
        r[0]: r[1:]
        for r in query(
            clickhouse,
            "SELECT show_id, event_id, capacity, sold_seats, free_seats, occupancy, status, snapshot_at "
            "FROM v_show_occupancy",
        )
    }
    assert set(view) == set(want)
    for show, (event, capacity, sold, free, occupancy, status, snapshot_at) in view.items():
        assert (event, capacity, sold, free) == (
            want[show]["event_id"], want[show]["capacity"], want[show]["sold_seats"], want[show]["free_seats"]
        )
        assert occupancy == pytest.approx(sold / capacity, abs=1e-4)
        assert status == ("final" if show in started else "on_sale")
        assert snapshot_at == snapshots[show]
