"""`qtickets-assets`: operator commands around the asset graph."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from .settings import ENV_FILE_VAR, SettingsError, get_settings

PROJECT_DIR = Path(__file__).resolve().parents[1]


def cmd_migrate(args: argparse.Namespace) -> int:
    from .definitions import build_resources

    clickhouse = build_resources(get_settings())["clickhouse"]
    applied = clickhouse.migrate()
    print(json.dumps({"dsn": clickhouse.display_dsn, "database": clickhouse.database, "applied": applied}))
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Dagster UI + daemon on the local instance (sqlite under .dagster_home)."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_DIR / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    settings = get_settings()  # fail now, with the setting's name, rather than inside the UI
    os.environ["DAGSTER_HOME"] = str(home)
    # Every process that dagster dev starts (webserver, daemon, code server, runs) sees one data dir.
    os.environ.setdefault("QTICKETS_DATA_DIR", str(settings.qtickets_data_dir))
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(PROJECT_DIR / "workspace.yaml"),
               "-h", args.host, "-p", str(args.port)]
    os.chdir(PROJECT_DIR)
    os.execv(command[0], command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qtickets-assets", description=__doc__)
    parser.add_argument("--envfile", help=f"env file with settings (also {ENV_FILE_VAR})")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="apply pending ClickHouse migrations").set_defaults(func=cmd_migrate)

    dev = commands.add_parser("dev", help="run the Dagster UI and daemon on the local instance")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func=cmd_dev)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.envfile:
        os.environ[ENV_FILE_VAR] = args.envfile
    try:
        return args.func(args)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
