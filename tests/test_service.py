"""`qtickets-assets serve` against the real app (Starlette TestClient), a temp hook store and a real
Dagster instance in a temp directory."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from qtickets_assets.service import MAX_BODY, create_app, health_report
from qtickets_assets.webhooks import signature
from qtickets_assets.webhooks.store import HookStore

SECRET = "whsec-3f9a61"
ORDER = {"id": 1_004_217, "uniqid": "a1b2c3d4e5", "payed": True, "payed_at": "2026-11-20T12:00:00+03:00",
         "baskets": [{"id": 50_000_123, "show_id": 300_004, "price": 1500, "refunded_at": None}]}


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def store(tmp_path) -> HookStore:
    return HookStore(tmp_path / "hooks.sqlite3")


def no_instance() -> dg.DagsterInstance:
    raise AssertionError("the webhook route must not need the Dagster instance")


def make_client(store, instance=None, secret=SECRET, **kwargs) -> TestClient:
    instance_factory = (lambda: instance) if instance is not None else no_instance
    return TestClient(create_app(secret, store, instance_factory, ["qtickets_refresh"]), **kwargs)


@pytest.fixture
def client(store) -> TestClient:
    return make_client(store)


@pytest.fixture
def monitored(store, instance) -> TestClient:
    return make_client(store, instance)


def post(client, body: bytes, event="refunded", sign_with=SECRET, **headers):
    headers = {"Content-Type": "application/json", "X-Model-Name": "Order", "X-Event-Type": event,
               "User-Agent": "Qtickets-Webhooks/2.0", **headers}
    if sign_with is not None:
        headers["X-Signature"] = signature(body, sign_with)
    return client.post("/webhooks/qtickets", content=body, headers=headers)


def test_signed_hook_is_stored_before_the_200(client, store):
    body = json.dumps(ORDER).encode()
    response = post(client, body)
    assert response.status_code == 200
    assert response.json() == {"stored": True, "order_id": 1_004_217, "event": "refunded"}
    pending = store.pending()
    assert pending.order_ids == [1_004_217] and store.depth()[0] == 1
    assert pending.oldest_received_at == pytest.approx(time.time(), abs=30)


def test_signature_is_checked_over_the_raw_bytes_in_either_case(client, store):
    body = b'{"id": 1004217,   "payed": true}'  # the exact bytes count, not a re-serialisation
    upper = signature(body, SECRET).upper()
    assert post(client, body, sign_with=None, **{"X-Signature": upper}).status_code == 200
    reformatted = json.dumps(json.loads(body)).encode()
    assert post(client, reformatted, sign_with=None, **{"X-Signature": signature(body, SECRET)}).status_code \
        == 401
    assert store.depth()[0] == 1


@pytest.mark.parametrize("how", ["wrong secret", "missing", "garbage", "tampered body"])
def test_bad_or_missing_signature_is_401_and_stores_nothing(client, store, how):
    body = json.dumps(ORDER).encode()
    if how == "wrong secret":
        response = post(client, body, sign_with="not-the-secret")
    elif how == "missing":
        response = post(client, body, sign_with=None)
    elif how == "garbage":
        response = post(client, body, sign_with=None, **{"X-Signature": "zz" * 20})
    else:
        response = post(client, body.replace(b"1004217", b"1004218"), sign_with=None,
                        **{"X-Signature": signature(body, SECRET)})
    assert response.status_code == 401
    assert SECRET not in response.text
    assert store.depth() == (0, None)


def test_no_secret_configured_is_503_and_stores_nothing(store):
    client = make_client(store, secret=None)
    response = post(client, json.dumps(ORDER).encode(), sign_with="")
    assert response.status_code == 503 and "QTICKETS_WEBHOOK_SECRET" in response.json()["error"]
    assert store.depth()[0] == 0


@pytest.mark.parametrize(("body", "headers"), [
    (b'{"id": 1004217, "payed": tr', {}),  # truncated JSON
    (b"<html>nope</html>", {}),
    (b'[{"id": 1004217}]', {}),  # not an order object
    (b'{"uniqid": "a1b2c3d4e5"}', {}),  # no id
    (b'{"id": true}', {}),
    (b'{"id": 1004217}', {"X-Event-Type": ""}),
    (b'{"id": 1004217}', {"X-Model-Name": "Client"}),
])
def test_signed_but_not_an_order_hook_is_400(client, store, body, headers):
    assert post(client, body, **headers).status_code == 400
    assert store.depth()[0] == 0


def test_every_documented_event_is_stored_and_an_undocumented_one_too(client, store):
    events = ["created", "updated", "payed", "deleted", "refunded", "checked", "exchanged"]
    for number, event in enumerate(events):
        body = json.dumps({**ORDER, "id": 2_000_000 + number}).encode()
        assert post(client, body, event=event).status_code == 200
    assert store.pending().order_ids == [2_000_000 + n for n in range(len(events))]


def test_body_over_one_mib_is_413_while_reading(client, store):
    big = json.dumps({**ORDER, "pad": "x" * MAX_BODY}).encode()
    assert post(client, big).status_code == 413

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        yield big[: MAX_BODY // 2]
        yield big[MAX_BODY // 2:]

    headers = {"X-Event-Type": "updated", "X-Signature": signature(big, SECRET)}
    assert client.post("/webhooks/qtickets", content=chunks(), headers=headers).status_code == 413
    assert store.depth()[0] == 0
    exactly = json.dumps({**ORDER, "pad": ""}).encode()
    exactly = exactly[:-1] + b" " * (MAX_BODY - len(exactly)) + b"}"
    assert len(exactly) == MAX_BODY and post(client, exactly).status_code == 200


def test_redelivery_is_harmless(client, store):
    body = json.dumps(ORDER).encode()
    for _ in range(3):
        assert post(client, body).status_code == 200
    pending = store.pending()
    assert pending.order_ids == [1_004_217]  # one re-read
    assert store.clear(pending.order_ids, pending.up_to) == 3
    assert store.depth() == (0, None)


def test_a_crash_after_storing_loses_nothing(store, monkeypatch):
    """The hook is on disk before the answer is produced: a failure right after `add` (the process dying
    before it answers) still leaves the hook pending; the vendor's retry is then a harmless redelivery."""
    client = make_client(store, raise_server_exceptions=False)
    add = HookStore.add

    def add_then_crash(self, order_id, event, received_at=None):
        add(self, order_id, event, received_at)
        raise RuntimeError("process killed between store and answer")

    monkeypatch.setattr(HookStore, "add", add_then_crash)
    assert post(client, json.dumps(ORDER).encode()).status_code == 500
    monkeypatch.undo()
    assert HookStore(store.path).pending().order_ids == [1_004_217]  # a fresh connection sees it
    assert post(client, json.dumps(ORDER).encode()).status_code == 200
    assert store.pending().order_ids == [1_004_217]


