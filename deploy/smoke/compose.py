"""docker-compose.yml, service by service, as `podman run` inputs for deploy/smoke.sh.

The smoke test starts the compose services itself (no compose tool here), so it takes each service's
command, environment, volumes and health check from docker-compose.yml rather than from a copy that
could drift. It writes into OUTDIR `services`: one line per service that is not skipped, in start order
(depends_on), "NAME IMAGE RESTART AWAITED" (IMAGE "build" for the project's image; AWAITED "yes" when
another service waits for its health check: depends_on condition service_healthy); and for each one:
  SERVICE.env     the container's environment: `env_file` values, then `environment` interpolated from
                  the env file (what `docker compose --env-file deploy/.env` does)
  SERVICE.opts    podman run options, NUL-separated: --init, -v <PREFIX><volume>:<path>
  SERVICE.cmd     the command, NUL-separated (empty: the image's default)
  SERVICE.health  the health check test, NUL-separated (CMD or CMD-SHELL first; empty: none)

usage: python compose.py COMPOSE_FILE ENV_FILE PREFIX OUTDIR [SKIPPED_SERVICE...]
Runs with PyYAML, which the application image has.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME, and $$ (a literal $)
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
                       r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>(?:[^{}]|\{[^{}]*\})*))?\})")


class ComposeError(ValueError):
    pass


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's variable substitution (https://docs.docker.com/compose/how-tos/environment-variables/)."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["plain"] or match["braced"]
        current = variables.get(name)
        op = match["op"]
        if op is None:
            return current or ""
        unset = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return interpolate(match["arg"], variables) if unset else current
        if unset:
            raise ComposeError(f"{name}: {match['arg'] or 'required'}")
        return current

    return _VARIABLE.sub(substitute, value)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped, one level of quotes removed."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def service_inputs(compose: dict, service: str, env: dict[str, str], prefix: str) -> dict[str, list[str]]:
    spec = compose["services"][service]
    environment = dict(env) if spec.get("env_file") else {}
    declared = spec.get("environment") or {}
    if isinstance(declared, list):
        declared = dict(item.partition("=")[::2] for item in declared)
    for name, value in declared.items():
        environment[name] = interpolate(str(value), env)
    opts = ["--init"] if spec.get("init") else []
    for volume in spec.get("volumes") or []:
        source, target, *mode = volume.split(":")
        if source not in (compose.get("volumes") or {}):
            raise ComposeError(f"{service}: only named volumes are supported here, not {source}")
        opts += ["-v", ":".join([prefix + source, target, *mode])]
    test = (spec.get("healthcheck") or {}).get("test") or []
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    return {
        "env": [f"{name}={value}" for name, value in environment.items()],
        "opts": opts,
        "cmd": [interpolate(part, env) for part in spec.get("command") or []],
        "health": [interpolate(part, env) for part in test],
    }


def start_order(compose: dict, skipped: set[str]) -> list[str]:
    """Services in an order that starts each after what it depends on (ties: file order)."""
    services = compose["services"]
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ComposeError(f"depends_on cycle: {' -> '.join((*path, name))}")
        if name in order or name in skipped:
            return
        for dependency in services[name].get("depends_on") or []:
            visit(dependency, (*path, name))
        order.append(name)

    for name in services:
        visit(name, ())
    return order


def main(argv: list[str]) -> int:
    compose_file, env_file, prefix, outdir, *skipped = argv
    compose = yaml.safe_load(Path(compose_file).read_text())
    env = read_env_file(Path(env_file))
    services = start_order(compose, set(skipped))
    awaited = {dependency for spec in compose["services"].values()
               for dependency, condition in (spec.get("depends_on") or {}).items()
               if isinstance(condition, dict) and condition.get("condition") == "service_healthy"}
    lines = []
    for service in services:
        spec = compose["services"][service]
        image = "build" if "build" in spec else spec["image"]
        waited_for = "yes" if service in awaited else "no"
        lines.append(f"{service} {image} {spec.get('restart', 'no')} {waited_for}\n")
    Path(outdir, "services").write_text("".join(lines))
    for service in services:
        inputs = service_inputs(compose, service, env, prefix)
        for kind, values in inputs.items():
            if kind == "env":
                if any("\n" in value for value in values):
                    raise ComposeError(f"{service}: a multi-line value cannot go in an env file")
                text = "".join(f"{value}\n" for value in values)
            else:
                text = "".join(f"{value}\0" for value in values)
            Path(outdir, f"{service}.{kind}").write_text(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ComposeError as error:
        print(f"docker-compose.yml: {error}", file=sys.stderr)
        sys.exit(2)
