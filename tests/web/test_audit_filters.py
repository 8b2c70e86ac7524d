"""`GET /api/audit`'s filters and paging, as the page's Activity view uses them."""


def seed(mc):
    """Logins, a logout, a failed login and two backups, by two actors."""
    for action, actor in (("login", "alice"), ("backup_create", "alice"), ("login", "bob"),
                          ("login_failed", "mallory"), ("backup_create", "scheduler"),
                          ("logout", "alice")):
        mc.audit.emit(action, actor)


def actions(response):
    assert response.status_code == 200, response.json
    return [e["action"] for e in response.json["events"]]


def test_exclude_action_leaves_out_logins_and_counts_the_rest(mc, admin_client):
    seed(mc)
    response = admin_client.get("/api/audit?exclude_action=login,logout")
    assert set(actions(response)) == {"backup_create", "login_failed"}
    assert response.json["total"] == 3
    repeated = admin_client.get("/api/audit?exclude_action=login&exclude_action=logout")
    assert actions(repeated) == actions(response)
    everything = admin_client.get("/api/audit")
    assert "login" in actions(everything) and everything.json["total"] > 3


def test_exclude_action_with_actor_and_paging(mc, admin_client):
    seed(mc)
    first = admin_client.get("/api/audit?actor=alice&exclude_action=login&limit=1")
    assert actions(first) == ["logout"] and first.json["total"] == 2
    second = admin_client.get("/api/audit?actor=alice&exclude_action=login&limit=1&offset=1")
    assert actions(second) == ["backup_create"] and second.json["offset"] == 1


def test_too_many_excluded_actions_is_a_400(admin_client):
    names = ",".join(f"a{i}" for i in range(51))
    response = admin_client.get(f"/api/audit?exclude_action={names}")
    assert response.status_code == 400
    assert response.json["details"] == ["exclude_action: at most 50 actions"]


def test_exclude_action_is_documented_as_the_repeatable_parameter_it_is(client):
    """An OpenAPI client sends an exploded array as the parameter repeated, which the service
    takes: the document says array, not one string."""
    op = client.get("/api/openapi.json").json["paths"]["/api/audit"]["get"]
    [param] = [p for p in op["parameters"] if p["name"] == "exclude_action"]
    assert param["schema"]["type"] == "array" and param["schema"]["items"] == {"type": "string"}
    assert (param["style"], param["explode"]) == ("form", True)
    assert param["schema"]["maxItems"] == 50
