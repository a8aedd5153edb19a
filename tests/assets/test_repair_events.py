"""The dimension repair of `covers_ordered_shows` (assets/repair_events.py) on chDB against a controllable
API (respx): orders of an event the events snapshot did not have make the check re-read exactly that event
(`GET events/{id}`), upsert it without tombstoning anything, and pass; a show the API does not know stays
a failure naming it; a cap of 0 fails as before."""

from datetime import datetime

import dagster as dg
import pytest

from qtickets_assets.assets import checks, marts, raw
from qtickets_assets.qtickets.resource import QTicketsResource
from qtickets_assets.runs import record_run
from qtickets_assets.transform import event_rows
from tests.builders import (
    API,
    AS_OF,
    EVENTS,
    MSK,
    OPENED_ON,
    D,
    Source,
    at,
    basket,
    event,
    order,
    query,
    recorded_run,
    write,
)

CHECK = dg.AssetCheckKey(marts.dim_events.key, "covers_ordered_shows")
SNAPSHOT_AT = datetime(2026, 11, 18, 12, 0, tzinfo=MSK)  # the sandbox creates an event at 13:00


def snapshot_then_orders(resources, *orders) -> None:
    """The events snapshot knows events 1 (show 11) and 5 (show 51); then `orders` land in staging."""
    write(resources, "stg_qtickets_api_events_raw",
          event_rows([event(1, "Щелкунчик", [11]), event(5, "Лебединое озеро", [51])]), EVENTS)
    source = Source(order(1, 1, at(D, 9), [basket(11, 11, 1500)], payed=at(D, 9, 5)), *orders)
    assert dg.materialize([source.asset()], resources=resources, partition_key=D.isoformat()).success


def dim_and_check(resources, **limits) -> tuple[dg.ExecuteInProcessResult, dg.AssetCheckEvaluation]:
    """dim_events and its check in one run, recorded in meta_job_runs."""
    qtickets = QTicketsResource(base_url=API, token="t", **limits)
    with dg.instance_for_test() as instance:
        result = dg.materialize([marts.dim_events, checks.covers_ordered_shows], instance=instance,
                                resources={**resources, "qtickets": qtickets}, raise_on_error=False)
        record_run(resources["clickhouse"], instance, result.run_id, finished=True)
    [evaluation] = result.get_asset_check_evaluations()
    return result, evaluation


def dim(clickhouse) -> dict[tuple[int, int], tuple]:
    rows = query(clickhouse, "SELECT event_id, show_id, event_name, city, is_active, is_deleted "
                             "FROM dim_events FINAL")
    return {tuple(r[:2]): tuple(r[2:]) for r in rows}


def paths(api) -> list[str]:
    return [r.url.path.split("/api/rest/v1/", 1)[1] for r in api.requests]


def test_a_show_of_an_event_newer_than_the_snapshot_is_named_in_the_same_run(api, resources, clickhouse):
    snapshot_then_orders(resources, order(2, 2, at(D, 10), [basket(21, 21, 900)], payed=at(D, 10, 5)))
    api.put_events(event(2, "Новый год", [21, 22]))
    result, evaluation = dim_and_check(resources)

    assert result.success and evaluation.passed
    assert paths(api) == ["events/2"]  # exactly the missing show's event: one request
    assert evaluation.metadata["repair/keys"].value == ["event:2"]
    assert evaluation.metadata["repair/reread"].value == 1
    assert evaluation.metadata["repair/capped"].value is False
    assert recorded_run(clickhouse, result.run_id) == ("ok", ["event:2"], 1, 0)
    # dim_events equals the API's truth: the snapshot's events, plus event 2 with both its shows.
    city = "Новосибирск"
    assert dim(clickhouse) == {(1, 11): ("Щелкунчик", city, 1, 0), (5, 51): ("Лебединое озеро", city, 1, 0),
                               (2, 21): ("Новый год", city, 1, 0), (2, 22): ("Новый год", city, 1, 0)}
    # An upsert: the partial answer tombstoned nothing in the snapshot's table or the dimension.
    assert query(clickhouse, "SELECT count() FROM stg_qtickets_api_events_raw WHERE _deleted = 1") == [(0,)]
    assert query(clickhouse, "SELECT count() FROM dim_events WHERE _deleted = 1") == [(0,)]
    repaired = {e.asset_key.path[-1]: e.materialization.metadata["dagster/row_count"].value
                for e in result.get_asset_materialization_events() if e.materialization.description}
    assert repaired == {"stg_qtickets_api_events_raw": 2, "dim_events": 2}

    # Idempotent: the rerun finds nothing missing and asks the API nothing.
    before = dim(clickhouse)
    result, evaluation = dim_and_check(resources)
    assert evaluation.passed and evaluation.metadata["repair/reread"].value == 0
    assert paths(api) == ["events/2"] and dim(clickhouse) == before


