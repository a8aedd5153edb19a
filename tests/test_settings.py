import os

import pytest

from qtickets_assets.settings import Settings, SettingsError, get_settings


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch):
    for name in ("QTICKETS_API_BASE_URL", "QTICKETS_API_TOKEN", "CLICKHOUSE_DSN", "CLICKHOUSE_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults_are_embedded_chdb_and_sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("QTICKETS_DATA_DIR", str(tmp_path))
    settings = get_settings()
    assert settings.uses_sandbox and settings.embedded
    assert settings.resolved_clickhouse_dsn == f"chdb://{tmp_path}/clickhouse"
    assert settings.clickhouse_database == "zakaz"


def test_server_dsn_is_not_embedded():
    assert not Settings(clickhouse_dsn="https://u:p@ch.example:8443").embedded


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QTICKETS_PARTITIONS_START", "yesterday"),
        ("CLICKHOUSE_DSN", "tcp://localhost:9000"),
        ("CLICKHOUSE_DATABASE", "zakaz; DROP"),
        ("QTICKETS_API_BASE_URL", "not a url"),
        ("QTICKETS_REPAIR_MAX_DAYS", "-1"),
        ("QTICKETS_REPAIR_MAX_EVENTS", "many"),
        ("QTICKETS_SANDBOX_RESALES", "300044@2026-11-21T12:05:00"),  # no offset
        ("QTICKETS_SANDBOX_RESALES", "show@2026-11-21T12:05:00+03:00"),
    ],
)
def test_bad_value_names_the_setting(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        get_settings()


def test_repair_caps_reach_the_resources_that_apply_them():
    from qtickets_assets.definitions import build_resources

    resources = build_resources(Settings(qtickets_repair_max_days=3, qtickets_repair_max_events=4))
    assert resources["clickhouse"].repair_max_days == 3 and resources["qtickets"].repair_max_events == 4


def test_real_api_requires_token_and_never_echoes_it(monkeypatch):
    monkeypatch.setenv("QTICKETS_API_BASE_URL", "https://qtickets.ru/api/rest/v1/")
    with pytest.raises(SettingsError, match="QTICKETS_API_TOKEN"):
        get_settings()
    get_settings.cache_clear()
    monkeypatch.setenv("QTICKETS_API_TOKEN", "s3cr3t-token")
    monkeypatch.setenv("QTICKETS_SANDBOX_AS_OF", "2026-11-20T12:00:00")  # naive: rejected
    with pytest.raises(SettingsError) as error:
        get_settings()
    assert "QTICKETS_SANDBOX_AS_OF" in str(error.value)
    assert "s3cr3t-token" not in str(error.value)


def test_env_file_is_read(tmp_path, monkeypatch):
    env_file = tmp_path / "prod.env"
    env_file.write_text("CLICKHOUSE_DATABASE=analytics\n")
    monkeypatch.setenv("QTICKETS_ENV_FILE", str(env_file))
    monkeypatch.delenv("CLICKHOUSE_DATABASE", raising=False)
    try:
        assert get_settings().clickhouse_database == "analytics"
    finally:
        os.environ.pop("CLICKHOUSE_DATABASE", None)  # load_env_file exported it


def test_webhook_store_defaults_to_the_data_dir_and_the_secret_stays_hidden(tmp_path, monkeypatch):
    monkeypatch.setenv("QTICKETS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QTICKETS_WEBHOOK_SECRET", "hook-secret-5d1")
    settings = get_settings()
    assert settings.webhook_store_path == tmp_path / "webhooks.sqlite3"
    assert "hook-secret-5d1" not in repr(settings)
    assert settings.qtickets_webhook_secret.get_secret_value() == "hook-secret-5d1"
    store = tmp_path / "x" / "h.db"
    assert Settings(qtickets_webhook_store=store).webhook_store_path == store


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_token_is_refused_naming_the_variable(monkeypatch, value):
    # Issue 11 item 6: `QTICKETS_API_TOKEN=` passed, then 78 s of retries naming no variable.
    monkeypatch.setenv("QTICKETS_API_BASE_URL", "https://qtickets.ru/api/rest/v1/")
    monkeypatch.setenv("QTICKETS_API_TOKEN", value)
    with pytest.raises(SettingsError, match="QTICKETS_API_TOKEN: required .* empty"):
        get_settings()


def test_partitions_cannot_start_in_the_future(monkeypatch):
    monkeypatch.setenv("QTICKETS_PARTITIONS_START", "2999-01-01")
    with pytest.raises(SettingsError, match=r"QTICKETS_PARTITIONS_START: 2999-01-01 is after today"):
        get_settings()
    get_settings.cache_clear()
    # A frozen sandbox is the source's clock: the first partition must not come after its instant.
    monkeypatch.setenv("QTICKETS_PARTITIONS_START", "2026-11-22")
    monkeypatch.setenv("QTICKETS_SANDBOX_AS_OF", "2026-11-21T12:00:00+03:00")
    with pytest.raises(SettingsError, match=r"QTICKETS_PARTITIONS_START: 2026-11-22 is after .*2026-11-21"):
        get_settings()
