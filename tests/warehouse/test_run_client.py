"""An embedded run keeps one warehouse client open from its resources' setup to their teardown: its steps
share it (no engine restart, no client handshake per step), and the run's end, failed or not, lets go of
the engine."""

import dagster as dg

from qtickets_assets.warehouse.engine import open_client
from qtickets_assets.warehouse.resource import ClickHouseResource


def _graph(clients: list, fail: bool = False) -> list:
    @dg.asset
    def first(clickhouse: ClickHouseResource) -> None:
        with clickhouse.get_client() as client:
            clients.append(client)
            client.command("CREATE TABLE IF NOT EXISTS shared (n UInt8) ENGINE = MergeTree ORDER BY n")
            client.command("INSERT INTO shared VALUES (1)")

    @dg.asset(deps=[first])
    def second(clickhouse: ClickHouseResource) -> None:
        with clickhouse.get_client() as client:
            clients.append(client)
            assert client.command("SELECT count() FROM shared") == 1  # the database is the resource's
        if fail:
            raise RuntimeError("second failed")

    return [first, second]


def _other_engine_opens(tmp_path) -> bool:
    # chDB serves one data directory per process while any client is open: a second one opens only if
    # the run closed every client it had.
    with open_client(f"chdb://{tmp_path / 'other'}", lock_timeout_s=1) as client:
        return client.command("SELECT 1") == 1


def test_the_steps_of_a_run_share_one_client_and_the_run_end_closes_it(clickhouse, tmp_path):
    clients: list = []
    assert dg.materialize(_graph(clients), resources={"clickhouse": clickhouse}).success
    assert len(clients) == 2 and clients[0] is clients[1]
    assert _other_engine_opens(tmp_path)


def test_a_failed_run_closes_its_client_too(clickhouse, tmp_path):
    clients: list = []
    result = dg.materialize(_graph(clients, fail=True), resources={"clickhouse": clickhouse},
                            raise_on_error=False)
    assert not result.success and clients[0] is clients[1]
    assert _other_engine_opens(tmp_path)


def test_outside_a_run_each_use_opens_its_own_client(clickhouse):
    with clickhouse.get_client() as one, clickhouse.get_client() as two:
        assert one is not two and one.command("SELECT 1") == two.command("SELECT 1") == 1
