"""Daily partitions in Moscow time, shared by the order staging and the sales facts."""

from __future__ import annotations

import dagster as dg

from .settings import get_settings

TIMEZONE = "Europe/Moscow"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=get_settings().qtickets_partitions_start.isoformat(),
    timezone=TIMEZONE,
    end_offset=1,  # today's partition exists while the day is running: the schedule refreshes it
)
