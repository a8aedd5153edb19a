"""What a run left in the warehouse, as deploy/smoke.sh checks it (run inside the code container, whose
settings and data volume the runs use).

usage: python - RUN_ID < warehouse.py
Prints the run's meta_job_runs record and the facts' row counts; exit 1 unless the run is recorded ok
with rows in every fact.
"""

import json
import sys

import dagster as dg

from qtickets_assets.definitions import build_resources
from qtickets_assets.runs import FACTS
from qtickets_assets.settings import get_settings

run_id = sys.argv[1]
with dg.build_resources({"clickhouse": build_resources(get_settings())["clickhouse"]}) as resources:
    with resources.clickhouse.get_client() as client:
        recorded = client.query(
            "SELECT status, partition_range, rows FROM meta_job_runs FINAL WHERE run_id = {id:String}",
            parameters={"id": run_id},
        ).result_rows
        counts = {table: client.query("SELECT count() FROM {table:Identifier}",
                                      parameters={"table": table}).result_rows[0][0] for table in FACTS}
status, partitions, rows = recorded[0] if recorded else (None, None, {})
print(json.dumps({"run": {"status": status, "partitions": partitions, "rows": rows}, "facts": counts}))
sys.exit(0 if status == "ok" and all(counts.values()) else 1)
