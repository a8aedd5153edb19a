"""Fixtures of the asset tests: a controllable QTickets API (respx) and a temp webhook store."""

import pytest
import respx

from qtickets_assets.webhooks.store import HookStore
from tests.builders import API, FakeApi


@pytest.fixture
def api():
    fake = FakeApi()
    with respx.mock(assert_all_called=False) as mock:
        mock.route(url__startswith=API).mock(side_effect=fake)
        yield fake


@pytest.fixture
def hooks(tmp_path) -> HookStore:
    return HookStore(tmp_path / "hooks.sqlite3")