# --- health and metrics -----------------------------------------------------------------------------------

FACTS = ["fact_qtickets_sales_daily", "fact_qtickets_inventory_latest"]


def run_job(instance, assets: list[str], job_name="qtickets_refresh", fail=False, checks=()):
    """A real run that materializes stand-ins of the given assets (row counts in their metadata) and
    evaluates `checks`: (asset, check name, passed, severity)."""
    def make(name, rows):
        @dg.asset(name=name)
        def _asset():
            if fail:
                raise RuntimeError("boom")
            return dg.MaterializeResult(metadata={"dagster/row_count": rows, "qtickets/api_requests": 7,
                                                  "qtickets/api_retries": 1})
        return _asset

    def check(asset, name, passed, severity):
        @dg.asset_check(asset=asset, name=name)
        def _check():
            return dg.AssetCheckResult(passed=passed, severity=severity)
        return _check

    assets_defs = [make(name, 10 * (i + 1)) for i, name in enumerate(assets)]
    job = dg.define_asset_job(job_name, selection=dg.AssetSelection.all())
    defs = dg.Definitions(assets=assets_defs, asset_checks=[check(*c) for c in checks], jobs=[job])
    return defs.resolve_job_def(job_name).execute_in_process(instance=instance, raise_on_error=False)


def test_healthz_is_200_with_both_facts_fresh(monitored, instance):
    assert run_job(instance, FACTS).success
    response = monitored.get("/healthz/qtickets_api")
    assert response.status_code == 200
    report = response.json()
    assert report["healthy"] is True
    assert set(report["facts"]) == set(FACTS)
    assert all(fact["fresh"] and fact["age_s"] < 60 for fact in report["facts"].values())
    assert report["last_runs"]["qtickets_refresh"]["status"] == "SUCCESS"


