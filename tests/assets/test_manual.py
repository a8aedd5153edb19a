"""Manual fallback: a CSV file (local, or a published Google Sheet through respx) fills the order staging and
reaches the sales fact; a bad row names its line and column and loads nothing; re-importing changes nothing;
API runs keep manual rows, and an API row of the same ticket wins."""

from datetime import date
from decimal import Decimal

import dagster as dg
import httpx
import pytest
import respx

from qtickets_assets.assets import manual
from qtickets_assets.assets.manual import ManualImportError, manual_sales_import
from tests.builders import Source, at, basket, fact, materialize, order, physical_rows, query

D = date(2026, 11, 10)
HEADER = "order_id,ticket_id,event_id,show_id,paid_at,price,quantity,created_at,refunded_at,refunded_amount\n"
GOOD = HEADER + (
    "9001,90011,7,70,2026-11-10 12:00,1500,1,2026-11-10 11:50,,\n"
    "9001,90012,7,70,2026-11-10 12:00,1500.00,1,,,\n"
    "9002,90021,7,71,2026-11-10T15:30:00+03:00,900,,,,\n"
    "9003,90031,7,70,2026-11-10 18:00,1200,1,,2026-11-11 10:00,1200\n"
)
# Sold: 2 tickets of show 70 (3000), 1 of show 71 (900); refunded: 1 of show 70 (1200). All on D.
WANT = {
    (D, 7, 70): (2, Decimal("3000.00"), 1, 1, Decimal("1200.00")),
    (D, 7, 71): (1, Decimal("900.00"), 1, 0, Decimal("0.00")),
}


def run_import(resources, source: str, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [manual_sales_import],
        resources={"clickhouse": resources["clickhouse"]},
        run_config={"ops": {"manual_sales_import": {"config": {"source": source}}}},
        raise_on_error=raise_on_error,
    )


def write(tmp_path, text: str, name: str = "sales.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_csv_fills_staging_marked_manual_and_reaches_the_fact(resources, clickhouse, tmp_path):
    result = run_import(resources, write(tmp_path, GOOD))
    assert fact(clickhouse) == WANT
    assert query(clickhouse, "SELECT count(), uniqExact(source) FROM stg_qtickets_api_orders_raw FINAL "
                             "WHERE source = 'manual'") == [(4, 1)]
    # The fact partition it rebuilt is recorded as materialized, with its own counts.
    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey("fact_qtickets_sales_daily")]
    assert [e.partition for e in events] == [D.isoformat()]
    assert events[0].materialization.metadata["dagster/row_count"].value == 2


def test_reimporting_the_same_file_changes_nothing(resources, clickhouse, tmp_path):
    source = write(tmp_path, GOOD)
    run_import(resources, source)
    rows = physical_rows(clickhouse, "stg_qtickets_api_orders_raw")
    facts = physical_rows(clickhouse, "fact_qtickets_sales_daily")
    again = run_import(resources, source)
    assert again.asset_materializations_for_node("manual_sales_import")[0].metadata["changed"].value is False
    assert physical_rows(clickhouse, "stg_qtickets_api_orders_raw") == rows
    assert physical_rows(clickhouse, "fact_qtickets_sales_daily") == facts
    assert fact(clickhouse) == WANT


def test_a_corrected_file_replaces_the_manual_rows_of_its_days(resources, clickhouse, tmp_path):
    run_import(resources, write(tmp_path, GOOD))
    corrected = GOOD.replace("9002,90021,7,71,2026-11-10T15:30:00+03:00,900,,,,\n", "")
    run_import(resources, write(tmp_path, corrected, "corrected.csv"))
    assert fact(clickhouse) == {(D, 7, 70): WANT[(D, 7, 70)]}


