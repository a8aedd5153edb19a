"""The mass-deletion guard (issue 11 item 2): a write may not remove more than a share of its scope's live
rows, or all of them, without the run tag; tiny scopes are not guarded; marts are guarded the same way."""

import dagster as dg
import pytest

from qtickets_assets.assets import marts
from qtickets_assets.transform import event_rows
from qtickets_assets.warehouse.io_manager import ClickHouseIOManager
from qtickets_assets.warehouse.resource import ClickHouseResource
from qtickets_assets.warehouse.writes import ALLOW_MASS_DELETE, DeleteGuard, MassDeleteError
from tests.builders import EVENTS, event, query, write


def events(count: int):
    return event_rows([event(1000 + i, f"e{i}", [5000 + i]) for i in range(count)])


def live(clickhouse, table="stg_qtickets_api_events_raw") -> int:
    return query(clickhouse, f"SELECT count() FROM {table} FINAL")[0][0]


def test_the_rule():
    guard = DeleteGuard("t", max_share=0.5, floor=20)
    guard.check(live=40, removing=20)  # half: allowed
    guard.check(live=19, removing=19)  # under the floor: allowed, even all
    with pytest.raises(MassDeleteError, match=r"t: this write would remove 21 of the 40 live rows"):
        guard.check(live=40, removing=21)
    with pytest.raises(MassDeleteError):
        DeleteGuard("t", max_share=1.0, floor=20).check(live=40, removing=40)  # all: never without the tag
    DeleteGuard("t", allowed=True).check(live=40, removing=40)


def test_a_shrunken_answer_fails_before_any_tombstone_and_the_tag_lets_it_through(resources, clickhouse):
    assert write(resources, "stg_qtickets_api_events_raw", events(40), EVENTS).success
    with pytest.raises(MassDeleteError) as raised:
        write(resources, "stg_qtickets_api_events_raw", events(10), EVENTS)
    message = str(raised.value)
    assert "stg_qtickets_api_events_raw: this write would remove 30 of the 40 live rows" in message
    assert "QTICKETS_MAX_DELETE_SHARE" in message and f"{ALLOW_MASS_DELETE}=true" in message
    assert live(clickhouse) == 40
    assert query(clickhouse, "SELECT count() FROM stg_qtickets_api_events_raw WHERE _deleted = 1")[0][0] == 0
    # Half is within the share; with the tag anything goes.
    assert write(resources, "stg_qtickets_api_events_raw", events(20), EVENTS).success
    assert live(clickhouse) == 20
    write(resources, "stg_qtickets_api_events_raw", events(0), EVENTS, tags={ALLOW_MASS_DELETE: "true"})
    assert live(clickhouse) == 0


def test_a_tiny_table_may_lose_all_its_rows(resources, clickhouse):
    write(resources, "stg_qtickets_api_events_raw", events(3), EVENTS)
    write(resources, "stg_qtickets_api_events_raw", events(0), EVENTS)
    assert live(clickhouse) == 0


def test_the_share_is_a_setting_and_marts_are_guarded(tmp_path):
    clickhouse = ClickHouseResource(dsn=f"chdb://{tmp_path / 'ch'}", lock_timeout_s=5, max_delete_share=0.2)
    resources = {"clickhouse": clickhouse, "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse)}
    write(resources, "stg_qtickets_api_events_raw", events(40), EVENTS)
    assert dg.materialize([marts.dim_events], resources=resources).success
    with clickhouse.get_client() as client:  # 30% of the events vanish behind the IO manager's back
        client.command("ALTER TABLE stg_qtickets_api_events_raw DELETE WHERE event_id >= 1028",
                       settings={"mutations_sync": 2})
    with pytest.raises(MassDeleteError, match=r"dim_events: this write would remove 12 of the 40 .*20%"):
        dg.materialize([marts.dim_events], resources=resources)
    assert live(clickhouse, "dim_events") == 40
