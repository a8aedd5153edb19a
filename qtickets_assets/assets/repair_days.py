"""The fact-days repair: before `agrees_with_staging` fails, the sales fact days whose rows differ from a
fresh computation over order staging are rebuilt from staging (marts.rebuild_days: each day reported as a
materialization of its partition with its own counts), and the check looks again.

Only from staging, never re-read from the API: the check compares the fact with staging, so what it finds
is the fact's (a staging write between a run's fact rebuild and its check, e.g. a concurrent webhook run
in server mode; a run that died between the two; an edit by hand), and a rebuild from staging fixes
exactly that. Stale staging cannot show here (fact and staging agree on the stale numbers): that is what
the watermark read, the webhooks, the capacity repair (repair.py) and the nightly reconcile are for.
Re-reading a day would cost its pages of orders (about 5 requests a day at the real account's size)
without changing anything this check can see.

Rebuilt: days of the run's own partitions (the run read them in full) and days inside the range the fact
has been built over (`marts.staged_in_full`, the rule of `rebuild_marked_days` too: staging holds every
sale of such a day). A day outside, e.g. the payment day of an order re-read by id that no run has loaded,
would be rebuilt from a part of its sales: it stays a failure until a backfill computes it. At most
QTICKETS_REPAIR_MAX_DAYS days a run, newest first; the rebuild goes through the fact's mass-deletion
guard, whose refusal is reported in the check's result rather than raised.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from ..warehouse.resource import ClickHouseResource
from ..warehouse.writes import MassDeleteError
from .marts import SALES_KEY, rebuild_days, staged_in_full
from .repair import repair_metadata

CAP = "QTICKETS_REPAIR_MAX_DAYS"


def rebuild_differing_days(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource, client,
                           differing: str, parameters: dict, run_window: dg.TimeWindow | None
                           ) -> dict:
    """Rebuild the fact days `differing` (the check's SQL of offending rows, with a `sales_date` column)
    names, within the rules above; returns the `repair/*` metadata (repair.repair_metadata: `day:` keys,
    nothing re-read from the API, and a summary of what was rebuilt and what was not)."""
    days = [row[0] for row in client.query(
        f"SELECT DISTINCT sales_date FROM ({differing}) ORDER BY sales_date DESC",
        parameters=parameters).result_rows]
    candidates = staged_in_full(client, days, run_window)
    chosen = sorted(candidates[:clickhouse.repair_max_days])
    capped = len(candidates) > len(chosen)
    notes = []
    if chosen:
        try:
            rebuild_days(context.op_execution_context, client, chosen,
                         clickhouse.delete_guard(SALES_KEY.to_user_string(), context.run.tags),
                         "rebuilt by the check agrees_with_staging: its rows differed from order staging")
            notes.append(f"rebuilt from order staging: {_days(chosen)}")
        except MassDeleteError as error:
            notes.append(f"rebuild of {_days(chosen)} refused: {error}")
            chosen = []
    if capped:
        notes.append(f"cap hit ({CAP}={clickhouse.repair_max_days}): not rebuilt "
                     f"{_days(sorted(set(candidates) - set(chosen)))}")
    outside = sorted(set(days) - set(candidates))
    if outside:
        notes.append(f"not rebuilt (outside the days the fact was built over or not a partition: a "
                     f"backfill computes them): {_days(outside)}")
    note = f"fact days differing from staging: {_days(sorted(days))}; " + "; ".join(notes)
    context.log.warning(note)
    return repair_metadata([f"day:{day.isoformat()}" for day in chosen], 0, capped, note)


def _days(days: list[date]) -> str:
    return ", ".join(day.isoformat() for day in days)
