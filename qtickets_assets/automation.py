"""Schedules, freshness policies, alert and run-status sensors (see issue: operations)."""

import dagster as dg

schedules: list[dg.ScheduleDefinition] = []
sensors: list[dg.SensorDefinition] = []
