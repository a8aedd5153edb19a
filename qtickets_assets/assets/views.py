"""BI views. Their definitions live in clickhouse_migrations/; materializing a view asset proves it is
queryable over fresh data and records its size."""


import dagster as dg

from ..warehouse.resource import ClickHouseResource


def _view_asset(name: str, deps: list[str], description: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, deps=deps, group_name="bi_views", kinds={"clickhouse", "view"}, description=description)
    def _view(clickhouse: ClickHouseResource) -> dg.MaterializeResult:
        with clickhouse.get_client() as client:
            rows = client.query(f"SELECT count() FROM {name}").result_rows[0][0]
        return dg.MaterializeResult(metadata={"dagster/row_count": rows})

    return _view


v_sales_14d = _view_asset(
    "v_sales_14d", ["fact_qtickets_sales_daily"],
    "Tickets sold and revenue per (Moscow sales date, event) over the last 14 days.",
)
