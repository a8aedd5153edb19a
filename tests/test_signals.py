"""Every long-running command stops on SIGTERM, also when started in the background (SIGINT ignored)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "qtickets_assets.cli"]
SIGINT_IGNORED = 1 << (signal.SIGINT - 1)
SIGTERM_IGNORED = 1 << (signal.SIGTERM - 1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def in_background() -> None:
    """What a shell does to a job started with `&`: SIGINT ignored (inherited through exec)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start(args: list[str], env: dict[str, str], **popen) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], env={**os.environ, **env}, cwd=ROOT, preexec_fn=in_background,
                            start_new_session=True, **popen)


def group_alive(pgid: int) -> list[int]:
    """Pids still in the process group (zombies excluded)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def ignored_signals(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)


def stop(process: subprocess.Popen, timeout_s: float, children_s: float = 0) -> float:
    """SIGTERM to the command; seconds until it exits. Every process it started must be gone
    `children_s` seconds later."""
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=timeout_s)
    stopped = time.monotonic() - began
    while group_alive(process.pid) and time.monotonic() - began < timeout_s + children_s:
        time.sleep(0.2)
    assert not group_alive(process.pid), f"left behind: {group_alive(process.pid)}"
    return stopped


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@pytest.mark.slow
def test_sandbox_serve_in_the_background_stops_on_sigterm(tmp_path):
    port = free_port()
    process = start(["sandbox", "serve", "--port", str(port)], {"QTICKETS_DATA_DIR": str(tmp_path)},
                    stdout=subprocess.PIPE, text=True)
    try:
        assert f":{port}/" in process.stdout.readline()
        assert stop(process, timeout_s=5) < 5
    finally:
        kill_group(process)


@pytest.mark.slow
def test_load_in_the_background_stops_on_sigterm(tmp_path):
    # An API that accepts the connection and never answers: the load is busy in its first request.
    with socket.socket() as api:
        api.bind(("127.0.0.1", 0))
        api.listen()
        env = {"QTICKETS_DATA_DIR": str(tmp_path), "DAGSTER_HOME": "",
               "QTICKETS_API_BASE_URL": f"http://127.0.0.1:{api.getsockname()[1]}/api/rest/v1/",
               "QTICKETS_API_TOKEN": "tok-signals"}
        process = start(["load", "--since-hours", "6"], env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            api.settimeout(60)
            connection, _ = api.accept()
            with connection:
                assert ignored_signals(process.pid) & (SIGINT_IGNORED | SIGTERM_IGNORED) == 0
                assert stop(process, timeout_s=10) < 10
            assert process.returncode != 0
        finally:
            kill_group(process)


@pytest.mark.slow
def test_dev_in_the_background_stops_with_everything_it_started_on_sigterm(tmp_path):
    port = free_port()
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "QTICKETS_DATA_DIR": str(tmp_path / "data")}
    process = start(["dev", "--port", str(port)], env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:  # the UI answers once the webserver, the daemon and the code server are up
            assert process.poll() is None and time.monotonic() < deadline
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        started = group_alive(process.pid)
        assert len(started) >= 4  # dagster dev, webserver, daemon, code server (and runs they launch)
        for pid in started:  # every process dev started would also stop a run it launches on SIGTERM
            assert ignored_signals(pid) & (SIGINT_IGNORED | SIGTERM_IGNORED) == 0, pid
        # Dagster's code server ends its open calls first (at most 60 s), then exits on its own.
        assert stop(process, timeout_s=30, children_s=70) < 30
    finally:
        kill_group(process)
