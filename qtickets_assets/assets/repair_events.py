"""The dimension repair: before `covers_ordered_shows` fails, the events of ordered shows missing from
`dim_events` are re-read from the API, upserted into the events staging, their `dim_events` rows rebuilt,
and the check looks again.

The usual cause is timing, not a wrong API: an event created (or a show added) after the run's events
snapshot and sold before its orders read, or the hooked orders of a new event in a webhook run, which
reads no events. The next snapshot would name the show; the repair names it in the same run.

- `GET events/{id}`, one request per event: documented and answered live (qtickets_api.md §3), and its
  404 says the API does not know the event. `where id in [...]` on the events listing is not confirmed
  live, and a server that ignored it would page every event of the account.
- The upsert tombstones nothing: the answer is a few events, not the account, so neither the snapshot's
  scope (the whole table) nor the mass-deletion guard may read it as a listing (a show the event no longer
  lists is the next full snapshot's to remove). `dim_events` is rebuilt for those events only.
- At most QTICKETS_REPAIR_MAX_EVENTS events a run, newest ids first. A show the API does not know (its
  event answers 404, or does not list it) stays a failure naming the show.
"""

from __future__ import annotations

import dagster as dg

from ..qtickets.resource import QTicketsResource
from ..transform import event_rows
from ..warehouse.io_manager import write
from ..warehouse.resource import ClickHouseResource
from ..warehouse.writes import rebuild
from . import marts, raw
from .repair import repair_metadata

CAP = "QTICKETS_REPAIR_MAX_EVENTS"
STAGING = raw.stg_qtickets_api_events_raw
# Shows with tickets in order staging and no row in dim_events (what the check fails on).
MISSING_SHOWS = """
SELECT DISTINCT event_id, show_id FROM stg_qtickets_api_orders_raw FINAL
WHERE basket_id != 0
  AND (event_id, show_id) NOT IN (SELECT event_id, show_id FROM dim_events FINAL)
ORDER BY event_id, show_id
"""
DIM_OF_EVENTS = f"SELECT * FROM ({marts.DIM_EVENTS}) WHERE event_id IN {{events:Array(UInt64)}}"


def reread_events_of_missing_shows(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource,
                                   client, qtickets: QTicketsResource) -> dict:
    """Returns the `repair/*` metadata (repair.repair_metadata: the `event:` keys re-read, the events the
    API answered, and a summary of what was re-read and what the API does not know)."""
    missing = client.query(MISSING_SHOWS).result_rows
    events = sorted({event_id for event_id, _ in missing}, reverse=True)
    chosen = events[:qtickets.repair_max_events]
    capped = len(events) > len(chosen)
    found = []
    if chosen:
        with qtickets.get_client() as api:
            found = [event for event in map(api.event, chosen) if event is not None]
    ids = [event.id for event in found]
    listed = {(event.id, show.id) for event in found for show in event.shows}
    unknown = sorted(set(chosen) - set(ids), reverse=True)
    unlisted = [(e, s) for e, s in missing if e in ids and (e, s) not in listed]
    if found:
        rows = event_rows(sorted(found, key=lambda e: e.id))
        rows.scope = ("0", {})  # an upsert: nothing else in the table is replaced
        metadata = dict(STAGING.specs_by_key[STAGING.key].metadata)
        written, _, _, _ = write(client, STAGING.key.path[-1], metadata, rows, None,
                                 clickhouse.delete_guard(STAGING.key.to_user_string(), context.run.tags))
        guard = clickhouse.delete_guard("dim_events", context.run.tags)
        dim = rebuild(client, "dim_events", DIM_OF_EVENTS, where="event_id IN {events:Array(UInt64)}",
                      parameters={"events": ids}, guard=guard)
        description = f"repair: events {ids} re-read for ordered shows missing from dim_events"
        for key, count in ((STAGING.key, written), (marts.dim_events.key, dim["dagster/row_count"])):
            context.op_execution_context.log_event(dg.AssetMaterialization(
                asset_key=key, description=description, metadata={"dagster/row_count": count}))
    note = (f"ordered shows missing from dim_events: {_pairs(missing)}; re-read {len(chosen)} events "
            f"(GET events/{{id}}): {chosen}")
    if unknown:
        note += f"; unknown to the API (404): events {unknown}"
    if unlisted:
        note += f"; not listed by their event: {_pairs(unlisted)}"
    if capped:
        note += f"; cap hit ({CAP}={qtickets.repair_max_events}): not re-read events {events[len(chosen):]}"
    context.log.warning(note)
    return repair_metadata([f"event:{event_id}" for event_id in chosen], len(found), capped, note)


def _pairs(rows, shown: int = 20) -> str:
    text = ", ".join(f"show {show_id} (event {event_id})" for event_id, show_id in rows[:shown])
    return text + (f" and {len(rows) - shown} more" if len(rows) > shown else "")
