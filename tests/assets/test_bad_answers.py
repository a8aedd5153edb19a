"""Answers the product cannot use fail the run and leave the warehouse as it was (issue 11, items 1-2):
dates in another format, and an empty events answer. The sandbox's answers are rewritten in flight,
the way a misbehaving proxy or API release would."""

import re
from datetime import timedelta

import dagster as dg
import httpx
import pytest

from qtickets_assets.assets import checks, marts, raw, views
from qtickets_assets.qtickets.resource import QTicketsResource
from qtickets_assets.runs import root_error
from qtickets_assets.warehouse.writes import ALLOW_MASS_DELETE
from tests.builders import AS_OF, OPENED_ON

ASSETS = dg.load_assets_from_modules([raw, marts, views])
CHECKS = dg.load_asset_checks_from_modules([checks])
DAY = (AS_OF.date() - timedelta(days=1)).isoformat()
TABLES = ["stg_qtickets_api_orders_raw", "stg_qtickets_api_events_raw", "stg_qtickets_api_inventory_raw",
          "fact_qtickets_sales_daily", "dim_events", "fact_qtickets_inventory_latest", "v_sales_latest",
          "v_sales_14d"]
ISO = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d:\d\d:\d\d)\+03:00")


def other_date_format(request: httpx.Request, response: httpx.Response) -> httpx.Response:
    """Every instant as `28.11.2026 02:44:22`."""
    return httpx.Response(response.status_code, headers={"Content-Type": "application/json"},
                          content=ISO.sub(rb"\3.\2.\1 \4", response.content))


def no_events(request: httpx.Request, response: httpx.Response) -> httpx.Response:
    """An account without events: an empty listing, and 404 for each event (what the check
    covers_ordered_shows re-reads for the shows its orders name)."""
    if request.url.path.endswith("/events"):
        paging = {"perPage": 100, "currentPage": 1, "total": 0}
        return httpx.Response(200, json={"data": [], "paging": paging})
    if re.search(r"/events/\d+$", request.url.path):
        return httpx.Response(404, json={"error": 'Resource "Event" not found', "status": 404,
                                         "code": "RESOURCE_NOT_FOUND"})
    return response


class Rewritten(QTicketsResource):
    """The sandbox behind a proxy that rewrites its answers (test only)."""

    rewrite: str = ""

    def sandbox(self):
        sandbox = super().sandbox()
        answer = sandbox.handle
        rewrite = {"dates": other_date_format, "no_events": no_events}.get(self.rewrite)
        if rewrite:
            sandbox.handle = lambda request: rewrite(request, answer(request))
        return sandbox


def run(clickhouse, tmp_path, rewrite: str = "", **tags) -> dg.ExecuteInProcessResult:
    from qtickets_assets.warehouse.io_manager import ClickHouseIOManager

    qtickets = Rewritten(sandbox_opened_on=OPENED_ON, sandbox_as_of=AS_OF.isoformat(), per_page=500,
                         rejects_dir=str(tmp_path / "rejects"), rewrite=rewrite)
    return dg.materialize(
        [*ASSETS, *CHECKS], partition_key=DAY, raise_on_error=False, tags=tags,
        resources={"clickhouse": clickhouse, "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
                   "qtickets": qtickets},
    )


def state(clickhouse) -> dict[str, list[tuple]]:
    """Every live row of every table and view (technical columns dropped: they are stamped per write)."""
    with clickhouse.get_client() as client:
        return {table: sorted(map(tuple, client.query(
            f"SELECT * EXCEPT (_loaded_at, _ver, _dedup_key, _deleted) FROM {table} FINAL"
            if table.startswith(("stg", "fact", "dim")) else f"SELECT * FROM {table}").result_rows))
            for table in TABLES}


def failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {event.step_key: root_error(event.step_failure_data.error)
            for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE}


@pytest.fixture
def loaded(clickhouse, tmp_path):
    assert run(clickhouse, tmp_path).success
    before = state(clickhouse)
    assert all(before[t] for t in TABLES), "a table is empty: the test would prove nothing"
    return before


def test_dates_in_another_format_fail_the_run_and_change_nothing(clickhouse, loaded, tmp_path):
    result = run(clickhouse, tmp_path, rewrite="dates")
    assert not result.success
    failed = failures(result)
    assert re.search(r"malformed Order id=\d+: (created_at|payed_at|updated_at): .*ISO 8601",
                     failed["stg_qtickets_api_orders_raw"])
    assert "raw page kept at" in failed["stg_qtickets_api_orders_raw"]
    assert state(clickhouse) == loaded  # nothing tombstoned, no fact emptied


def test_an_empty_events_answer_fails_and_leaves_events_inventory_and_views(clickhouse, loaded, tmp_path):
    result = run(clickhouse, tmp_path, rewrite="no_events")
    assert not result.success
    message = failures(result)["stg_qtickets_api_events_raw"]
    live = len(loaded["stg_qtickets_api_events_raw"])
    assert f"stg_qtickets_api_events_raw: this write would remove {live} of the {live} live rows" in message
    assert f"{ALLOW_MASS_DELETE}=true" in message
    after = state(clickhouse)
    for table in ("stg_qtickets_api_events_raw", "dim_events", "stg_qtickets_api_inventory_raw",
                  "fact_qtickets_inventory_latest", "v_sales_latest"):
        assert after[table] == loaded[table], table


def test_a_genuine_mass_deletion_goes_through_with_the_tag(clickhouse, loaded, tmp_path):
    result = run(clickhouse, tmp_path, rewrite="no_events", **{ALLOW_MASS_DELETE: "true"})
    assert "stg_qtickets_api_events_raw" not in failures(result)
    assert state(clickhouse)["stg_qtickets_api_events_raw"] == []
