"""The production files: docker-compose.yml, Dockerfile, deploy/ (dagster.yaml, workspace.yaml, env
template, constraints). No Docker engine runs here: these tests check what can be checked without one,
that the files parse, agree with each other and reference files that exist, and that the production
Dagster instance config passes Dagster's own validation."""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import ConcurrencyConfig, dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import pg_url_from_config
from packaging.requirements import Requirement
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ["migrate", "code", "webserver", "daemon", "serve"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
ENV_SAMPLE = dict(  # the uncommented variables of the secrets template
    line.split("=", 1) for line in (DEPLOY / "env.sample").read_text().splitlines()
    if re.match(r"^[A-Z_]+=", line)
)
POSTGRES_STORAGE = resolve_to_config_type(DagsterPostgresStorage.config_type())
PG_ENV = {"POSTGRES_USER": "dagster", "POSTGRES_PASSWORD": "pw-9f3", "POSTGRES_DB": "dagster",
          "POSTGRES_HOST": "postgres", "POSTGRES_PORT": "5432"}


def _image_path(container_path: str) -> Path:
    """A file the image holds at /app/<x> comes from <repo>/<x> (Dockerfile: WORKDIR /app, COPY)."""
    assert container_path.startswith("/app/"), container_path
    return ROOT / container_path.removeprefix("/app/")


def _version(tag: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.match(r"^(\d+(?:\.\d+)*)", tag).group(1).split("."))


# --- docker-compose.yml --------------------------------------------------------------------------------

def test_compose_has_the_stack():
    assert set(SERVICES) == {"clickhouse", "postgres", *APP_SERVICES}
    clickhouse = SERVICES["clickhouse"]["image"]
    name, tag = clickhouse.split(":")
    assert name == "clickhouse/clickhouse-server"
    assert _version(tag) >= (25, 8) and len(_version(tag)) == 4, "pin an exact release, 25.8 LTS or newer"
    postgres_name, postgres_tag = SERVICES["postgres"]["image"].split(":")
    assert postgres_name == "postgres" and len(_version(postgres_tag)) == 2


def test_long_running_services_have_health_checks_and_volumes_are_declared():
    for name, service in SERVICES.items():
        if name != "migrate":
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
            assert service["restart"] == "unless-stopped", name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):  # a bind mount of a file in this repository
                assert (ROOT / source).is_file(), f"{name}: {source} does not exist"
            else:
                assert source in COMPOSE["volumes"], f"{name}: volume {source} is not declared"
    assert "clickhouse-data" in COMPOSE["volumes"] and "postgres-data" in COMPOSE["volumes"]


def test_app_services_run_one_image_with_the_secrets_file():
    for name in APP_SERVICES:
        service = SERVICES[name]
        assert service["build"] == "." and (ROOT / "Dockerfile").is_file()
        assert service["image"] == SERVICES["code"]["image"]
        env_file = service["env_file"]
        assert env_file == "deploy/.env" and (DEPLOY / "env.sample").is_file()  # template of the secrets file
    assert ".env" in (ROOT / ".gitignore").read_text().split()  # deploy/.env is never committed


def test_compose_dependencies_order_the_start():
    code = SERVICES["code"]["depends_on"]
    assert code["migrate"]["condition"] == "service_completed_successfully"
    assert code["clickhouse"]["condition"] == code["postgres"]["condition"] == "service_healthy"
    for name in ("webserver", "daemon"):
        assert SERVICES[name]["depends_on"]["code"]["condition"] == "service_healthy"


def test_clickhouse_dsn_points_at_the_http_port():
    dsn = SERVICES["code"]["environment"]["CLICKHOUSE_DSN"]
    default = re.fullmatch(r"\$\{CLICKHOUSE_DSN:-(.+)\}", dsn).group(1)
    assert re.fullmatch(r"http://\$\{CLICKHOUSE_USER\}:\$\{CLICKHOUSE_PASSWORD\}@clickhouse:8123", default)
    assert "127.0.0.1:8123:8123" in SERVICES["clickhouse"]["ports"]


def test_every_interpolated_variable_is_in_the_env_template():
    text = (ROOT / "docker-compose.yml").read_text()
    names = set(re.findall(r"\$\{([A-Z_]+)", text))
    assert names >= {"CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "POSTGRES_PASSWORD"}
    optional = {"CLICKHOUSE_DSN"}  # has a default built from the others
    assert names - optional <= set(ENV_SAMPLE), names - optional - set(ENV_SAMPLE)


def test_commands_reference_files_and_modules_that_exist():
    workspace_paths = []
    for name in APP_SERVICES:
        command = SERVICES[name]["command"]
        if "-w" in command:
            workspace_paths.append(command[command.index("-w") + 1])
        if "-m" in command:
            assert importlib.util.find_spec(command[command.index("-m") + 1]) is not None
    assert workspace_paths and all(_image_path(path).is_file() for path in workspace_paths)
    assert SERVICES["migrate"]["command"][0] in tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "project"]["scripts"]