def test_healthz_is_503_when_a_fact_is_missing_or_old(monitored, instance):
    assert monitored.get("/healthz/qtickets_api").status_code == 503  # nothing materialized yet
    run_job(instance, ["fact_qtickets_sales_daily"])
    response = monitored.get("/healthz/qtickets_api")
    assert response.status_code == 503
    facts = response.json()["facts"]
    assert facts["fact_qtickets_sales_daily"]["fresh"]
    assert not facts["fact_qtickets_inventory_latest"]["fresh"]
    run_job(instance, ["fact_qtickets_inventory_latest"])
    assert monitored.get("/healthz/qtickets_api").status_code == 200
    later = health_report(instance, [], now=time.time() + 2 * 3600 + 60)  # the same events, 2 h later
    assert later["healthy"] is False and all(not f["fresh"] for f in later["facts"].values())


def test_healthz_is_503_while_a_check_finds_a_fresh_facts_numbers_wrong(monitored, instance):
    error, warn = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
    assert run_job(instance, FACTS, checks=[("fact_qtickets_inventory_latest", "sold_within_capacity", False,
                                             error)]).success  # no check blocks the run
    response = monitored.get("/healthz/qtickets_api")
    assert response.status_code == 503
    facts = response.json()["facts"]
    assert all(f["fresh"] for f in facts.values())
    assert facts["fact_qtickets_inventory_latest"]["failed_checks"] == ["sold_within_capacity"]
    assert run_job(instance, FACTS, checks=[("fact_qtickets_inventory_latest", "sold_within_capacity", True,
                                             error), ("fact_qtickets_sales_daily", "counts_non_negative",
                                                      False, warn)]).success
    assert monitored.get("/healthz/qtickets_api").status_code == 200  # passed again; a warning is no harm


def test_health_reads_every_check_of_the_facts():
    from qtickets_assets import definitions
    from qtickets_assets.service import FACT_CHECKS

    keys = definitions.defs.resolve_asset_graph().asset_check_keys
    assert {fact: set(names) for fact, names in FACT_CHECKS.items()} == {
        fact: {k.name for k in keys if k.asset_key.to_user_string() == fact} for fact in FACT_CHECKS}


def test_healthz_does_not_count_a_failed_run(monitored, instance):
    assert not run_job(instance, FACTS, fail=True).success
    response = monitored.get("/healthz/qtickets_api")
    assert response.status_code == 503
    assert response.json()["last_runs"]["qtickets_refresh"]["status"] == "FAILURE"


def scrape(monitored) -> dict[str, dict[tuple, float]]:
    response = monitored.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_metrics_parse_and_report_state(monitored, instance, store):
    metrics = scrape(monitored)
    assert metrics["qtickets_webhook_queue_depth"] == {(): 0}
    assert metrics["qtickets_healthy"] == {(): 0}

    assert run_job(instance, [*FACTS, "stg_qtickets_api_orders_raw"]).success
    store.add(11, "payed", received_at=time.time() - 90)
    store.add(12, "refunded")
    assert post(monitored, json.dumps(ORDER).encode()).status_code == 200
    post(monitored, b"{}", sign_with="wrong")
    metrics = scrape(monitored)
    assert metrics["qtickets_webhook_queue_depth"] == {(): 3}
    assert 90 <= metrics["qtickets_webhook_oldest_pending_age_seconds"][()] < 150
    assert metrics["qtickets_healthy"] == {(): 1}
    age = metrics["qtickets_asset_age_seconds"]
    assert set(age) == {(("asset", name),) for name in [*FACTS, "stg_qtickets_api_orders_raw"]}
    assert all(0 <= value < 60 for value in age.values())
    assert metrics["qtickets_asset_rows_written"][(("asset", "fact_qtickets_inventory_latest"),)] == 20
    assert metrics["qtickets_asset_api_requests"][(("asset", "stg_qtickets_api_orders_raw"),)] == 7
    assert metrics["qtickets_asset_api_retries"][(("asset", "stg_qtickets_api_orders_raw"),)] == 1
    refresh = (("job", "qtickets_refresh"),)
    assert metrics["qtickets_job_last_run_status"] == {(*refresh, ("status", "SUCCESS")): 1}
    assert metrics["qtickets_job_last_finished_run_success"] == {refresh: 1}
    assert 0 < metrics["qtickets_job_last_finished_run_duration_seconds"][refresh] < 60
    assert metrics["qtickets_webhooks_received_total"] == {(("event", "refunded"),): 1}
    assert metrics["qtickets_webhooks_rejected_total"] == {(("reason", "bad_signature"),): 1}

    run_job(instance, FACTS, fail=True)
    metrics = scrape(monitored)
    assert metrics["qtickets_job_last_finished_run_success"] == {refresh: 0}
    assert metrics["qtickets_job_last_run_status"] == {(*refresh, ("status", "FAILURE")): 1}
