"""Events and seat inventory: client + sandbox, against the sandbox's own ground truth (ARCHITECTURE §4)."""

from collections import defaultdict
from datetime import date, timedelta

import httpx
import pytest

from qtickets_assets.qtickets.client import (
    EVENT_SELECT,
    QTicketsClient,
    QTicketsError,
    current_shows,
    started_shows,
)
from qtickets_assets.qtickets.models import RecordError
from qtickets_assets.qtickets.query import select_tree, selected_only
from qtickets_assets.sandbox import SANDBOX_BASE_URL, SANDBOX_TOKEN, Account, Sandbox, render_order
from tests.builders import AS_OF

OPENED = date(2026, 10, 1)


def sandbox(**options) -> Sandbox:
    return Sandbox(opened_on=OPENED, clock=lambda: AS_OF, **options)


def client(box: Sandbox, **options) -> QTicketsClient:
    return QTicketsClient(SANDBOX_BASE_URL, SANDBOX_TOKEN, transport=box.transport(), **options)


def roll_up(rows):
    """ARCHITECTURE §4: each root_id once, max of its counters."""
    roots = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        r = roots[row.root_id]
        r[:] = max(r[0], row.max_quantity), max(r[1], row.free_quantity), max(r[2], row.payed_quantity)
    return {"capacity": sum(r[0] for r in roots.values()), "free_seats": sum(r[1] for r in roots.values()),
            "sold_seats": sum(r[2] for r in roots.values())}


def test_events_match_dim_truth_and_select_trims_the_payload():
    box = sandbox()
    with client(box) as api:
        events = list(api.events())
    truth = box.expected_dim_events(AS_OF)
    got = {
        (e.id, s.id): {"event_name": e.name, "city": e.city.name, "city_timezone": e.city.timezone,
                       "venue": e.place_name, "show_start_at": s.start_date, "show_finish_at": s.finish_date,
                       "is_active": e.is_active and s.is_active,
                       "is_deleted": e.deleted_at is not None or s.deleted_at is not None}
        for e in events for s in e.shows
    }
    assert got == truth
    assert any(v["is_deleted"] for v in truth.values()) and any(v["is_active"] for v in truth.values())
    assert len({tz for v in truth.values() for tz in [v["city_timezone"]]}) >= 4
    tree = select_tree(EVENT_SELECT)
    assert all(selected_only(e.raw, tree) for e in events)
    assert all(s.start_date.utcoffset() == timedelta(hours=3) for e in events for s in e.shows)
    # perPage 100 honoured: 25 events in one page
    assert len(box.requests) == 1


def test_events_when_the_server_ignores_select():
    box = sandbox(honour_select=False)
    with client(box, per_page=10) as api:
        events = list(api.events())
    with client(sandbox()) as api:
        trimmed = list(api.events())
    def key(e):
        return (e.id, e.name, e.is_active, e.city.timezone, e.deleted_at,
                [(s.id, s.is_active, s.start_date, s.finish_date, s.deleted_at) for s in e.shows])

    assert [key(e) for e in events] == [key(e) for e in trimmed]
    assert "scheme_properties" in events[0].raw["shows"][0]
    assert len(box.requests) == 3  # 25 events, 10 a page


