import json
import socket
import subprocess
import sys

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


def test_migrate_connects_to_the_server_dsn_from_the_environment(env, capsys):
    port = refused_port()
    env.setenv("CLICKHOUSE_DSN", f"http://loader:s3cret-pw@127.0.0.1:{port}")
    env.setenv("CLICKHOUSE_CONNECT_TIMEOUT_S", "2")
    assert main(["migrate"]) == 1
    message = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in message, message  # not the default localhost:8123
    assert "s3cret-pw" not in message


def test_migrate_embedded_applies_then_finds_nothing(env, tmp_path, capsys):
    env.setenv("CLICKHOUSE_DSN", f"chdb://{tmp_path}/warehouse")
    assert main(["migrate"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["applied"] and first["dsn"] == f"chdb://{tmp_path}/warehouse"
    assert main(["migrate"]) == 0
    assert json.loads(capsys.readouterr().out)["applied"] == []


# -- errors an operator can act on (issue 11, item 6) ---------------------------------------------------

API = "https://qtickets.example.com/api/rest/v1/"


@pytest.mark.parametrize("hours", ["nan", "inf", "-inf", "0", "-3", "soon"])
def test_since_hours_must_be_a_finite_positive_number(env, hours, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["load", "--since-hours", hours])
    assert exited.value.code == 2
    assert "--since-hours" in capsys.readouterr().err


@pytest.fixture
def real_api(env, respx_mock):
    """A configured real API: every call it gets is recorded (the warehouse checks must come first)."""
    env.setenv("QTICKETS_API_BASE_URL", API)
    env.setenv("QTICKETS_API_TOKEN", "tok-0042")
    env.delenv("DAGSTER_HOME", raising=False)
    return respx_mock.route(host="qtickets.example.com").respond(json={"data": []})


def test_a_dead_server_dsn_fails_before_the_download_naming_host_and_port(env, real_api, capsys):
    port = refused_port()
    env.setenv("CLICKHOUSE_DSN", f"http://loader:s3cret-pw@127.0.0.1:{port}")
    env.setenv("CLICKHOUSE_CONNECT_TIMEOUT_S", "2")
    assert main(["load", "--since-hours", "2"]) == 1
    out, err = capsys.readouterr()
    assert real_api.call_count == 0
    assert f"ClickHouse server 127.0.0.1:{port} (CLICKHOUSE_DSN) does not answer: [Errno 111]" in err
    assert "s3cret-pw" not in out + err
    # One line naming the cause, not Dagster's event log with its traces.
    assert [line for line in err.splitlines() if line.strip()] == [err.strip()]
    assert err.startswith("load failed: ") and "--verbose" in err


def test_an_unusable_data_path_fails_before_the_download(env, real_api, tmp_path, capsys):
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("")
    env.setenv("CLICKHOUSE_DSN", f"chdb://{a_file}")
    assert main(["load", "--since-hours", "2"]) == 1
    assert real_api.call_count == 0
    err = capsys.readouterr().err
    assert f"{a_file} is a file, not a directory" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_two_processes_create_a_fresh_dagster_home_at_once(tmp_path):
    # Issue 11 item 6: two `load`s on a fresh DAGSTER_HOME crashed with `table runs already exists`.
    script = ("import os, sys; os.environ['DAGSTER_HOME'] = sys.argv[1]\n"
              "from qtickets_assets.loader import _instance\n"
              "with _instance() as instance: instance.get_runs(limit=1)\n")
    for attempt in range(2):
        home = tmp_path / f"home{attempt}"
        starts = [subprocess.Popen([sys.executable, "-c", script, str(home)], stderr=subprocess.PIPE,
                                   text=True) for _ in range(3)]
        errors = [process.communicate(timeout=120)[1] for process in starts]
        assert all(process.returncode == 0 for process in starts), errors
