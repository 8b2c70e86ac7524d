"""JSON bodies whose strings are not Unicode text (lone surrogates such as "\\ud800") get a 400."""
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.support.accounts import PASSWORD
from tests.support.hostile import FUZZ, KEY, SAFE_PLUGINS_ONLY, api, json_values

#: Every endpoint that reads a JSON body, with a body it would otherwise accept or judge.
JSON_ENDPOINTS = {
    ("POST", "/api/auth/login"): {"username": "alice", "password": PASSWORD},
    ("DELETE", "/api/backup"): {"name": "mc-backup-2026-01-01_00-00-00.db"},
    ("PUT", "/api/settings"): {"settings": {"general.site_name": "Ops"}},
    ("DELETE", "/api/settings"): {"key": "general.site_name"},
    ("POST", "/api/scheduler"): {"task_id": "auto_backup"},
    ("POST", "/api/backup/verify"): {"name": "mc-backup-2026-01-01_00-00-00.db"},
    ("POST", "/api/backup/restore"): {"name": "mc-backup-2026-01-01_00-00-00.db"},
}
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
bad_text = st.builds(lambda a, s, b: a + s + b, st.text(max_size=8), surrogates, st.text(max_size=8))


def plant(data, value, bad):
    """`value` with `bad` put in one place hypothesis picks: a key, a value, an item, or all of it."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: plant(data, value[key], bad)}
    if isinstance(value, dict):
        if data.draw(st.booleans()):
            return {**value, bad: 1}
        return {**value, data.draw(st.text(max_size=8)): bad}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(value) - 1))
        return value[:at] + [plant(data, value[at], bad)] + value[at + 1:]
    if isinstance(value, list):
        return value + [bad]
    return bad


def send(client, endpoint, body):
    # json.dumps writes a lone surrogate as the escape "\ud800", as a browser's JSON.stringify does.
    method, path = endpoint
    return client.open(path, method=method, data=json.dumps(body),
                       headers={"x-api-key": KEY, "Content-Type": "application/json"})


def assert_refused(response):
    assert response.status_code == 400, (response.status_code, response.get_data()[:300])
    assert response.json["error"] == "Validation failed"
    assert any("must be valid Unicode text" in d for d in response.json["details"]), response.json


@pytest.mark.parametrize("endpoint", sorted(JSON_ENDPOINTS), ids=" ".join)
def test_a_lone_surrogate_in_a_real_field_is_a_400(make_mc, endpoint):
    mc = make_mc(api_key=KEY, disabled_plugins=SAFE_PLUGINS_ONLY)
    mc.users.add("alice", PASSWORD, role="admin")
    body = json.loads(json.dumps(JSON_ENDPOINTS[endpoint]))
    field = next(iter(body))
    body[field] = {"settings": {"general.site_name": "\ud800"}}.get(field, "\ud800")
    response = send(api(mc), endpoint, body)
    assert_refused(response)
    assert response.json["details"][0].startswith(field)
    assert mc.settings.get("general.site_name") == "Mission Control"


def test_any_body_with_a_string_that_is_not_text_is_a_400_on_every_endpoint(make_mc):
    mc = make_mc(api_key=KEY, backup_rate_limit=0, disabled_plugins=SAFE_PLUGINS_ONLY)
    mc.users.add("alice", PASSWORD, role="admin")
    client = api(mc)

    @FUZZ
    @given(endpoint=st.sampled_from(sorted(JSON_ENDPOINTS)), data=st.data(), bad=bad_text,
           base=st.none() | json_values)
    @example(endpoint=("POST", "/api/auth/login"), data=None, bad="\udfff", base=None)
    def check(endpoint, data, bad, base):
        body = JSON_ENDPOINTS[endpoint] if base is None else base
        assert_refused(send(client, endpoint, plant(data, body, bad) if data else bad))

    check()
    assert mc.audit_store.query()[1] == 0, "a refused body was acted on"
