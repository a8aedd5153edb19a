import dagster as dg

from qtickets_assets.definitions import build_definitions, defs
from qtickets_assets.settings import Settings


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"stg_qtickets_api_orders_raw", "fact_qtickets_sales_daily", "v_sales_14d"} <= keys


def test_embedded_default_runs_steps_in_one_process(tmp_path):
    embedded = build_definitions(Settings(qtickets_data_dir=tmp_path))
    server = build_definitions(Settings(clickhouse_dsn="http://localhost:8123"))
    assert embedded.executor is dg.in_process_executor
    assert server.executor is dg.multiprocess_executor


def test_every_table_asset_names_its_table_and_columns(tmp_path):
    definitions = build_definitions(Settings(qtickets_data_dir=tmp_path, clickhouse_database="bi"))
    graph = definitions.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    # 3 staging tables, 3 marts, 4 views: every asset but the manual import (it writes a staging table) is
    # a table or a view.
    tables = [key for key in keys if key != dg.AssetKey("manual_sales_import")]
    assert len(tables) == len(keys) - 1 >= 10
    for key in tables:
        metadata = graph.get(key).metadata
        name = key.path[-1]
        assert metadata["dagster/table_name"] == f"bi.{name}"
        columns = {c.name: c.type for c in metadata["dagster/column_schema"].columns}
        assert columns, name
    fact = graph.get(dg.AssetKey("fact_qtickets_sales_daily")).metadata["dagster/column_schema"]
    assert [(c.name, c.type) for c in fact.columns][:4] == [
        ("sales_date", "Date"), ("event_id", "UInt64"), ("show_id", "UInt64"), ("tickets_sold", "UInt64")
    ]
    assert "clickhouse/key" in graph.get(dg.AssetKey("stg_qtickets_api_orders_raw")).metadata  # ours stay