def test_dotted_select_on_the_wire():
    box = sandbox()
    http = httpx.Client(base_url=SANDBOX_BASE_URL, transport=box.transport(),
                        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"})
    select = ["id", "city.name", "shows.id"]
    body = http.request("GET", "events", json={"select": select, "perPage": 2}).json()
    assert body["paging"] == {"perPage": 2, "currentPage": 1, "total": 25}
    assert all(set(e) == {"id", "city", "shows"} and set(e["city"]) == {"name"} for e in body["data"])
    assert all(set(s) == {"id"} for e in body["data"] for s in e["shows"])
    full = http.request("GET", "events", json={"perPage": 2}).json()["data"]
    assert "scheme_properties" in full[0]["shows"][0] and len(str(full)) > 10 * len(str(body["data"]))


def test_seat_inventory_matches_truth_with_several_tariffs_per_seat():
    box = sandbox()
    with client(box) as api:
        shows = current_shows(api.events(), AS_OF)
        seats = dict(api.seats_of(show.id for _, show in shows))
    truth = box.expected_inventory(AS_OF)
    assert set(seats) == set(truth) and len(truth) >= 10
    for show_id, rows in seats.items():
        assert roll_up(rows) == {k: v for k, v in truth[show_id].items() if k != "event_id"}, show_id
        naive = sum(r.max_quantity for r in rows)
        assert naive > truth[show_id]["capacity"], "every seat is offered in more than one tariff"
        for row in rows:
            assert row.payed_quantity <= row.ordered_quantity
            assert row.free_quantity + row.ordered_quantity + row.in_basket_quantity <= row.max_quantity
            assert row.id.endswith(row.root_id) and row.multiprice_code
    assert all(truth[show.id]["event_id"] == event.id for event, show in shows)
    assert any(t["sold_seats"] > 0 for t in truth.values())
    assert any(r.admission for rows in seats.values() for r in rows)  # GA categories
    assert any(not r.admission for rows in seats.values() for r in rows)  # reserved seating


def test_inventory_agrees_with_the_orders():
    """Paid seats of a show = every ticket of it sold so far under the sales rules."""
    box = sandbox()
    sold = defaultdict(int)
    for (_day, _event, show), v in box.expected_sales_daily(AS_OF).items():
        sold[show] += v["tickets_sold"]
    inventory = box.expected_inventory(AS_OF)
    assert all(inv["sold_seats"] == sold[show] for show, inv in inventory.items())
    assert sum(sold[s] for s in inventory) > 1000


def test_seats_without_select_are_a_bare_hierarchy():
    box = sandbox()
    show_id = next(iter(box.expected_inventory(AS_OF)))
    http = httpx.Client(base_url=SANDBOX_BASE_URL, transport=box.transport(),
                        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"})
    data = http.request("GET", f"shows/{show_id}/seats").json()["data"]
    zone = next(iter(data.values()))
    assert set(next(iter(zone["seats"].values()))) == {"seat_id", "admission"}
    assert http.request("GET", "shows/999/seats", json={}).json()["info"] == {"id": 999, "resource": "Show"}
    assert http.request("GET", "shows/abc/seats", json={}).json()["info"] == {"id": 0, "resource": "Show"}


def test_client_refuses_seats_without_counters(respx_mock):
    respx_mock.get("https://api.test/v1/shows/7/seats").respond(
        json={"data": {"PARTERRE": {"seats": {"P-1;1": {"seat_id": "P-1;1", "admission": False}}}}})
    with QTicketsClient("https://api.test/v1", "t") as api, pytest.raises(QTicketsError, match="hierarchy"):
        api.show_seats(7)
    respx_mock.get("https://api.test/v1/shows/8/seats").respond(
        json={"data": {"full_A-1;1": {"root_id": "A-1;1", "max_quantity": 1, "free_quantity": 1}}})
    with QTicketsClient("https://api.test/v1", "t") as api, \
            pytest.raises(RecordError, match=r"id=full_A-1;1.*ordered_quantity: Field required"):
        api.show_seats(8)


def test_client_reads_seats_when_only_flat_is_honoured():
    box = sandbox(honour_select=False)
    show_id = next(iter(box.expected_inventory(AS_OF)))
    with client(box) as api:
        rows = api.show_seats(show_id)
    truth = box.expected_inventory(AS_OF)[show_id]
    assert roll_up(rows) == {k: v for k, v in truth.items() if k != "event_id"}


def test_the_account_at_t_does_not_depend_on_how_far_it_was_planned():
    """Every process must see the same account: a fresh plan up to T equals one planned far beyond."""
    far, near = Account(42, OPENED, 120), Account(42, OPENED, 120)
    far.orders_until(AS_OF + timedelta(days=40))
    assert [render_order(o, AS_OF) for o in near.orders_until(AS_OF)] == \
        [render_order(o, AS_OF) for o in far.orders_until(AS_OF)]
    other_seed = Account(43, OPENED, 120).orders_until(AS_OF)
    assert [o.created_at for o in other_seed] != [o.created_at for o in near.orders_until(AS_OF)]


def test_inventory_moves_with_the_clock_and_is_a_pure_function_of_time():
    later = AS_OF + timedelta(days=2)
    a, b = sandbox(), Sandbox(opened_on=OPENED, clock=lambda: later)
    assert a.expected_inventory(AS_OF) == b.expected_inventory(AS_OF)
    before, after = a.expected_inventory(AS_OF), a.expected_inventory(later)
    common = set(before) & set(after)
    assert sum(after[s]["sold_seats"] for s in common) > sum(before[s]["sold_seats"] for s in common)


def test_started_shows_keep_their_snapshot_unless_cancelled_before_the_start():
    """A show that started is final; deleted after its start it stays; deleted before, it leaves."""
    from tests.builders import event

    start = event(1, "a", [11, 12]).shows[0].start_date  # 2026-12-01 19:00 MSK, show 12 a day later
    after_both = start + timedelta(days=2)
    events = [
        event(1, "live", [11, 12]),
        event(2, "deleted after its shows", [21], deleted=start + timedelta(hours=3)),
        event(3, "deleted before its show", [31], deleted=start - timedelta(days=1)),
    ]
    assert [s.id for _, s in started_shows(events, after_both)] == [11, 12, 21]
    assert [s.id for _, s in started_shows(events, start)] == [11, 21]
    assert started_shows(events, start - timedelta(seconds=1)) == []
