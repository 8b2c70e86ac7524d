"""Property tests with hostile input: backup names, settings values, JSON bodies, headers, cookies."""
import json
import os
import shutil
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.helpers import add_tasks
from tests.support.hostile import FUZZ, KEY, SAFE_PLUGINS_ONLY, api, json_values

NAME_ENDPOINTS = (("DELETE", "/api/backup"), ("POST", "/api/backup/verify"),
                  ("POST", "/api/backup/restore"), ("GET", "/api/backup/download"))
BODY_ENDPOINTS = (("POST", "/api/auth/login"), ("POST", "/api/auth/logout"),
                  ("DELETE", "/api/backup"), ("PUT", "/api/settings"),
                  ("DELETE", "/api/settings"), ("POST", "/api/scheduler"),
                  ("POST", "/api/backup/verify"), ("POST", "/api/backup/restore"),
                  ("POST", "/api/backup/upload"))


def call(client, method, path, body=None, **kwargs):
    headers = {"x-api-key": KEY, **kwargs.pop("headers", {})}
    if path == "/api/backup/download" and body is not None:
        return client.open(path, method=method, query_string={"name": body.get("name")},
                           headers=headers, **kwargs)
    return client.open(path, method=method, json=body, headers=headers, **kwargs)


def assert_clean(response):
    """Never a 500, and an error is the one JSON shape, naming no host path."""
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    if response.status_code >= 400 and response.status_code != 416:
        body = response.json
        assert isinstance(body["error"], str)
        assert "/tmp" not in json.dumps(body) and "Traceback" not in json.dumps(body)


def outside_state(root, backups):
    """Path -> (size, mtime, bytes) of every file under `root` outside the backups folder,
    the live database files left out (they change by design)."""
    state = {}
    for folder, dirs, files in os.walk(root):
        if os.path.abspath(folder).startswith(str(backups)):
            continue
        for name in files:
            if name.startswith("mission-control.db"):
                continue
            path = os.path.join(folder, name)
            st_ = os.lstat(path)
            with open(path, "rb") as f:
                state[path] = (st_.st_size, st_.st_mtime_ns, f.read())
    return state


CRAFTED_NAMES = [
    "../mission-control.db", "..", "../canary.db", "/etc/passwd", "..\\canary.db",
    "outside-link.db", "dir-link.db", "sub/../../canary.db", "%2e%2e/canary.db", ".backup.lock",
    "canary.db", "mission-control.db", "\x00.db", "a\nb.db", " .db", "x" * 300 + ".db",
    "mc-backup-2026-11-18_11-06-40.db", "mc-backup-2026-11-18_11-06-40.db/",
    "dir-link.db/outside.db", "dir-link.db/data/canary.db", "dir-link.db\\outside.db",
    "./mc-backup-2026-11-18_11-06-40.db", "mc-backup-2026-11-18_11-06-40.db\x00.txt",
]
traversal = st.sampled_from(CRAFTED_NAMES)
names = st.one_of(traversal, st.text(max_size=60), st.text(max_size=20).map(lambda s: s + ".db"),
                  st.builds(lambda a, b: a + b, traversal, st.text(max_size=10)),
                  st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=2))


def test_backup_names_never_reach_outside_the_backups_folder(make_mc, tmp_path):
    mc = make_mc(api_key=KEY, backup_rate_limit=0, disabled_plugins=SAFE_PLUGINS_ONLY)
    add_tasks(mc, 50)
    client = api(mc)
    made = mc.backups.create("t")
    keep = tmp_path / "pristine.db"
    shutil.copy(made.path, keep)
    backups = mc.backups.dir
    (tmp_path / "outside.db").write_bytes(b"canary outside the data folder")
    (mc.config.data_dir / "canary.db").write_bytes(b"canary beside the database")
    os.symlink(tmp_path / "outside.db", backups / "outside-link.db")
    os.symlink(tmp_path, backups / "dir-link.db")
    before = outside_state(tmp_path, backups)

    def attempt(name, endpoint):
        response = call(client, *endpoint, body={"name": name})
        assert_clean(response)
        assert response.status_code in (200, 206, 400, 404, 409), response.json
        assert outside_state(tmp_path, backups) == before, (endpoint, name)
        assert (backups / "outside-link.db").is_symlink()
        assert mc.db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert mc.db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 50
        if not made.path.exists():  # deleted by a legitimate request: put it back
            shutil.copy(keep, made.path)

    for name in CRAFTED_NAMES:  # every known trick on every endpoint, then random ones
        for endpoint in NAME_ENDPOINTS:
            attempt(name, endpoint)
    FUZZ(given(name=names, endpoint=st.sampled_from(NAME_ENDPOINTS))(attempt))()


settings_keys = st.sampled_from([
    "general.site_name", "general.auto_backup", "general.backup_retention_count",
    "diskguard.factor", "diskguard.min_free_mb", "unknown.key", "", "general.site_name "])
settings_values = st.one_of(json_values, st.sampled_from(
    ["true", "FALSE", " 12 ", "0", "1001", "1e3", "١٢", "1_000", 7.0, 7.5, 2**70, -1,
     "x" * 101, "tab\there", "nul\x00", float("nan"), float("inf")]))


