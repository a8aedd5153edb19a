"""deploy/smoke.sh starts the compose services from docker-compose.yml itself (through
deploy/smoke/compose.py), so the smoke test and the user's stack cannot drift apart. These tests hold
that: what compose.py derives for each service is what docker-compose.yml says, and smoke.sh names no
command, variable or volume of its own beyond its declared deviations. The smoke run itself needs
podman and minutes of builds: it is run on demand (docs/RUNBOOK.md), not here."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SMOKE = (ROOT / "deploy" / "smoke.sh").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]

spec = importlib.util.spec_from_file_location("smoke_compose", ROOT / "deploy" / "smoke" / "compose.py")
compose = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compose)


def smoke_array(name: str) -> list[str]:
    return re.search(rf"^{name}=\(([^)]*)\)", SMOKE, re.M).group(1).split()


@pytest.fixture
def env_file(tmp_path):
    """deploy/.env as smoke.sh makes it: the template's values plus the embedded CLICKHOUSE_DSN."""
    sandbox = ("QTICKETS_API_BASE_URL=", "QTICKETS_API_TOKEN=")
    lines = [line for line in (ROOT / "deploy" / "env.sample").read_text().splitlines()
             if re.match(r"^[A-Z_]+=", line) and not line.startswith(sandbox)]
    path = tmp_path / "env"
    path.write_text("\n".join([*lines, "CLICKHOUSE_DSN=chdb:///opt/dagster/warehouse/clickhouse"]) + "\n")
    return path


def derived(tmp_path, env_file) -> dict[str, dict]:
    out = tmp_path / "services"
    out.mkdir()
    assert compose.main([str(ROOT / "docker-compose.yml"), str(env_file), "p-", str(out),
                         *smoke_array("SKIPPED")]) == 0
    result = {}
    for line in (out / "services").read_text().splitlines():
        name, image, restart, awaited = line.split()
        files = {kind: (out / f"{name}.{kind}").read_text() for kind in ("env", "opts", "cmd", "health")}
        result[name] = {
            "image": image, "restart": restart, "awaited": awaited == "yes",
            "env": dict(entry.split("=", 1) for entry in files["env"].splitlines()),
            **{kind: files[kind].split("\0")[:-1] for kind in ("opts", "cmd", "health")},
        }
    return result


def test_every_service_but_the_clickhouse_server_is_started_in_dependency_order(tmp_path, env_file):
    assert smoke_array("SKIPPED") == ["clickhouse"]  # the one service without an image on this machine
    services = derived(tmp_path, env_file)
    assert set(services) == set(SERVICES) - {"clickhouse"}
    order = list(services)
    for name in order:
        for dependency in SERVICES[name].get("depends_on", {}):
            if dependency != "clickhouse":
                assert order.index(dependency) < order.index(name), (dependency, name)
    assert [name for name in order if services[name]["restart"] == "no"] == ["migrate"]  # run to completion
    awaited = {name for name in order if services[name]["awaited"]}
    assert awaited == {"postgres", "code"}  # as depends_on: {condition: service_healthy} says


def test_each_service_gets_the_compose_command_environment_volumes_and_health_check(tmp_path, env_file):
    values = compose.read_env_file(env_file)
    for name, got in derived(tmp_path, env_file).items():
        service = SERVICES[name]
        assert got["cmd"] == service.get("command", []), name
        assert got["image"] == ("build" if "build" in service else service["image"])
        assert got["health"] == [compose.interpolate(part, values)
                                 for part in service.get("healthcheck", {}).get("test", [])], name
        volumes = [got["opts"][i + 1] for i, opt in enumerate(got["opts"]) if opt == "-v"]
        assert volumes == [f"p-{volume}" for volume in service.get("volumes", [])], name
        assert ("--init" in got["opts"]) == bool(service.get("init")), name
        expected = set(service.get("environment", {})) | (set(values) if "env_file" in service else set())
        assert set(got["env"]) == expected, name


def test_environment_is_interpolated_as_compose_does(tmp_path, env_file):
    services = derived(tmp_path, env_file)
    code = services["code"]["env"]
    assert code["POSTGRES_HOST"] == "postgres" and code["POSTGRES_PORT"] == "5432"
    assert code["CLICKHOUSE_DSN"] == "chdb:///opt/dagster/warehouse/clickhouse"  # the env file overrides
    assert services["postgres"]["health"] == ["CMD-SHELL", 'pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB"']
    assert services["postgres"]["env"] == {"POSTGRES_USER": "dagster", "POSTGRES_PASSWORD": "change-me",
                                           "POSTGRES_DB": "dagster"}


@pytest.mark.parametrize(("text", "variables", "expected"), [
    ("${A:-x}", {}, "x"),
    ("${A:-x}", {"A": ""}, "x"),
    ("${A-x}", {"A": ""}, ""),
    ("${A:-http://${U}:${P}@h:8123}", {"U": "u", "P": "p"}, "http://u:p@h:8123"),
    ("${A:-http://${U}@h}", {"A": "chdb:///d"}, "chdb:///d"),
    ("$$A and $A", {"A": "1"}, "$A and 1"),
    ("${A:?set it}", {"A": "v"}, "v"),
])
def test_interpolate(text, variables, expected):
    assert compose.interpolate(text, variables) == expected


def test_a_missing_required_variable_is_named():
    with pytest.raises(compose.ComposeError, match="POSTGRES_PASSWORD: set in deploy/.env"):
        compose.interpolate("${POSTGRES_PASSWORD:?set in deploy/.env}", {})


def test_smoke_script_takes_services_from_compose_and_declares_its_deviations():
    # The services' commands come from docker-compose.yml, never from the script.
    commands = [" ".join(service["command"][:2]) for service in SERVICES.values() if "command" in service]
    assert len(commands) == len(SERVICES) - 2  # all but the two database images
    for command in commands:
        assert command not in SMOKE, command
    assert '"$ROOT/docker-compose.yml' in SMOKE and "compose.py" in SMOKE
    # What differs from compose, and nothing else: the warehouse volume where runs execute, the
    # embedded DSN in the env file, the sandbox API (no base URL or token).
    assert smoke_array("RUNS_WHERE") == ["migrate", "code"]
    assert all(name in SERVICES for name in smoke_array("RUNS_WHERE"))
    assert re.findall(r"^\s*echo \"([A-Z_]+)=", SMOKE, re.M) == ["CLICKHOUSE_DSN"]
