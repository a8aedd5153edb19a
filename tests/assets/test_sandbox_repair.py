"""Issue 16 on the sandbox: an older paid order's tickets refunded with no webhook (refunds do not move
`updated_at`, so the watermark read misses them too) and their seats sold again (`sandbox.Resale`). With
no reconcile, the next 15-minute tick (the refresh job over yesterday..today) finds the show sold over
capacity, re-reads its orders, and the sales fact and the inventory equal the sandbox's truth. The same
tick with the repair turned off (cap 0) fails the check on that show: the scenario is a real one."""

from datetime import timedelta

import dagster as dg
import pytest

from qtickets_assets import automation
from qtickets_assets.qtickets.resource import QTicketsResource
from qtickets_assets.sandbox.account import render_order
from qtickets_assets.sandbox.webhooks import changes
from tests.builders import AS_OF, OPENED_ON, query, refresh_job_run

T0 = AS_OF
AT = T0 + timedelta(minutes=5)  # the refunds and the resale
T1 = T0 + timedelta(minutes=15)  # the next tick
TICK = automation.day_range(T1 - timedelta(hours=24), T1)
COLUMNS = ("tickets_sold", "revenue", "orders_count", "refunded_tickets", "refunds_amount")
CHECK = ("fact_qtickets_inventory_latest", "sold_within_capacity")

pytestmark = pytest.mark.slow


def pick_show(sandbox) -> int:
    """Of `Sandbox.resale_candidates` at AT, the show nearest to full (a small resale)."""
    return min((show.capacity - sold, show.id) for show, sold in sandbox.resale_candidates(AT, T1))[1]


def refresh(clickhouse, sandbox_config: dict, now, keys: dg.PartitionKeyRange, instance, **limits):
    """The 15-minute job over `keys` with the sandbox's clock at `now`; no webhook store."""
    qtickets = QTicketsResource(sandbox_as_of=now.isoformat(), per_page=1000, **sandbox_config, **limits)
    return refresh_job_run(clickhouse, qtickets, keys, instance)


def capacity_check(result) -> dg.AssetCheckEvaluation:
    [found] = [e for e in result.get_asset_check_evaluations()
               if (e.asset_key.path[-1], e.check_name) == CHECK]
    return found


def warehouse_fact(clickhouse) -> dict:
    rows = query(clickhouse, f"SELECT sales_date, event_id, show_id, {', '.join(COLUMNS)} "
                             "FROM fact_qtickets_sales_daily FINAL")
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}


def truth(sandbox, now, first_day) -> dict:
    return {key: tuple(v[c] for c in COLUMNS) for key, v in sandbox.expected_sales_daily(now).items()
            if key[0] >= first_day}


def test_a_seat_of_a_stale_refund_sold_again_is_repaired_by_the_next_tick(clickhouse):
    show = pick_show(QTicketsResource(sandbox_opened_on=OPENED_ON).sandbox())
    config = {"sandbox_opened_on": OPENED_ON, "sandbox_resales": f"{show}@{AT.isoformat()}"}
    sandbox = QTicketsResource(**config).sandbox()
    capacity = sandbox.account.shows[show].capacity
    first_day = sandbox.account.events_by_id[sandbox.account.shows[show].event_id].created_at.date()

    # The scenario as the sandbox plays it: 4 older tickets refunded at AT with no hook and no move of
    # updated_at, the show sold out at AT; nothing else refunded meanwhile (else only a re-read fixes it).
    refunded = [(o, b) for o, b in sandbox.account.baskets_of_show(show, T1) if b.refunded_at == AT]
    assert len(refunded) == 4 and all(o.payed_at <= AT - timedelta(days=2) for o, _ in refunded)
    assert all(render_order(o, T1)["updated_at"] == render_order(o, T0)["updated_at"] for o, _ in refunded)
    assert not [c for c in changes(sandbox.account, T0, T1) if c[2] == "refunded"]
    assert sandbox.expected_inventory(T1)[show]["sold_seats"] == capacity
    old_days = {o.payed_at.date() for o, _ in refunded}
    assert max(old_days) < T1.date() - timedelta(days=1)  # outside the tick's days

    with dg.instance_for_test() as instance:
        # The history the warehouse holds: every day since the show's event went on sale.
        history = dg.PartitionKeyRange(first_day.isoformat(), T0.date().isoformat())
        first = refresh(clickhouse, config, T0, history, instance)
        assert first.success and warehouse_fact(clickhouse) == truth(sandbox, T0, first_day)

        # Without the repair the tick fails the check on this show: the stale refunds are still counted.
        off = refresh(clickhouse, config, T1, TICK, instance, repair_max_shows=0)
        unrepaired = capacity_check(off)
        assert off.success and not unrepaired.passed  # no check blocks a run; the alert says it
        assert [row[0] for row in unrepaired.metadata["sample"].value] == [str(show)]
        assert unrepaired.metadata["repair/capped"].value is True
        assert unrepaired.metadata["repair/keys"].value == []
        fact = warehouse_fact(clickhouse)
        stale = {k for k, v in truth(sandbox, T1, first_day).items() if fact.get(k) != v}
        assert {k[0] for k in stale} == {d for d in old_days}

        result = refresh(clickhouse, config, T1, TICK, instance)
        assert result.success
        repaired = capacity_check(result)
        assert repaired.passed and repaired.metadata["repair/keys"].value == [f"show:{show}"]
        assert not repaired.metadata["repair/capped"].value

    assert warehouse_fact(clickhouse) == truth(sandbox, T1, first_day)  # every day, the old ones included
    rows = query(clickhouse, "SELECT show_id, event_id, capacity, free_seats, sold_seats "
                             "FROM fact_qtickets_inventory_latest FINAL")
    got = {r[0]: {"event_id": r[1], "capacity": r[2], "free_seats": r[3], "sold_seats": r[4]} for r in rows}
    assert got == sandbox.expected_inventory(T1)
