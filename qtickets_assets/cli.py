"""`qtickets-assets`: operator commands around the asset graph."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
from pathlib import Path

from .settings import ENV_FILE_VAR, SettingsError, get_settings

PACKAGE_DIR = Path(__file__).resolve().parent


def cmd_migrate(args: argparse.Namespace) -> int:
    import dagster as dg

    from .definitions import build_resources

    # dg.build_resources resolves the EnvVar that carries a server DSN, as a run would.
    with dg.build_resources({"clickhouse": build_resources(get_settings())["clickhouse"]}) as resources:
        clickhouse = resources.clickhouse
        applied = clickhouse.migrate()
    print(json.dumps({"dsn": clickhouse.display_dsn, "database": clickhouse.database, "applied": applied}))
    return 0


def _dagster_home() -> Path:
    """DAGSTER_HOME, or ./.dagster_home with the local instance config: the instance `dev` runs on."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(PACKAGE_DIR / "dagster.yaml", home / "dagster.yaml")  # package data: works installed
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_dev(args: argparse.Namespace) -> int:
    """Dagster UI + daemon on the local instance (sqlite under ./.dagster_home), from any directory, plus
    `serve` (webhooks, health, metrics) and, with the sandbox, the sandbox's webhooks to that `serve`.

    Both services are child processes in this process group: Ctrl-C in a terminal reaches all of them,
    so this process only waits; a SIGTERM reaches this process alone, so it passes it on. When either
    service stops, the other is stopped too."""
    import secrets
    import subprocess
    import time

    settings = get_settings()  # fail now, with the setting's name, rather than inside the UI
    _dagster_home()
    # Every process that dagster dev starts (webserver, daemon, code server, runs) sees one data dir.
    os.environ.setdefault("QTICKETS_DATA_DIR", str(settings.qtickets_data_dir))
    secret = settings.qtickets_webhook_secret.get_secret_value() if settings.qtickets_webhook_secret else ""
    if not secret:  # zero configuration: a secret for this session, shared by the sandbox and `serve`
        secret = os.environ["QTICKETS_WEBHOOK_SECRET"] = secrets.token_hex(20)
    serve_port = args.serve_port or args.port + 1
    received: list[int] = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    dagster = Path(sys.executable).with_name("dagster")
    children = [
        subprocess.Popen([str(dagster), "dev", "-m", "qtickets_assets.definitions",
                          "-h", args.host, "-p", str(args.port)]),
        subprocess.Popen([sys.executable, "-m", "qtickets_assets.cli", "serve",
                          "--host", args.host, "--port", str(serve_port)]),
    ]
    stop = None
    code = 0
    try:
        hook_url = f"http://{args.host}:{serve_port}/webhooks/qtickets"
        print(f"qtickets-assets dev: UI http://{args.host}:{args.port}, webhooks {hook_url}, "
              f"health http://{args.host}:{serve_port}/healthz/qtickets_api", flush=True)
        if settings.uses_sandbox:
            import logging

            from .sandbox.webhooks import start_sender

            logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            logging.getLogger("qtickets_assets.sandbox.webhooks").setLevel(logging.INFO)  # each hook sent
            url = settings.qtickets_sandbox_webhook_url or hook_url
            stop = start_sender(_sandbox(settings), url, secret)
            print(f"sandbox webhooks -> {url}", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        code = next(child.returncode for child in children if child.returncode is not None) or 1
        print("qtickets-assets dev: a service stopped; stopping the others", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stop is not None:
            stop.set()
        if received != [signal.SIGINT]:  # a SIGTERM, or a service died: the others heard nothing yet
            for child in children:
                if child.poll() is None:
                    child.terminate()  # dagster dev and uvicorn both shut down cleanly on SIGTERM
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
    return code


def cmd_serve(args: argparse.Namespace) -> int:
    """The webhook receiver, /healthz/qtickets_api and /metrics (docs/RUNBOOK.md), until stopped."""
    import logging

    import uvicorn

    from .automation import jobs
    from .service import cached_instance, create_app
    from .webhooks.sensor import webhook_job
    from .webhooks.store import HookStore

    settings = get_settings()
    _dagster_home()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret = settings.qtickets_webhook_secret
    if secret is None:
        logging.getLogger(__name__).warning(
            "QTICKETS_WEBHOOK_SECRET is not set: POST /webhooks/qtickets answers 503")
    app = create_app(secret.get_secret_value() if secret else None, HookStore(settings.webhook_store_path),
                     cached_instance(), [job.name for job in jobs] + [webhook_job.name])
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    return 0


def _sandbox(settings, faults=None, event_every_days: float | None = None):
    from .sandbox import Sandbox, parse_resales

    as_of = settings.qtickets_sandbox_as_of
    return Sandbox(seed=settings.qtickets_sandbox_seed, opened_on=settings.qtickets_partitions_start,
                   orders_per_day=settings.qtickets_sandbox_orders_per_day,
                   clock=(lambda: as_of) if as_of else None,
                   event_every_days=event_every_days or settings.qtickets_sandbox_event_every_days,
                   faults=faults, resales=parse_resales(settings.qtickets_sandbox_resales))


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    """The sandbox QTickets API on a real local port, until Ctrl-C."""
    import logging

    from .sandbox import KINDS, SANDBOX_TOKEN, Faults, SandboxServer

    settings = get_settings()
    hook_url = settings.qtickets_sandbox_webhook_url
    if hook_url and settings.qtickets_webhook_secret is None:
        print("sandbox serve: QTICKETS_SANDBOX_WEBHOOK_URL needs QTICKETS_WEBHOOK_SECRET", file=sys.stderr)
        return 2
    try:
        faults = Faults(args.fault_rate, args.fault_kinds.split(",") if args.fault_kinds else KINDS,
                        seed=settings.qtickets_sandbox_seed) if args.fault_rate else None
    except ValueError as error:
        print(f"sandbox serve: {error}", file=sys.stderr)
        return 2
    sandbox = _sandbox(settings, faults, args.event_every_days)
    server = SandboxServer(sandbox, args.host, args.port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(f"sandbox QTickets API at {server.base_url} (token: {SANDBOX_TOKEN})", flush=True)
    stop = None
    if hook_url:  # the sandbox's own changes, signed, to a receiver (`serve`)
        from .sandbox.webhooks import start_sender

        stop = start_sender(sandbox, hook_url, settings.qtickets_webhook_secret.get_secret_value())
        print(f"sandbox webhooks -> {hook_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if stop is not None:
            stop.set()
        server.server_close()
    return 0


def _positive_hours(value: str) -> float:
    hours = float(value)
    if not math.isfinite(hours) or hours <= 0:
        raise argparse.ArgumentTypeError("must be a number of hours above 0")
    return hours


def cmd_load(args: argparse.Namespace) -> int:
    """The asset graph, in this process, over the Moscow days covering the last N hours."""
    from .loader import configure_logging, load

    configure_logging(args.verbose)
    return load(get_settings(), args.since_hours, dry_run=args.dry_run, verbose=args.verbose)


def cmd_health(args: argparse.Namespace) -> int:
    from .loader import configure_logging, health_check

    configure_logging(False)
    return health_check(get_settings(), args.wait_s)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qtickets-assets", description=__doc__)
    parser.add_argument("--envfile", help=f"env file with settings (also {ENV_FILE_VAR})")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="apply pending ClickHouse migrations").set_defaults(func=cmd_migrate)

    dev = commands.add_parser("dev", help="run the Dagster UI and daemon on the local instance")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--serve-port", type=int, default=None,
                     help="port of `serve` (webhooks, health, metrics); default: --port + 1")
    dev.set_defaults(func=cmd_dev)

    service = commands.add_parser("serve", help="webhook receiver, /healthz/qtickets_api and /metrics")
    service.add_argument("--host", default="127.0.0.1")
    service.add_argument("--port", type=int, default=3001)
    service.set_defaults(func=cmd_serve)

    sandbox = commands.add_parser("sandbox", help="the built-in sandbox QTickets API")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    serve = sandbox_commands.add_parser("serve", help="serve the sandbox API on a local port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--event-every-days", type=float, default=None,
                       help="account size: a new event every N days "
                            "(default: QTICKETS_SANDBOX_EVENT_EVERY_DAYS, 4)")
    serve.add_argument("--fault-rate", type=float, default=0.0,
                       help="share of requests that get an injected fault (0..1)")
    serve.add_argument("--fault-kinds", default="",
                       help="comma-separated subset of 429,429-retry-after,502,503,504,slow,"
                            "truncated,html200 (default: all)")
    serve.set_defaults(func=cmd_sandbox_serve)

    load = commands.add_parser("load", help="materialize the asset graph for the last N hours, in-process")
    load.add_argument("--since-hours", type=_positive_hours, default=24.0,
                      help="load the Moscow days that cover the last N hours (default 24: yesterday, today)")
    load.add_argument("--dry-run", action="store_true", help="fetch, validate and transform; write nothing")
    load.add_argument("--verbose", action="store_true", help="Dagster's event log and INFO logs on stderr")
    load.add_argument("--envfile", default=argparse.SUPPRESS, help="env file (same as the global option)")
    load.set_defaults(func=cmd_load)

    check = commands.add_parser("health", help="JSON health report; exit 1 if facts are over 2 h old")
    check.add_argument("--wait-s", type=float, default=30.0,
                       help="embedded: wait this long for a run holding the warehouse (then exit 3)")
    check.set_defaults(func=cmd_health)
    return parser


def stop_on_sigterm() -> None:
    """Ctrl-C and SIGTERM stop every command, in the foreground or the background.

    A shell starts a background job with SIGINT ignored, Python leaves it ignored, and Dagster copies
    SIGINT's disposition to SIGTERM (dagster/_utils/interrupts.py): `dev`, `load` and the runs they start
    would then ignore both. Restored here, `dev` passes it on through exec to every process it starts."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C: cleanup runs


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    args = build_parser().parse_args(argv)
    if args.envfile:
        os.environ[ENV_FILE_VAR] = args.envfile
    try:
        return args.func(args)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # one line naming the cause; the trace only when asked for
        if getattr(args, "verbose", False):
            raise
        from .runs import scrub_secrets

        while error.__cause__ is not None:  # the user's error, not Dagster's wrapper of it
            error = error.__cause__
        cause = scrub_secrets(f"{type(error).__name__}: {error}").splitlines()[0]
        print(f"{args.command} failed: {cause} (the trace: --verbose)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