def test_serve_is_checked_on_the_health_route_and_shares_the_hook_store_with_the_runs():
    from qtickets_assets.cli import build_parser

    serve = SERVICES["serve"]
    command = serve["command"]
    args = build_parser().parse_args(command[1:])
    assert command[0] == "qtickets-assets" and args.command == "serve" and args.host == "0.0.0.0"
    assert f"127.0.0.1:{args.port}:{args.port}" in serve["ports"]
    check = " ".join(serve["healthcheck"]["test"])
    assert f"http://localhost:{args.port}/healthz/qtickets_api" in check
    # The store lives in QTICKETS_DATA_DIR (the image's ENV) on one named volume: the receiver writes it,
    # the sensor (evaluated in the code server for the daemon) and the runs (code server) read it, and
    # it survives a container's restart.
    data_dir = re.search(r"QTICKETS_DATA_DIR=(\S+)", DOCKERFILE).group(1)
    for name in ("serve", "code", "daemon"):
        mounts = [volume.split(":") for volume in SERVICES[name]["volumes"]]
        assert any(source in COMPOSE["volumes"] and data_dir.startswith(target.rstrip("/") + "/")
                   for source, target, *_ in mounts), name
    assert {tuple(v.split(":")[:2]) for v in serve["volumes"]} == {
        tuple(v.split(":")[:2]) for v in SERVICES["code"]["volumes"]}
    assert "QTICKETS_WEBHOOK_SECRET" in (DEPLOY / "env.sample").read_text()
    assert "3001" in re.search(r"^EXPOSE (.+)$", DOCKERFILE, re.M).group(1).split()


def test_workspace_points_at_the_code_service():
    [location] = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    grpc = location["grpc_server"]
    command = SERVICES["code"]["command"]
    assert grpc["host"] == "code" and str(grpc["port"]) == command[command.index("-p") + 1]
    assert grpc["location_name"] == command[command.index("--location-name") + 1]


# --- Dockerfile -----------------------------------------------------------------------------------------

def test_dockerfile_is_slim_pinned_and_non_root():
    # The base is a build argument (a local stand-in where no registry is reachable: deploy/smoke.sh)
    # whose default is the pinned official image.
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", DOCKERFILE, re.M)
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    healthcheck = r"^HEALTHCHECK .*\n?.*CMD \[\"dagster\", \"api\", \"grpc-health-check\""
    assert re.search(healthcheck, DOCKERFILE, re.M)
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user and user[-1] not in ("root", "0")
    install = r'pip install --constraint deploy/constraints.txt "\.\[postgres\]"'  # plain, not editable
    assert re.search(install, DOCKERFILE)
    assert "ENV" in DOCKERFILE and "DAGSTER_HOME=/opt/dagster/home" in DOCKERFILE
    assert "deploy/dagster.yaml /opt/dagster/home/dagster.yaml" in DOCKERFILE


def test_dockerfile_copies_files_that_exist_and_keeps_secrets_out():
    copies = re.findall(r"^COPY (?:--\S+ )*(.+)$", DOCKERFILE, re.M)
    sources = [part for line in copies for part in line.split()[:-1]]
    assert sources and all((ROOT / source).exists() for source in sources), sources
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"**/.env", ".venv", ".git", ".data", ".dagster_home"} <= set(ignored)


def test_constraints_pin_every_dependency_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    for spec in project["dependencies"] + project["optional-dependencies"]["postgres"]:
        requirement = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{name} is not pinned in deploy/constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} outside {requirement}"
    assert pins["dagster-postgres"] == "0.29.27"


# --- deploy/dagster.yaml --------------------------------------------------------------------------------

