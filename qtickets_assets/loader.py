"""`qtickets-assets load` and `health`: the old loader script and healthcheck, on the asset graph.

`load` runs the same job as the 15-minute schedule, in this process, over the Moscow days that cover the
last N hours. In embedded mode it shares the engine's lock with Dagster's runs: while another process holds
the warehouse it waits, saying so, instead of failing.
"""

import json
import logging
import os
import sys
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
from filelock import FileLock

from .automation import day_range, refresh_job
from .runs import RANGE_END, RANGE_START, health, run_row
from .settings import Settings
from .warehouse.engine import EngineBusyError
from .warehouse.writes import Rows, chunks
from .webhooks.drain import clear_applied
from .webhooks.store import HookStore

EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN = 0, 1, 3


def source_now(settings: Settings) -> datetime:
    """The source's clock: a frozen sandbox (replays, demos) loads around its own instant."""
    return settings.source_now()


def _instance() -> dg.DagsterInstance:
    # With DAGSTER_HOME the run is recorded where the UI and the freshness daemon see it.
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return dg.DagsterInstance.ephemeral()
    # Two processes creating a fresh instance race on its SQLite schema ("table runs already exists"):
    # one at a time creates it; later ones find it made.
    Path(home).mkdir(parents=True, exist_ok=True)
    with FileLock(Path(home) / ".qtickets-instance.lock"):
        return dg.DagsterInstance.get()


class DryRunIOManager(dg.IOManager):
    """Counts what the staging assets would write, and writes nothing. A staging asset that reads another
    one (the inventory takes its shows from the events) gets what that one would have written."""

    def __init__(self) -> None:
        self._written: dict[dg.AssetKey, Rows] = {}

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if isinstance(obj, Rows):  # a stream is read once, counted, and not kept
            self._written[context.asset_key] = obj
        context.add_output_metadata({"dagster/row_count": sum(len(chunk) for chunk in chunks(obj))})

    def load_input(self, context: dg.InputContext) -> pa.Table:
        rows = self._written.get(context.upstream_output.asset_key)
        if rows is None:
            raise NotImplementedError("a dry run does not read the warehouse")
        return pa.table(rows.columns)


def load(settings: Settings, since_hours: float, dry_run: bool = False, verbose: bool = False) -> int:
    from . import definitions  # imported late: it builds resources from the settings
    from .assets import raw

    now = source_now(settings)
    keys = day_range(now - timedelta(hours=since_hours), now)
    tags = {RANGE_START: keys.start, RANGE_END: keys.end, "qtickets/trigger": "cli"}
    # Without --verbose a failure is the one line printed below, not Dagster's event log with its traces.
    level = "DEBUG" if verbose else "CRITICAL"
    run_config = {"loggers": {"console": {"config": {"log_level": level}}}}
    resources = definitions.build_resources(settings)
    with _instance() as instance:
        if dry_run:
            # Fetch, validate (pydantic models) and transform the staging rows; no warehouse at all, so
            # no watermark read; pending webhook ids are neither read nor cleared.
            result = dg.materialize(
                dg.load_assets_from_modules([raw]), instance=instance, tags=tags, run_config=run_config,
                resources={"qtickets": resources["qtickets"].model_copy(update={"webhook_store": ""}),
                           "clickhouse_io": DryRunIOManager()},
                raise_on_error=False,
            )
        else:
            job = definitions.build_definitions(settings).resolve_job_def(refresh_job.name)
            result = job.execute_in_process(instance=instance, tags=tags, run_config=run_config,
                                            raise_on_error=False)
            if result.success and not settings.embedded:
                # This process ran every step; the server-mode sensor may not see this instance.
                clear_applied(instance, result.run_id, HookStore(settings.webhook_store_path))
        row = run_row(instance, result.run_id, finished=True)
    summary = {"run_id": row["run_id"], "job": row["job_name"], "dry_run": dry_run,
               "partitions": row["partition_range"], "status": row["status"], "rows": row["rows"]}
    if row["error"]:
        summary["error"] = row["error"]
    if row["failed_checks"]:  # no check blocks the run; a script calling `load` still needs to know
        summary["failed_checks"] = row["failed_checks"]
    print(json.dumps(summary, ensure_ascii=False, sort_keys=True))
    if not result.success:
        first = (row["error"] or "the run failed").splitlines()[0]
        print(f"load failed: {first}" + ("" if verbose else " (the trace: --verbose)"), file=sys.stderr)
    elif row["failed_checks"]:
        print(f"load: check failed: {row['failed_checks'][0][:300]}", file=sys.stderr)
    return EXIT_OK if result.success and not row["failed_checks"] else EXIT_FAILED


def health_check(settings: Settings, wait_s: float) -> int:
    """Print the health report as JSON; 0 healthy, 1 facts older than 2 hours (or missing), 3 unknown."""
    from .definitions import build_resources

    quick = settings.model_copy(update={"clickhouse_lock_timeout_s": wait_s})
    try:
        # build_resources resolves EnvVar fields (a server DSN's password) as a run would.
        with dg.build_resources({"clickhouse": build_resources(quick)["clickhouse"]}) as resources:
            report = health(resources.clickhouse)
    except EngineBusyError as error:
        print(json.dumps({"healthy": None, "error": str(error)}))
        return EXIT_UNKNOWN
    print(json.dumps(report, ensure_ascii=False, sort_keys=True))
    return EXIT_OK if report["healthy"] else EXIT_FAILED


def configure_logging(verbose: bool) -> None:
    """Warnings (e.g. 'waiting: another process holds …') always reach stderr; --verbose adds INFO."""
    if not verbose:  # Dagster's API-maturity notes are for developers, not for the operator's terminal
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
