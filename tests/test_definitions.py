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
