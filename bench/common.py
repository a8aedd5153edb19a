"""Shared by the bench scripts: the sandbox on a real local port in its own process, machine load, RSS."""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CLI = Path(sys.executable).with_name("qtickets-assets")
SANDBOX_TOKEN = "sandbox-token"  # qtickets_assets.sandbox.SANDBOX_TOKEN (kept import-free here)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def peak_rss_mb() -> float:
    """Peak RSS of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sandbox_env(opened_on: str, orders_per_day: int, as_of: datetime) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "QTICKETS_ENV_FILE"}
    env.update(QTICKETS_PARTITIONS_START=opened_on, QTICKETS_SANDBOX_ORDERS_PER_DAY=str(orders_per_day),
               QTICKETS_SANDBOX_AS_OF=as_of.isoformat())
    return env


def history(orders: int, per_day: int, now: datetime) -> tuple[str, datetime]:
    """(first day, frozen clock) for an account of about `orders` orders ending before `now`'s day, so
    every day of it is an existing daily partition."""
    days = max(1, round(orders / per_day))
    end = datetime.combine(now.date(), datetime.min.time(), now.tzinfo) - timedelta(minutes=1)
    return (end - timedelta(days=days)).date().isoformat(), end


@contextmanager
def serve_sandbox(opened_on: str, orders_per_day: int, as_of: datetime, event_every_days: float = 4.0,
                  access_log: Path | None = None) -> Iterator[tuple[str, int]]:
    """The sandbox on a local port in a separate process (`qtickets-assets sandbox serve`).
    Yields (base_url, orders in the account). The account is planned by a first request, before anything
    is timed. Sales stop when events sell out: a big daily volume needs events often. `access_log` gets
    the server's log, one line per request (`requests_in`)."""
    port = free_port()
    server = [str(CLI), "sandbox", "serve"]
    log_file = open(access_log, "w") if access_log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [*server, "--port", str(port), "--event-every-days", str(event_every_days)],
        env=sandbox_env(opened_on, orders_per_day, as_of),
        stdout=subprocess.PIPE, stderr=log_file, text=True, cwd=ROOT,
    )
    try:
        line = process.stdout.readline()
        if "sandbox QTickets API at" not in line:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        base_url = line.split(" at ", 1)[1].split()[0]
        for _ in range(100):
            try:
                response = httpx.request("GET", base_url + "orders", json={"perPage": 1},
                                         headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=600)
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        total = json.loads(response.content)["paging"]["total"]
        yield base_url, total
    finally:
        process.terminate()
        try:
            process.wait(60)  # a loaded machine can take a while to stop a server with a big account
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if access_log:
            log_file.close()


def requests_in(access_log: Path) -> dict[str, int]:
    """Requests the sandbox served so far, by path kind (orders, events, seats), from its access log."""
    counts: dict[str, int] = {}
    for line in access_log.read_text().splitlines():
        if '"GET /api/rest/v1/' in line:
            path = line.split('"GET /api/rest/v1/', 1)[1].split()[0]
            kind = "seats" if path.endswith("/seats") else path.split("/")[0]
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def run_watched(command: list[str], cap_mb: float, **popen) -> dict:
    """Run `command`; kill it if its RSS passes `cap_mb` (the machine has no swap). Returns its exit code,
    output, peak RSS and CPU seconds (user + system; its own `wait4` rusage), wall seconds and whether the
    watchdog killed it."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=out, stderr=err, text=True, **popen)
    killed, done = threading.Event(), threading.Event()

    def watchdog() -> None:  # reads /proc only: reaping is left to wait4 below
        status = Path(f"/proc/{child.pid}/status")
        while not done.is_set():
            try:
                rss_kb = next(int(line.split()[1]) for line in status.read_text().splitlines()
                              if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            if rss_kb / 1024 > cap_mb:
                killed.set()
                os.kill(child.pid, signal.SIGKILL)
                return
            time.sleep(0.2)

    threading.Thread(target=watchdog, daemon=True).start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    child.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0), err.seek(0)
    return {"returncode": child.returncode, "stdout": out.read(), "stderr": err.read(),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "killed": killed.is_set(),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "wall_s": round(wall, 2)}


# dlt's rest_api source -> duckdb: the orders and their baskets (`orders__baskets`); the one runner of
# backfill.py and e2e_vs_dlt.py. argv: base_url, token, workdir, per_page, duckdb memory limit, loader
# file format ("": dlt's default).
DLT_RUN = """
import json, sys, time
import dlt
import duckdb
from dlt.sources.rest_api import rest_api_source

base_url, token, workdir, per_page, memory_limit, file_format = sys.argv[1:7]
source = rest_api_source({
    "client": {
        "base_url": base_url,
        "auth": {"type": "bearer", "token": token},
        "paginator": {"type": "page_number", "base_page": 1, "page_body_path": "page", "total_path": None,
                      "stop_after_empty_page": True},
    },
    "resources": [{
        "name": "orders",
        "endpoint": {"path": "orders", "method": "GET", "data_selector": "data",
                     "json": {"perPage": int(per_page), "orderBy": {"id": "asc"}}},
    }],
})
pipeline = dlt.pipeline(pipeline_name="qtickets_bench", pipelines_dir=workdir + "/pipelines",
                        # duckdb takes 80% of RAM by default; the machine has no swap.
                        destination=dlt.destinations.duckdb(duckdb.connect(
                            workdir + "/bench.duckdb", config={"memory_limit": memory_limit})),
                        dataset_name="qtickets")
started = time.perf_counter()
pipeline.run(source, **({"loader_file_format": file_format} if file_format else {}))
elapsed = time.perf_counter() - started
with pipeline.sql_client() as sql:
    orders = sql.execute_sql("SELECT count(*) FROM orders")[0][0]
    tickets = sql.execute_sql("SELECT count(*) FROM orders__baskets")[0][0]
print(json.dumps({"seconds": elapsed, "orders": orders, "tickets": tickets}))
"""


def dlt_available(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import dlt, duckdb"], capture_output=True) if python else None
    return probe is not None and probe.returncode == 0


def dlt_command(python: str, base_url: str, workdir: str, per_page: int, memory_limit: str,
                file_format: str = "") -> tuple[list[str], dict[str, str]]:
    """The command and environment of one DLT_RUN in `workdir` (dlt's state and duckdb file go there)."""
    env = {**os.environ, "RUNTIME__LOG_LEVEL": "WARNING", "DLT_DATA_DIR": workdir,
           "RUNTIME__DLTHUB_TELEMETRY": "false"}
    return [python, "-c", DLT_RUN, base_url, SANDBOX_TOKEN, workdir, str(per_page), memory_limit,
            file_format], env
