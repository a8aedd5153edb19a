"""Asset checks: each looks for a defect that can really happen, cheaply enough for every tick.

No "keys unique" check on a table whose sorting key is its business key: after FINAL such a key cannot
repeat (tests/assets/test_checks.py verifies the sorting keys in the migrations).

None blocks: a blocking check only skips what depends on its asset in the run, and here that stops nothing
worth stopping. The BI views are SQL over the facts, so a dashboard already shows what a failed check
found whether or not the views' `CREATE OR REPLACE` runs; blocking the sales fact's checks would even
skip the inventory refresh. A failed check is made loud instead: `check_failure_alerts` (automation.py)
sends an alert with its description, `meta_job_runs.failed_checks` records it and `load` exits 1;
a failed check of ERROR severity (every one but covers_ordered_shows, where only a name is missing) also
records the run as `failed`, so nothing reads a green run over numbers a check found wrong.
Where the product can explain a failure by stale source data, it repairs those keys before the check
passes judgement (repair*.py) and the check fails only on what is still wrong, saying what was repaired.
Each check reports what it counted and, when it fails, a description naming the offending keys.
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg

from ..partitions import daily_partitions
from ..qtickets.resource import QTicketsResource
from ..runs import RANGE_END, RANGE_START
from ..warehouse.resource import ClickHouseResource
from ..warehouse.writes import select_columns
from . import marts, raw, repair, repair_days, repair_events, views

SAMPLE = 5  # offending keys shown in a failed check's metadata
ALL_DAYS = dg.TimeWindow(datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _result(client, bad_rows_sql: str, parameters: dict | None = None, description: str | None = None,
            what: str = "offending rows", severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
            **metadata) -> dg.AssetCheckResult:
    """Passes when `bad_rows_sql` returns no rows; otherwise shows their count and a few of them, and
    describes them as `what` before `description` (the alert's text). One evaluation of `bad_rows_sql`."""
    count, sample = client.query(
        f"SELECT count(), groupArray({SAMPLE})(tuple(*)) FROM ({bad_rows_sql})", parameters=parameters or {}
    ).result_rows[0]
    if count:
        described = "; ".join("(" + ", ".join(str(v) for v in row) + ")" for row in sample)
        description = f"{count} {what}, e.g. {described}" + (f"; {description}" if description else "")
    return dg.AssetCheckResult(
        passed=count == 0,
        severity=severity,
        description=description,
        metadata={
            "offending_rows": count,
            "sample": dg.MetadataValue.json([[str(v) for v in r] for r in sample]),
            **metadata,
        },
    )


@dg.asset_check(asset=marts.fact_qtickets_inventory_latest)
def one_row_per_show(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    """A show belongs to one event: the table's key is (event_id, show_id), so a show that appears under
    two events would count its seats twice in v_sales_latest."""
    with clickhouse.get_client() as client:
        return _result(
            client,
            "SELECT show_id, groupUniqArray(event_id) AS events FROM fact_qtickets_inventory_latest FINAL "
            "GROUP BY show_id HAVING length(events) > 1",
        )


@dg.asset_check(asset=marts.dim_events, additional_deps=[raw.stg_qtickets_api_orders_raw], pool="dim_events")
def covers_ordered_shows(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource,
                         qtickets: QTicketsResource) -> dg.AssetCheckResult:
    """Every show with tickets in order staging has its row in dim_events (else the dashboards show its
    sales without a name): the numbers are right, a name is missing. Before failing, the
    events of the missing shows are re-read from the API and upserted (repair_events.py): what fails is
    still missing after that, and the result says what was re-read."""
    with clickhouse.get_client() as client:
        result = _result(client, repair_events.MISSING_SHOWS,
                         **repair.repair_metadata([], 0, False, "no ordered show is missing"))
        if result.passed:
            return result
        repaired = repair_events.reread_events_of_missing_shows(context, clickhouse, client, qtickets)
        # A warning: the numbers are right (meta_job_runs keeps the run `ok` and lists the check).
        return _result(client, repair_events.MISSING_SHOWS, None, repaired[repair.REPAIR_SUMMARY],
                       severity=dg.AssetCheckSeverity.WARN, **repaired)


@dg.asset_check(asset=marts.fact_qtickets_sales_daily)
def counts_non_negative(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    """Money is never negative, and a row never counts more paid orders than tickets sold."""
    with clickhouse.get_client() as client:
        return _result(
            client,
            """
            SELECT sales_date, event_id, show_id, tickets_sold, revenue, orders_count, refunds_amount
            FROM fact_qtickets_sales_daily FINAL
            WHERE revenue < 0 OR refunds_amount < 0 OR orders_count > tickets_sold
               OR (tickets_sold = 0 AND revenue != 0)
        """,
        )


def run_days(run_tags: Mapping[str, str]) -> dg.TimeWindow | None:
    """The Moscow days a run covers (its partition or partition range); None when it has none."""
    first, last = run_tags.get(RANGE_START), run_tags.get(RANGE_END)
    if first is None:
        first = last = run_tags.get("dagster/partition")
    if first is None:
        return None
    return dg.TimeWindow(
        daily_partitions.time_window_for_partition_key(first).start,
        daily_partitions.time_window_for_partition_key(last).end,
    )


# Not partitioned on purpose: a range run cannot record a partitioned check's result per partition
# (Dagster 1.13 records one evaluation without a partition), so the UI showed "Skipped", "2/3 Passed"
# and "Passed" for one check. Unpartitioned, it has one state: its last evaluation, over the run's days.
@dg.asset_check(
    asset=marts.fact_qtickets_sales_daily,
    additional_deps=[raw.stg_qtickets_api_orders_raw],
    pool="fact_qtickets_sales_daily",  # its repair writes the fact: one writer per table
)
def agrees_with_staging(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource):
    """The fact rows of the run's days (every day when the run has none) equal a fresh computation from
    order staging, both ways (one computation, joined on the key: about the cost of rebuilding those days).
    Before failing, the differing days are rebuilt from staging and the check looks again
    (repair_days.py): what fails is still different after that, and the result says what was rebuilt."""
    own_days = run_days(context.run.tags)
    window = own_days or ALL_DAYS
    params = marts.window_parameters(window)
    key = ["sales_date", "event_id", "show_id"]
    fact = f"SELECT *, 1 AS in_fact FROM fact_qtickets_sales_daily FINAL WHERE {marts.SALES_DATES}"
    fresh = f"SELECT *, 1 AS in_staging FROM ({marts.SALES_DAILY})"
    with clickhouse.get_client() as client:
        metrics = [c for c in select_columns(client, marts.SALES_DAILY, params) if c not in key]
        differs = " OR ".join(f"fact.{c} != fresh.{c}" for c in metrics)
        differing = (
            f"SELECT {', '.join(key)}, multiIf(in_fact = 0, 'missing in fact', in_staging = 0, "
            f"'not in staging', 'different') AS problem, "
            + ", ".join(f"fact.{c} AS fact_{c}, fresh.{c} AS staging_{c}" for c in metrics)
            + f" FROM ({fact}) AS fact FULL OUTER JOIN ({fresh}) AS fresh USING ({', '.join(key)}) "
            f"WHERE in_fact = 0 OR in_staging = 0 OR {differs}"
        )
        days = f"{window.start.date()}..{(window.end - timedelta(days=1)).date()}"
        result = _result(client, differing, params, days=days,
                         **repair.repair_metadata([], 0, False, "nothing differs"))
        if result.passed:
            return result
        repaired = repair_days.rebuild_differing_days(context, clickhouse, client, differing, params,
                                                      own_days)
        # Looks again: what still differs (offending_rows, sample) is what the repair could not fix.
        return _result(client, differing, params, repaired[repair.REPAIR_SUMMARY], days=days, **repaired)


@dg.asset_check(
    asset=marts.fact_qtickets_inventory_latest,
    additional_deps=[marts.fact_qtickets_sales_daily],
)
def sold_within_capacity(context: dg.AssetCheckExecutionContext,
                         clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    """Per show: paid seats and free seats each fit in the capacity, and so do the tickets the sales
    fact counts as sold. Runs after the inventory asset's repair (repair.py): what fails is still wrong
    after the orders of those shows were re-read, and the result says what was re-read."""
    event = context.instance.get_latest_materialization_event(marts.fact_qtickets_inventory_latest.key)
    repaired = {}
    if event and event.run_id == context.run.run_id and event.asset_materialization:
        repaired = {key: value for key, value in event.asset_materialization.metadata.items()
                    if key.startswith("repair/")}
    summary = repaired.get(repair.REPAIR_SUMMARY)
    with clickhouse.get_client() as client:
        return _result(
            client,
            f"SELECT inventory.show_id, capacity, free_seats, sold_seats, sales.tickets_sold "
            f"{repair.INVENTORY_WITH_SALES} "
            "WHERE sold_seats > capacity OR free_seats > capacity OR sales.tickets_sold > capacity",
            description=f"still so after the repair: {summary.value if summary else 'no repair ran'}",
            what="shows over capacity (show_id, capacity, free_seats, sold_seats, fact tickets_sold)",
            **repaired,
        )


def _view_check(view: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    name = view.key.path[-1]

    @dg.asset_check(
        asset=view, name="queryable", description="The view answers with every contract column and type."
    )
    def _check(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
        with clickhouse.get_client() as client:
            try:
                rows = views.count_view(client, name)
                mismatches = views.contract_mismatches(client, name)
            except Exception as error:  # the failure is the check's finding, not a crash
                return dg.AssetCheckResult(passed=False, metadata={"error": str(error)[:1000]},
                                           description=f"{name} does not answer: {error}"[:1000])
        if mismatches:
            return dg.AssetCheckResult(passed=False, description=f"{name}: types differ: {mismatches}"[:1000],
                                       metadata={"error": f"types differ: {mismatches}"})
        return dg.AssetCheckResult(passed=True, metadata={"rows": rows})

    return _check


view_checks = [_view_check(v) for v in (views.v_sales_14d, views.v_sales_latest, views.v_show_occupancy,
                                            views.v_sales_pace)]
