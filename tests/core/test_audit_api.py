"""`GET /api/audit`: filters, paging, limits and validation."""
import pytest


@pytest.fixture
def trail(mc, clock):
    for i in range(30):
        mc.audit.emit("backup_create" if i % 3 else "backup_delete", "alice" if i % 2 else "bob",
                      target_type="backup", target_id=f"b{i}.db", detail={"i": i})
        clock.advance(10)
    return clock


def test_newest_first_with_parsed_detail(admin_client, trail):
    body = admin_client.get("/api/audit").json
    assert body["limit"] == 100 and body["offset"] == 0
    events = body["events"]
    assert events[-1]["action"] == "login"  # alice logged in before the trail was made
    assert [e["detail"]["i"] for e in events[:3]] == [29, 28, 27]
    assert set(events[0]) == {"id", "action", "actor", "actor_id", "target_type", "target_id",
                              "detail", "ip_address", "user_agent", "created_at"}
    assert body["total"] == 31


def test_filters_combine(admin_client, trail, clock):
    start = clock() - 300
    body = admin_client.get("/api/audit", query_string={
        "action": "backup_delete", "actor": "bob", "since": int(start), "until": int(start + 200)}).json
    assert [e["detail"]["i"] for e in body["events"]] == [18, 12, 6, 0]
    assert body["total"] == 4


def test_paging(admin_client, trail):
    page = admin_client.get("/api/audit?action=backup_create&limit=5&offset=5").json
    assert page["total"] == 20 and page["limit"] == 5 and page["offset"] == 5
    everything = admin_client.get("/api/audit?action=backup_create&limit=20").json["events"]
    assert len(everything) == 20 and page["events"] == everything[5:10]


def test_limit_is_capped_at_10000(admin_client, trail):
    assert admin_client.get("/api/audit?limit=50000").json["limit"] == 10000


@pytest.mark.parametrize("query, detail", [("limit=0", "limit: must be at least 1"),
                                           ("limit=abc", "limit: must be a whole number"),
                                           ("offset=-1", "offset: must be at least 0"),
                                           ("since=yesterday", "since: must be a whole number")])
def test_bad_parameters_are_400(admin_client, query, detail):
    response = admin_client.get(f"/api/audit?{query}")
    assert response.status_code == 400
    assert response.json["error"] == "Validation failed" and detail in response.json["details"]
