"""The bench/ scripts in their --smoke mode (tiny sizes), so they cannot rot. Numbers are not judged here:
bench/README.md has the measurements. What is checked is that each script measures what it says it does."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test builds a sandbox account or runs a benchmark

BENCH = Path(__file__).resolve().parents[2] / "bench"


def script(name: str):
    """Import bench/<name>.py under a private module name (the scripts import bench/common.py)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _restore_env(monkeypatch):
    # The scripts set QTICKETS_PARTITIONS_START for their own processes; keep it out of other tests.
    monkeypatch.setenv("QTICKETS_PARTITIONS_START", os.environ.get("QTICKETS_PARTITIONS_START", "2026-10-01"))


def test_throughput_smoke():
    report = script("throughput").main(["--smoke"])
    assert report["orders"] == 500 and report["tickets"] > report["orders"]
    assert report["pipeline_tickets_per_s"] > 0 and report["floor_tickets_per_s"] > 0


def test_bi_latency_smoke():
    report = script("bi_latency").main(["--smoke"])
    assert report["fact_rows"] > 0
    for view in ("v_sales_latest", "v_sales_14d"):
        assert report[view]["rows"] > 0 and report[view]["median_ms"] > 0


def test_tick_smoke():
    report = script("tick").main(["--smoke"])  # asserts inside: no orders request below the range's start
    assert report["requests_median"] >= report["polled_shows"] + 3  # 2 orders calls, events once at least
    assert report["response_kb_median"] > 0 and report["wall_s_median"] > 0


def test_tick_and_history_from_a_sandbox_server_smoke():
    tick = script("tick")
    report = tick.main(["--smoke", "--server"])
    assert report["sandbox_server"] and report["watermark_requests_median"] == 1
    report = tick.main(["--smoke", "--history", "--server"])
    assert report["sandbox_server"] and report["mode"] == "history"
    assert report["requests_median"] >= report["history_orders"] / 100 + report["polled_shows"]


def test_memory_smoke():
    (result,) = script("memory").main(["--smoke"])["results"]
    assert result["success"] and result["staged_rows"] > result["orders"] * 0.9
    assert result["peak_rss_mb"] >= result["baseline_rss_mb"] > 0


def test_e2e_ours_smoke():
    report = script("e2e_vs_dlt").main(["--smoke", "--runners", "ours"])
    assert report["ours"]["orders"] == report["account_orders"] > 0
    assert report["ours"]["tickets"] > report["ours"]["orders"]


def test_e2e_dlt_smoke():
    e2e = script("e2e_vs_dlt")
    python = os.environ.get("BENCH_DLT_PYTHON", sys.executable)
    if not e2e.dlt_available(python):
        pytest.skip(f"dlt[duckdb] is not importable by {python}: pip install -e '.[bench]' "
                    "(or point BENCH_DLT_PYTHON at a venv that has it)")
    report = e2e.main(["--smoke", "--dlt-python", python])
    assert report["dlt"]["orders"] == report["ours"]["orders"] == report["account_orders"]
    assert report["dlt"]["tickets"] == report["ours"]["tickets"]
    assert report["ours_over_dlt"] > 0


@pytest.mark.slow
def test_backfill_smoke():
    python = os.environ.get("BENCH_DLT_PYTHON", sys.executable)
    report = script("backfill").main(["--smoke", "--dlt-python", python])
    ours, floor = report["ours"], report["floor"]
    assert ours["orders"] == floor["orders"] == report["account_orders"] > 0
    assert ours["tickets"] == floor["tickets"] > ours["orders"]
    # Each order page once, plus the late-payment pass (nothing created before the account: one request).
    assert report["order_pages"] <= ours["requests"] <= report["order_pages"] + 1
    assert ours["requests_by_path"] == {"orders": ours["requests"]}
    assert ours["cpu_s"] > 0 and floor["cpu_s"] > 0 and report["in_ram"]["pipeline_tickets_per_s"] > 0
    if isinstance(report["dlt"], dict):
        assert report["dlt"]["tickets"] == ours["tickets"] and report["ours_cpu_over_dlt"] > 0


def test_sandbox_pages_smoke():
    report = script("sandbox_pages").main(["--smoke"])
    for clock in ("frozen", "real"):
        assert set(report[clock]["ratio"]) == {"all", "window", "paid_late"}
        for size in ("2000", "6000"):
            assert all(report[clock][size][name]["first_page_rows"] > 0 for name in ("all", "window"))


def test_repair_smoke():
    report = script("repair").main(["--smoke"])
    off, on = report["tick_repair_off"], report["tick_repair_on"]
    assert not off["check_passed"] and off["repair"]["capped"] and off["id_requests"] == 0
    assert on["check_passed"] and on["repair"]["keys"] == [f"show:{report['show']}"]
    # The repair asks for the show's paid orders by id, 100 a request: the tick's extra requests.
    assert on["ids_asked"] == on["repair"]["reread"] > 0
    assert on["id_requests"] == -(-on["repair"]["reread"] // 100) == report["extra_requests"]
