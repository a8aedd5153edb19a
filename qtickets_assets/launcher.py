"""The embedded instance's run launcher: Dagster's default one, plus a health check of the run's process.

With one run at a time (dagster.yaml), a run whose process died (kill -9, the OOM killer, a killed
`qtickets-assets load`) must not stay STARTED: every later run would wait behind it forever. Dagster's
run monitoring (the daemon) fails such a run, but only if the launcher can tell that its process is gone,
and the default launcher cannot (only the code server that launched a run notices that run's death; a
`load` or a run of a restarted `dev` has nobody). Embedded mode runs everything on one machine, so the
process that started the run (the pid on its RUN_START event) is checked directly.

Not for server mode (deploy/dagster.yaml): there the runs live in the code server's container, where the
daemon cannot see their processes.
"""

import os
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus


def process_alive(pid: int, started_by: float) -> bool:
    """Whether `pid` is a live process that already existed at `started_by` (a reused pid is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:  # Linux: state and start time; elsewhere the signal check above is all there is
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
    except (OSError, StopIteration):
        return True
    if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= started_by + 1  # btime has a 1 s resolution


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose runs' processes run monitoring can check (same machine as the daemon)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        records = self._instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
        if not records:  # not started yet: run monitoring's start timeout covers a launch that died
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START event yet")
        entry = records[0].event_log_entry
        pid = entry.dagster_event.pid
        if pid is None or process_alive(pid, entry.timestamp):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's process {pid} is gone (killed, crashed)")