@pytest.mark.slow
def test_settings_apply_all_or_nothing(make_mc):
    mc = make_mc(api_key=KEY, disabled_plugins=SAFE_PLUGINS_ONLY)
    client = api(mc)

    @FUZZ
    @given(changes=st.one_of(st.dictionaries(settings_keys, settings_values, max_size=4),
                             json_values))
    def check(changes):
        before = client.get("/api/settings", headers={"x-api-key": KEY}).json["settings"]
        events = mc.audit_store.query(action="settings_update")[1]
        response = call(client, "PUT", "/api/settings", body={"settings": changes})
        assert_clean(response)
        after = {s["key"]: s["value"] for s in
                 client.get("/api/settings", headers={"x-api-key": KEY}).json["settings"]}
        if response.status_code == 200:
            assert sorted(response.json["updated"]) == sorted(changes)
            for key in changes:
                assert after[key] == mc.settings.definitions[key].normalize(changes[key])
            assert mc.audit_store.query(action="settings_update")[1] == events + 1
        else:
            assert response.status_code == 400 and response.json["details"]
            assert after == {s["key"]: s["value"] for s in before}, "a refused update changed something"
            assert mc.audit_store.query(action="settings_update")[1] == events

    check()


raw_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=300),
    st.sampled_from([b"[" * 50_000 + b"]" * 50_000, b'{"name":' * 20_000, b"\xff\xfe{}",
                     b"1" * 5000, b'"' + b"\\u0000" * 1000 + b'"', b"NaN", b"-Infinity",
                     b'{"settings": {"general.site_name": "' + b"x" * 900_000 + b'"}}']))


def test_any_json_body_of_any_shape_and_size_gets_a_clean_answer(make_mc):
    mc = make_mc(api_key=KEY, backup_rate_limit=0, disabled_plugins=SAFE_PLUGINS_ONLY)
    client = api(mc)

    @FUZZ
    @given(endpoint=st.sampled_from(BODY_ENDPOINTS), raw=raw_bodies,
           content_type=st.sampled_from(["application/json", "text/plain", "", "multipart/form-data",
                                         "application/octet-stream"]))
    def check(endpoint, raw, content_type):
        method, path = endpoint
        response = client.open(path, method=method, data=raw,
                               headers={"x-api-key": KEY, "Content-Type": content_type})
        assert_clean(response)

    check()


def test_deeply_nested_json_is_a_400_not_a_crash(make_mc):
    client = api(make_mc(api_key=KEY))
    response = client.put("/api/settings", data=b"[" * 100_000 + b"]" * 100_000,
                          headers={"x-api-key": KEY})
    assert (response.status_code, response.json) == (400, {"error": "Request body required"})


header_text = st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"),
                      max_size=80)
cookie_text = st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""), max_size=120)


def test_any_headers_and_cookies_get_a_clean_answer(make_mc):
    mc = make_mc(api_key=KEY, trusted_proxies=frozenset({"127.0.0.1"}),
                 disabled_plugins=SAFE_PLUGINS_ONLY)
    mc.users.add("alice", "correct-horse-battery", role="admin")
    client = api(mc)
    header_names = st.sampled_from([
        "Cookie", "x-api-key", "Authorization", "Origin", "Sec-Fetch-Site", "X-Forwarded-For",
        "X-Forwarded-Proto", "Content-Type", "Range", "If-None-Match", "If-Modified-Since",
        "User-Agent", "Accept", "Host", "Transfer-Encoding"])

    @FUZZ
    @given(headers=st.dictionaries(header_names, st.one_of(header_text, cookie_text), max_size=5),
           endpoint=st.sampled_from([("GET", "/api/backup"), ("DELETE", "/api/backup"),
                                     ("GET", "/api/auth/me"), ("POST", "/api/auth/logout"),
                                     ("GET", "/api/audit"), ("GET", "/api/backup/download"),
                                     ("PUT", "/api/settings"), ("GET", "/api/health")]))
    def check(headers, endpoint):
        response = client.open(endpoint[1], method=endpoint[0], headers=headers,
                               data=b'{"name": "nope.db"}', environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert_clean(response)
        if endpoint[1] not in ("/api/health", "/api/auth/logout") and not ({"x-api-key", "Authorization"} & set(headers)):
            # A Host that is no host name at all (".", "..", 300 letters) is a bad request before
            # anything else; otherwise nobody gets in without a key or a session.
            allowed = (400, 401, 403, 404, 413) if "Host" in headers else (401, 403, 404, 413)
            assert response.status_code in allowed, response.status_code

    check()


def test_a_session_cookie_of_any_shape_is_just_unauthenticated(make_mc):
    client = api(make_mc())

    @FUZZ
    @given(token=cookie_text)
    def check(token):
        for name in ("mc-session", "__Host-mc-session"):
            client.set_cookie(name, token)
            response = client.get("/api/backup")
            assert (response.status_code, response.json) == (401, {"error": "Authentication required"})
            client.delete_cookie(name)

    check()


def test_the_audit_query_refuses_numbers_sqlite_cannot_hold(make_mc):
    client = api(make_mc(api_key=KEY))
    response = client.get("/api/audit?since=1332921927258947704586240", headers={"x-api-key": KEY})
    assert response.status_code == 400
    assert response.json["details"] == ["since: must be at most 9223372036854775807"]


def test_a_multipart_upload_without_boundary_is_a_400(make_mc):
    client = api(make_mc(api_key=KEY))
    response = client.post("/api/backup/upload", data=b"abc",
                           headers={"x-api-key": KEY, "Content-Type": "multipart/form-data"})
    assert (response.status_code, response.json) == (
        400, {"error": "Upload is not valid multipart/form-data"})
    assert not [p for p in os.listdir(client.application.mc.backups.dir) if p.startswith(".mc-")]


def test_settings_take_integral_json_floats_as_whole_numbers(make_mc):
    mc = make_mc(api_key=KEY)
    response = call(api(mc), "PUT", "/api/settings",
                    body={"settings": {"general.backup_retention_count": 12.0}})
    assert response.status_code == 200
    assert mc.settings.get("general.backup_retention_count") == 12
    refused = call(api(mc), "PUT", "/api/settings",
                   body={"settings": {"general.backup_retention_count": 12.5}})
    assert refused.status_code == 400

