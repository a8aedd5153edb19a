"""Shared fixtures: a real chDB warehouse in a temp directory and a sandbox frozen at a known instant."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg
import pytest

# Tests never read a developer's .env or data directory.
os.environ.pop("QTICKETS_ENV_FILE", None)
os.environ.setdefault("QTICKETS_DATA_DIR", "/tmp/qtickets-assets-tests-unused")
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from qtickets_assets.cli import stop_on_sigterm  # noqa: E402
from qtickets_assets.qtickets.resource import QTicketsResource  # noqa: E402
from qtickets_assets.warehouse.io_manager import ClickHouseIOManager  # noqa: E402
from qtickets_assets.warehouse.resource import ClickHouseResource  # noqa: E402
from tests.builders import AS_OF, MSK, OPENED_ON  # noqa: E402

# Started in the background (`setsid bash .ci/run &`) the suite inherits an ignored SIGINT, passes it to the
# processes it starts, and Dagster's in-process runs copy it to SIGTERM: restore both, as the CLI does.
stop_on_sigterm()


@pytest.fixture
def clickhouse(tmp_path: Path) -> ClickHouseResource:
    return ClickHouseResource(dsn=f"chdb://{tmp_path / 'clickhouse'}", lock_timeout_s=5)


@pytest.fixture
def qtickets() -> QTicketsResource:
    return QTicketsResource(sandbox_opened_on=OPENED_ON, sandbox_as_of=AS_OF.isoformat())


@pytest.fixture
def resources(clickhouse: ClickHouseResource, qtickets: QTicketsResource) -> dict[str, object]:
    return {"clickhouse": clickhouse, "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
            "qtickets": qtickets}


@pytest.fixture(scope="session")
def bi_warehouse(tmp_path_factory) -> ClickHouseResource:
    """The whole graph over the last 14 Moscow days of a sandbox frozen at the current hour (dashboards ask
    for "today", so this one fixture follows the real clock), after weekly inventory runs over the 4 weeks
    before: shows on sale and final ones both exist."""
    from datetime import UTC, datetime, timedelta

    from qtickets_assets.assets import checks, marts, raw, views

    directory = tmp_path_factory.mktemp("bi") / "clickhouse"
    clickhouse = ClickHouseResource(dsn=f"chdb://{directory}", lock_timeout_s=5)
    now = datetime.now(UTC).astimezone(MSK).replace(minute=0, second=0, microsecond=0)
    assets = dg.load_assets_from_modules([raw, marts, views])
    inventory = ["stg_qtickets_api_events_raw", "stg_qtickets_api_inventory_raw", "dim_events",
                 "fact_qtickets_inventory_latest"]
    # Shows start every few days: weekly polls over four weeks leave some final ones.
    polls = [(now - timedelta(days=d), inventory, None) for d in (28, 21, 14, 7)]
    for moment, selection, days in [*polls, (now, None, 14)]:
        qtickets = QTicketsResource(
            sandbox_opened_on=OPENED_ON, sandbox_as_of=moment.isoformat(), per_page=1000
        )
        resources = {"clickhouse": clickhouse, "clickhouse_io": ClickHouseIOManager(clickhouse=clickhouse),
                     "qtickets": qtickets}
        tags = {"dagster/asset_partition_range_start": (now.date() - timedelta(days=days - 1)).isoformat(),
                "dagster/asset_partition_range_end": now.date().isoformat()} if days else None
        result = dg.materialize([*assets, *dg.load_asset_checks_from_modules([checks])], resources=resources,
                                selection=selection, tags=tags)
        assert result.success
    return clickhouse
