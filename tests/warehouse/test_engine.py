"""The embedded engine's guard: a data directory that cannot be one is named with its setting; another
process holding the directory, with or without our lock, is waited for with the lock message."""

import contextlib
import logging
import subprocess
import sys
import threading
import time

import pytest

from qtickets_assets.warehouse.engine import EngineBusyError, EnginePathError, open_client

# Holds the directory until told to release: through our lock, or opening chDB directly (no lock).
HOLDER = """
import sys
import clickhouse_connect
from qtickets_assets.warehouse.engine import open_client
if sys.argv[2] == "lock":
    holding = open_client("chdb://" + sys.argv[1], lock_timeout_s=5)
    client = holding.__enter__()
else:
    client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
client.command("SELECT 1")
print("holding", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def holder(tmp_path):
    """Start a process holding `tmp_path/ch` (mode "lock" or "outside"); released at teardown."""
    started = []

    def start(mode: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "ch"), mode], text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        started.append(process)
        assert process.stdout.readline().strip() == "holding"
        return process

    yield start
    for process in started:
        release(process)
        process.wait(timeout=30)


def release(process: subprocess.Popen) -> None:
    with contextlib.suppress(OSError, ValueError):  # already released
        process.stdin.write("release\n")
        process.stdin.flush()


@pytest.mark.parametrize("make", ["file", "under_a_file"])
def test_a_path_that_cannot_be_a_directory_is_named_with_its_setting(tmp_path, make):
    (tmp_path / "data").write_text("not a directory")
    path = tmp_path / "data" if make == "file" else tmp_path / "data" / "clickhouse"
    with pytest.raises(EnginePathError) as raised:
        with open_client(f"chdb://{path}", lock_timeout_s=0.5):
            pass
    message = str(raised.value)
    assert str(path) in message and "CLICKHOUSE_DSN" in message and "QTICKETS_DATA_DIR" in message
    assert "another process" not in message


def test_an_unwritable_path_is_named_with_its_setting():
    # /proc refuses new entries even to root (the tests may run as root, where chmod cannot deny writes).
    with pytest.raises(EnginePathError, match=r"/proc/qtickets-assets .*CLICKHOUSE_DSN"):
        with open_client("chdb:///proc/qtickets-assets", lock_timeout_s=0.5):
            pass


@pytest.mark.slow
def test_an_outside_process_is_waited_for_with_the_lock_message(tmp_path, holder, caplog):
    holder("outside")
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    with pytest.raises(EngineBusyError, match=f"another process holds {tmp_path / 'ch'}"):
        with open_client(f"chdb://{tmp_path / 'ch'}", lock_timeout_s=1.5):
            pass
    assert time.monotonic() - started >= 1.5  # waited the whole timeout, did not fail at once
    assert f"waiting: another process holds {tmp_path / 'ch'}" in caplog.text


@pytest.mark.slow
def test_an_outside_process_that_lets_go_is_followed(tmp_path, holder, caplog):
    outside = holder("outside")
    caplog.set_level(logging.WARNING)
    threading.Timer(1.0, release, args=(outside,)).start()
    with open_client(f"chdb://{tmp_path / 'ch'}", lock_timeout_s=30) as client:
        assert client.command("SELECT 1") == 1
    assert "waiting: another process holds" in caplog.text and "is free again" in caplog.text


@pytest.mark.slow
def test_waiting_for_one_directory_does_not_block_another(tmp_path, holder):
    holder("lock")
    waited: list[BaseException] = []

    def wait_for_held() -> None:
        try:
            with open_client(f"chdb://{tmp_path / 'ch'}", lock_timeout_s=5):
                pass
        except EngineBusyError as error:
            waited.append(error)

    waiter = threading.Thread(target=wait_for_held)
    waiter.start()
    time.sleep(0.5)  # the waiter is inside its wait now
    started = time.monotonic()
    with open_client(f"chdb://{tmp_path / 'free'}", lock_timeout_s=5) as client:
        assert client.command("SELECT 1") == 1
    assert time.monotonic() - started < 3 and waiter.is_alive()
    waiter.join()
    assert waited and "another process holds" in str(waited[0])


def test_the_lock_is_shared_by_threads_of_one_process(tmp_path):
    dsn = f"chdb://{tmp_path / 'ch'}"
    answers = []
    with open_client(dsn, lock_timeout_s=1) as outer:
        thread = threading.Thread(
            target=lambda: answers.append(_query(dsn)), name="second user of the engine"
        )
        thread.start()
        thread.join(timeout=10)
        assert outer.command("SELECT 1") == 1
    assert answers == [2]


def _query(dsn: str) -> int:
    with open_client(dsn, lock_timeout_s=1) as client:
        return client.command("SELECT 2")
