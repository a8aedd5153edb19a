"""Overlapping processes on embedded chDB: `load` waits for the holder, says so, then succeeds."""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.builders import AS_OF

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import sys
from qtickets_assets.warehouse.engine import open_client
with open_client(sys.argv[1], lock_timeout_s=5) as client:
    client.command("SELECT 1")
    print("holding", flush=True)
    sys.stdin.readline()  # until the test says "release"
"""


def lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def wait_for(lines_queue: queue.Queue, text: str, seen: list[str], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines_queue.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            return False
        seen.append(line)
        if text in line:
            return True
    return False


@pytest.mark.slow
def test_load_waits_for_another_process_then_succeeds(tmp_path, clickhouse):
    env = {**os.environ, "QTICKETS_DATA_DIR": str(tmp_path), "QTICKETS_SANDBOX_AS_OF": AS_OF.isoformat(),
           "CLICKHOUSE_LOCK_TIMEOUT_S": "120"}
    env.pop("DAGSTER_HOME", None)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, clickhouse.dsn], cwd=ROOT, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "holding"
        load = subprocess.Popen([sys.executable, "-m", "qtickets_assets.cli", "load", "--since-hours", "6"],
                                cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stderr: queue.Queue = queue.Queue()
        threading.Thread(target=lines, args=(load.stderr, stderr), daemon=True).start()
        seen: list[str] = []
        assert wait_for(stderr, "waiting: another process holds", seen, timeout_s=90), "".join(seen)
        assert str(tmp_path / "clickhouse") in seen[-1] and str(holder.pid) in seen[-1]
        time.sleep(1)
        assert load.poll() is None  # still waiting, not failed
    finally:
        holder.communicate("release\n", timeout=30)
    # Not communicate(): it would read stderr too, racing the thread that collects it.
    stdout = load.stdout.read()
    load.wait(timeout=120)
    assert wait_for(stderr, "is free again; continuing", seen, timeout_s=5), "".join(seen)
    assert load.returncode == 0, "".join(seen)
    summary = json.loads(stdout)
    assert summary["status"] == "ok" and summary["rows"]["fact_qtickets_sales_daily"] > 0
    with clickhouse.get_client() as client:
        recorded = client.query("SELECT run_id, status FROM meta_job_runs").result_rows
    assert recorded == [(summary["run_id"], "ok")]
