"""Server mode: clickhouse-connect over HTTP(S) with compression and timeouts from settings."""

import socket
import time

import pytest

from qtickets_assets.definitions import build_resources
from qtickets_assets.settings import SettingsError, get_settings
from qtickets_assets.warehouse.resource import ClickHouseResource


@pytest.fixture
def env(monkeypatch):
    for name in ("CLICKHOUSE_DSN", "CLICKHOUSE_CLUSTER", "CLICKHOUSE_COMPRESS", "QTICKETS_API_BASE_URL",
                 "CLICKHOUSE_CONNECT_TIMEOUT_S", "CLICKHOUSE_SEND_RECEIVE_TIMEOUT_S", "QTICKETS_ENV_FILE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_server_options_come_from_settings(env):
    env.setenv("CLICKHOUSE_DSN", "https://loader:pw@ch.internal:8443")
    env.setenv("CLICKHOUSE_COMPRESS", "zstd")
    env.setenv("CLICKHOUSE_CONNECT_TIMEOUT_S", "3")
    env.setenv("CLICKHOUSE_SEND_RECEIVE_TIMEOUT_S", "45")
    options = build_resources(get_settings())["clickhouse"].client_options()
    assert options["compress"] == "zstd"
    assert (options["connect_timeout"], options["send_receive_timeout"]) == (3, 45)
    assert options["autogenerate_session_id"] is False


def test_compression_can_be_switched_off_and_embedded_gets_no_http_options(tmp_path):
    server = ClickHouseResource(dsn="http://ch:8123", compress="none")
    assert server.client_options()["compress"] is False
    assert ClickHouseResource(dsn=f"chdb://{tmp_path}/clickhouse").client_options() == {}


@pytest.mark.parametrize(
    ("name", "value"), [("CLICKHOUSE_COMPRESS", "snappy"), ("CLICKHOUSE_SEND_RECEIVE_TIMEOUT_S", "0.5")]
)
def test_bad_server_option_is_named(env, name, value):
    env.setenv("CLICKHOUSE_DSN", "http://ch:8123")
    env.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        get_settings()


def test_a_server_that_never_answers_times_out_without_leaking_the_password():
    """A listening socket that never replies: the read timeout ends the wait, not a hang of 300 s."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        clickhouse = ClickHouseResource(
            dsn=f"http://loader:s3cret-pw@127.0.0.1:{port}", connect_timeout_s=1, send_receive_timeout_s=1
        )
        started = time.monotonic()
        with pytest.raises(Exception) as error, clickhouse.get_client():
            pass
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 5, elapsed
    assert "timed out" in str(error.value).lower()
    assert "s3cret-pw" not in str(error.value)
