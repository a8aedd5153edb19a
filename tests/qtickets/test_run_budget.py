"""One retry budget per run when the run's steps are separate processes (server mode)."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from qtickets_assets.definitions import build_definitions
from qtickets_assets.qtickets.client import RetryBudget
from qtickets_assets.qtickets.resource import QTicketsResource, RunRetryBudget
from qtickets_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STEP = """
import sys
from pathlib import Path
from qtickets_assets.qtickets.client import RetryPolicy
from qtickets_assets.qtickets.resource import RunRetryBudget

budget = RunRetryBudget(RetryPolicy(budget=5), Path(sys.argv[1]), sys.argv[2])
print(sum(budget.spend(0.0, 0.0) for _ in range(10)))
"""


@pytest.mark.slow
def test_the_steps_of_a_run_in_separate_processes_spend_one_budget(tmp_path):
    path = tmp_path / "retry_budgets.sqlite3"
    steps = [subprocess.Popen([sys.executable, "-c", STEP, str(path), run], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE) for run in ("run-a", "run-a", "run-a", "run-b")]
    granted = [int(step.communicate(timeout=60)[0]) for step in steps]
    assert sum(granted[:3]) == 5  # three steps of run-a: 5 retries in all, not 5 each
    assert granted[3] == 5  # another run has its own budget


def test_the_budget_is_shared_only_where_steps_are_processes(tmp_path):
    server = build_definitions(Settings(clickhouse_dsn="http://localhost:8123"))
    embedded = build_definitions(Settings(qtickets_data_dir=tmp_path))
    assert server.resources["qtickets"].shared_budget is True
    assert embedded.resources["qtickets"].shared_budget is False
    with dg.instance_for_test() as instance:
        with dg.build_resources({"qtickets": QTicketsResource(shared_budget=True)}, instance=instance,
                                dagster_run=dg.DagsterRun(job_name="j", run_id="r1")) as resources:
            assert isinstance(resources.qtickets._budget, RunRetryBudget)  # noqa: SLF001
    with dg.build_resources({"qtickets": QTicketsResource()}) as resources:
        assert type(resources.qtickets._budget) is RetryBudget  # noqa: SLF001
