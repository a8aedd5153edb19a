"""Staging assets record the API calls they made (what /metrics reports per asset)."""

import dagster as dg
import pytest

from qtickets_assets.assets import raw
from tests.builders import AS_OF


@pytest.mark.slow
def test_staging_assets_report_requests_and_retries(resources, qtickets):
    result = dg.materialize([raw.stg_qtickets_api_events_raw, raw.stg_qtickets_api_inventory_raw],
                            resources=resources)
    assert result.success
    metadata = {event.asset_key.to_user_string(): event.materialization.metadata
                for event in result.get_asset_materialization_events()}
    events = metadata["stg_qtickets_api_events_raw"]
    assert events["qtickets/api_requests"].value >= 1 and events["qtickets/api_retries"].value == 0
    inventory = metadata["stg_qtickets_api_inventory_raw"]
    shows = qtickets.sandbox().polled_shows(AS_OF)
    assert len(shows) > 5 and inventory["qtickets/api_requests"].value == len(shows)  # one seat map a show
    assert inventory["qtickets/api_retries"].value == 0
