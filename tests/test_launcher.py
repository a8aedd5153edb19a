"""Run monitoring in the embedded instance: a run whose process was killed (-9) is marked failed, so the
one-run queue moves on; a live run is left alone. A real instance from the shipped dagster.yaml, a real run
in another process, and the daemon's own monitoring iteration."""

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

from qtickets_assets.launcher import LocalRunLauncher, process_alive

PACKAGE = Path(__file__).resolve().parents[1] / "qtickets_assets"
RUN = """
import time, dagster as dg

@dg.op
def wait():
    print("started", flush=True)
    time.sleep(120)

@dg.job
def slow():
    wait()

with dg.DagsterInstance.get() as instance:
    slow.execute_in_process(instance=instance)
"""


def monitor(instance: dg.DagsterInstance) -> None:
    """One pass of the daemon's run monitoring (what `dagster dev` does every poll_interval_seconds)."""
    with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as workspace:
        list(execute_run_monitoring_iteration(workspace, logging.getLogger("test")))


def in_progress(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))


@pytest.mark.slow
def test_a_killed_run_is_marked_failed_and_frees_the_slot(tmp_path, monkeypatch):
    shutil.copy(PACKAGE / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # the shipped config's storage lives there
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled and isinstance(instance.run_launcher, LocalRunLauncher)
        run = subprocess.Popen([sys.executable, "-c", RUN], env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert run.stdout.readline().strip() == "started"
            [started] = in_progress(instance)

            monitor(instance)  # alive: left alone
            assert instance.get_run_by_id(started.run_id).status == dg.DagsterRunStatus.STARTED

            run.send_signal(signal.SIGKILL)
            run.wait(timeout=10)
            monitor(instance)
        finally:
            run.kill()
            run.wait(timeout=10)
        assert instance.get_run_by_id(started.run_id).status == dg.DagsterRunStatus.FAILURE
        assert in_progress(instance) == []  # max_concurrent_runs: 1 counts these: the next run may start
        messages = [entry.message for entry in instance.all_logs(started.run_id)]
        assert any(f"process {run.pid} is gone" in message for message in messages)


def test_process_alive_tells_dead_and_reused_pids_from_live_ones():
    assert process_alive(os.getpid(), time.time())
    # A process that started after the run did holds a reused pid: not the run's.
    assert not process_alive(os.getpid(), time.time() - 365 * 24 * 3600)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert not process_alive(done.pid, time.time())