def test_without_the_repair_the_missing_show_fails_the_check_naming_it(api, resources, clickhouse):
    snapshot_then_orders(resources, order(2, 2, at(D, 10), [basket(21, 21, 900)], payed=at(D, 10, 5)))
    api.put_events(event(2, "Новый год", [21]))
    result, evaluation = dim_and_check(resources, repair_max_events=0)

    assert result.success and not evaluation.passed  # not blocking: the numbers are right
    assert evaluation.metadata["sample"].value == [["2", "21"]]
    assert evaluation.metadata["repair/capped"].value and not api.requests
    assert "QTICKETS_REPAIR_MAX_EVENTS=0" in evaluation.description
    # A warning, not wrong numbers: the run stays `ok`; the cap stopped the repair.
    assert recorded_run(clickhouse, result.run_id) == ("ok", [], 0, 1)
    assert (2, 21) not in dim(clickhouse)


def test_shows_the_api_does_not_know_still_fail_naming_them(api, resources, clickhouse):
    snapshot_then_orders(
        resources,
        order(2, 2, at(D, 10), [basket(21, 21, 900)], payed=at(D, 10, 5)),  # event 2 answers: repaired
        order(3, 1, at(D, 11), [basket(31, 12, 900)], payed=at(D, 11, 5)),  # event 1 lists no show 12
        order(4, 3, at(D, 12), [basket(41, 31, 900)], payed=at(D, 12, 5)),  # event 3: 404
    )
    api.put_events(event(1, "Щелкунчик", [11]), event(2, "Новый год", [21]))
    result, evaluation = dim_and_check(resources)

    assert result.success and not evaluation.passed
    assert sorted(evaluation.metadata["sample"].value) == [["1", "12"], ["3", "31"]]
    assert sorted(paths(api)) == ["events/1", "events/2", "events/3"]
    assert evaluation.metadata["repair/keys"].value == ["event:3", "event:2", "event:1"]
    assert evaluation.metadata["repair/reread"].value == 2  # event 3 is unknown
    assert "unknown to the API (404): events [3]" in evaluation.description
    assert "not listed by their event: show 12 (event 1)" in evaluation.description
    assert (2, 21) in dim(clickhouse)  # what could be repaired was


@pytest.mark.slow
def test_an_event_created_after_the_snapshot_is_re_read_from_the_sandbox(resources, clickhouse):
    """The events snapshot is taken on the sandbox at SNAPSHOT_AT; orders are read at AS_OF, when an event
    created in between has sold: the check re-reads it and dim_events equals the sandbox's truth (the
    snapshot's events as of the snapshot, the re-read one as of now)."""
    early = QTicketsResource(sandbox_opened_on=OPENED_ON, sandbox_as_of=SNAPSHOT_AT.isoformat())
    assert dg.materialize([raw.stg_qtickets_api_events_raw, marts.dim_events],
                          resources={**resources, "qtickets": early}).success
    days = {"dagster/asset_partition_range_start": SNAPSHOT_AT.date().isoformat(),
            "dagster/asset_partition_range_end": AS_OF.date().isoformat()}
    assert dg.materialize([raw.stg_qtickets_api_orders_raw], resources=resources, tags=days).success
    sandbox = resources["qtickets"].sandbox()
    known, now = sandbox.expected_dim_events(SNAPSHOT_AT), sandbox.expected_dim_events(AS_OF)
    sold = {row[0] for row in query(clickhouse, "SELECT DISTINCT event_id FROM stg_qtickets_api_orders_raw")}
    new = sorted({event for event, _ in now} - {event for event, _ in known} & sold)
    assert new, "no event created after the snapshot has sold: the test would prove nothing"

    result = dg.materialize([marts.dim_events, checks.covers_ordered_shows], resources=resources)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed
    assert evaluation.metadata["repair/keys"].value == [f"event:{event}" for event in reversed(new)]
    truth = {**known, **{key: value for key, value in now.items() if key[0] in new}}
    rows = query(clickhouse, "SELECT event_id, show_id, event_name, city, city_timezone, venue, "
                             "show_start_at, show_finish_at, is_active, is_deleted FROM dim_events FINAL")
    assert {(r[0], r[1]): (r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), bool(r[9])) for r in rows} == {
        key: (v["event_name"], v["city"], v["city_timezone"], v["venue"], v["show_start_at"],
              v["show_finish_at"], bool(v["is_active"]), bool(v["is_deleted"])) for key, v in truth.items()}