@pytest.mark.parametrize(
    ("line", "column", "bad"),
    [
        (3, "price", "9001,90012,7,70,2026-11-10 12:00,abc,1,,,\n"),
        (3, "paid_at", "9001,90012,7,70,10.11.2026,1500,1,,,\n"),
        (3, "quantity", "9001,90012,7,70,2026-11-10 12:00,1500,0,,,\n"),
        (3, "ticket_id", "9001,90011,7,70,2026-11-10 12:00,1500,1,,,\n"),  # duplicate of line 2
        (3, "refunded_at", "9001,90012,7,70,2026-11-10 12:00,1500,1,,,100\n"),
        (3, "paid_at", "9001,90012,7,70,2099-01-01 12:00,1500,1,,,\n"),
    ],
)
def test_a_bad_row_names_line_and_column_and_loads_nothing(resources, clickhouse, tmp_path, line, column,
                                                           bad):
    lines = GOOD.splitlines(keepends=True)
    text = "".join([lines[0], lines[1], bad, *lines[3:]])
    result = run_import(resources, write(tmp_path, text), raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].event_specific_data.error.cause.message
    assert f"line {line}, column '{column}'" in message
    assert physical_rows(clickhouse, "stg_qtickets_api_orders_raw") == 0


def test_header_problems_are_named(tmp_path):
    now = at(D, 23)
    with pytest.raises(ManualImportError, match="line 1: missing column 'price'"):
        manual.parse_csv(HEADER.replace(",price", ""), now, date(2026, 10, 1))
    with pytest.raises(ManualImportError, match="line 1: unknown column 'prise'"):
        manual.parse_csv(HEADER.replace("price", "prise"), now, date(2026, 10, 1))
    with pytest.raises(ManualImportError, match="no rows"):
        manual.parse_csv(HEADER, now, date(2026, 10, 1))


def test_semicolons_and_decimal_commas_of_a_russian_spreadsheet(tmp_path):
    text = "order_id;ticket_id;event_id;show_id;paid_at;price\n1;11;7;70;2026-11-10 12:00;1 500,50\n"
    [ticket] = manual.parse_csv(text, at(D, 23), date(2026, 10, 1))
    assert ticket.price == Decimal("1500.50") and ticket.paid_at == at(D, 12)


@respx.mock
def test_a_published_google_sheet_is_read_through_its_redirect(resources, clickhouse):
    url = "https://docs.google.com/spreadsheets/d/e/2PACX-test/pub?output=csv"
    target = "https://doc-0s-sheets.googleusercontent.com/pub/test"
    respx.get(url).mock(return_value=httpx.Response(307, headers={"Location": target}))
    respx.get(target).mock(return_value=httpx.Response(200, text=GOOD, headers={"Content-Type": "text/csv"}))
    run_import(resources, url)
    assert fact(clickhouse) == WANT


@respx.mock
def test_an_unpublished_sheet_is_an_error_saying_so():
    url = "https://docs.google.com/spreadsheets/d/e/2PACX-test/pub?output=csv"
    respx.get(url).mock(return_value=httpx.Response(200, text="<html>sign in</html>",
                                                    headers={"Content-Type": "text/html; charset=utf-8"}))
    with pytest.raises(ManualImportError, match="publish the sheet"):
        manual.read_source(url)


def test_api_runs_keep_manual_rows_and_an_api_row_of_the_same_ticket_wins(resources, clickhouse, tmp_path):
    run_import(resources, write(tmp_path, GOOD))
    # The API serves the day later, with one of the manual tickets (same order and ticket id), re-priced.
    api = Source(order(9001, 7, at(D, 11, 50), [basket(90011, 70, 1400)], payed=at(D, 12)))
    materialize(resources, api, D)
    assert query(clickhouse, "SELECT basket_id, source, price FROM stg_qtickets_api_orders_raw FINAL "
                             "ORDER BY basket_id") == [
        (90011, "api", Decimal("1400.00")), (90012, "manual", Decimal("1500.00")),
        (90021, "manual", Decimal("900.00")), (90031, "manual", Decimal("1200.00")),
    ]
    assert fact(clickhouse)[(D, 7, 70)][:2] == (2, Decimal("2900.00"))
    # Re-importing the file leaves the API's ticket alone.
    run_import(resources, write(tmp_path, GOOD))
    sql = "SELECT source, price FROM stg_qtickets_api_orders_raw FINAL WHERE basket_id = 90011"
    assert query(clickhouse, sql) == [("api", Decimal("1400.00"))]


def test_the_scheduled_jobs_never_run_the_import():
    from qtickets_assets import definitions

    defs = definitions.defs
    for name in ("qtickets_refresh", "qtickets_reconcile"):
        job = defs.resolve_job_def(name)
        assert dg.AssetKey("manual_sales_import") not in job.asset_layer.executable_asset_keys
        assert dg.AssetKey("fact_qtickets_sales_daily") in job.asset_layer.executable_asset_keys
