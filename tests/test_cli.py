import json
import socket

import pytest

from qtickets_assets.cli import main
from qtickets_assets.settings import get_settings


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("QTICKETS_API_BASE_URL", "QTICKETS_API_TOKEN", "CLICKHOUSE_DSN", "CLICKHOUSE_CLUSTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QTICKETS_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def refused_port() -> int:
    """A local port that nothing listens on: bound, then closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_migrate_connects_to_the_server_dsn_from_the_environment(env):
    port = refused_port()
    env.setenv("CLICKHOUSE_DSN", f"http://loader:s3cret-pw@127.0.0.1:{port}")
    env.setenv("CLICKHOUSE_CONNECT_TIMEOUT_S", "2")
    with pytest.raises(Exception) as failure:  # noqa: B017 - the driver's error type is not the point
        main(["migrate"])
    message = str(failure.value)
    assert f"127.0.0.1:{port}" in message, message  # not the default localhost:8123
    assert "s3cret-pw" not in message


def test_migrate_embedded_applies_then_finds_nothing(env, tmp_path, capsys):
    env.setenv("CLICKHOUSE_DSN", f"chdb://{tmp_path}/warehouse")
    assert main(["migrate"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["applied"] and first["dsn"] == f"chdb://{tmp_path}/warehouse"
    assert main(["migrate"]) == 0
    assert json.loads(capsys.readouterr().out)["applied"] == []
