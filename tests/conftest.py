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

from qtickets_assets.qtickets.resource import QTicketsResource  # noqa: E402
from qtickets_assets.warehouse.io_manager import ClickHouseIOManager  # noqa: E402
from qtickets_assets.warehouse.resource import ClickHouseResource  # noqa: E402
from tests.builders import AS_OF, OPENED_ON  # noqa: E402


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