@pytest.fixture
def pg_env(monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_production_instance_config_validates(pg_env, tmp_path):
    config, custom_class = dagster_instance_config(str(DEPLOY), "dagster.yaml")
    assert custom_class is None and config["telemetry"]["enabled"] is False
    assert config["freshness"]["enabled"] is True
    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(DEPLOY))

    storage = ref.storage_data
    assert (storage.module_name, storage.class_name) == ("dagster_postgres", "DagsterPostgresStorage")
    resolved = process_config(POSTGRES_STORAGE, storage.config_dict)
    assert resolved.success, resolved.errors
    db = resolved.value["postgres_db"]
    assert (db["username"], db["password"], db["hostname"], db["db_name"], db["port"]) == (
        "dagster", "pw-9f3", "postgres", "dagster", 5432)
    # The URL's driver must be one that is installed (SQLAlchemy 2.1's default for "postgresql" is not).
    url = make_url(pg_url_from_config(resolved.value))
    assert url.get_dialect().import_dbapi().__name__ == "psycopg2"

    coordinator = ref.run_coordinator_data.rehydrate(QueuedRunCoordinator)
    queue = ConcurrencyConfig.from_concurrency_settings(
        config["concurrency"], coordinator.get_run_queue_config()
    )
    assert queue.run_queue_config.max_concurrent_runs == 4
    assert [(limit["key"], limit["limit"]) for limit in queue.run_queue_config.tag_concurrency_limits] == [
        ("dagster/backfill", 2)]
    assert queue.pool_config.default_pool_limit == 1  # one writer per table (each table is a pool)
    assert config["run_monitoring"]["enabled"] is True
    assert isinstance(ref.run_launcher_data.rehydrate(), DefaultRunLauncher)
    assert ref.compute_logs_data.config_dict["base_dir"].startswith("/opt/dagster/storage/")


def test_a_missing_credential_is_named(pg_env, tmp_path):
    pg_env.delenv("POSTGRES_PASSWORD")
    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(DEPLOY))
    resolved = process_config(POSTGRES_STORAGE, ref.storage_data.config_dict)
    assert not resolved.success
    assert "POSTGRES_PASSWORD" in str([error.message for error in resolved.errors])


def test_instance_credentials_come_from_env_template_and_compose():
    text = (DEPLOY / "dagster.yaml").read_text()
    names = set(re.findall(r"env: ([A-Z_]+)", text))
    assert names == set(PG_ENV)
    from_compose = set(SERVICES["code"]["environment"])
    assert names <= set(ENV_SAMPLE) | from_compose, names - set(ENV_SAMPLE) - from_compose
    assert "password:" in text and "pw" not in text.replace("password", "")  # no literal secret in the file


# --- docs/RUNBOOK.md ------------------------------------------------------------------------------------

def test_runbook_covers_the_operations_and_names_files_that_exist():
    runbook = (ROOT / "docs" / "RUNBOOK.md").read_text()
    headings = re.findall(r"^##+ (.+)$", runbook, re.M)
    for topic in ("Deploy", "Upgrade", "Rotate", "Backfill", "Alerts", "restore", "Scale-out"):
        assert any(topic in heading for heading in headings), topic
    paths = set(re.findall(r"`((?:deploy|docs|tests|clickhouse_migrations)/[\w./-]+\.\w+|Dockerfile|"
                           r"docker-compose\.yml)`", runbook))
    assert "deploy/dagster.yaml" in paths
    missing = {path for path in paths if path != "deploy/.env" and not (ROOT / path).exists()}
    assert not missing, missing


def test_bi_reader_is_read_only_with_its_password_from_the_env():
    """The BI account: mounted into users.d, password from CLICKHOUSE_BI_PASSWORD (compose refuses to
    start without it, so the account never has an empty password), read-only profile, SELECT on the
    database only."""
    import xml.etree.ElementTree as ET

    clickhouse = SERVICES["clickhouse"]
    mount = "./deploy/clickhouse/bi_reader.xml:/etc/clickhouse-server/users.d/bi_reader.xml:ro"
    assert mount in clickhouse["volumes"]
    password_env = clickhouse["environment"]["CLICKHOUSE_BI_PASSWORD"]
    assert password_env == "${CLICKHOUSE_BI_PASSWORD:?set in deploy/.env}"
    assert "CLICKHOUSE_BI_PASSWORD" in ENV_SAMPLE
    root = ET.parse(DEPLOY / "clickhouse" / "bi_reader.xml").getroot()
    user = root.find("users/bi_reader")
    password = user.find("password")
    assert password.get("from_env") == "CLICKHOUSE_BI_PASSWORD" and not (password.text or "").strip()
    profile = root.find(f"profiles/{user.findtext('profile')}")
    assert profile.findtext("readonly") in ("1", "2")
    grants = [q.text.strip() for q in user.findall("grants/query")]
    assert grants == [f"GRANT SELECT ON {ENV_SAMPLE['CLICKHOUSE_DATABASE']}.*"]
