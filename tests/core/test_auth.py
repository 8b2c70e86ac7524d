"""Login, logout, sessions, API keys, roles and cross-site protection, through the real WSGI app."""
import pytest
from werkzeug.test import Client

from mission_control.users import SESSION_SECONDS, token_hash
from mission_control.web import WebApp

from tests.support.accounts import PASSWORD


def test_login_sets_a_strict_httponly_session_cookie(auth):
    response = auth.login()
    assert response.status_code == 200
    assert response.json == {"user": {"id": 1, "username": "alice", "display_name": "alice",
                                      "role": "admin"}}
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("mc-session=")
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"):
        assert flag in cookie
    assert "Secure" not in cookie


def test_only_the_sha256_of_the_token_is_stored(auth, mc):
    token = auth.login().headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert len(bytes.fromhex(token)) == 32
    stored = [r["token_hash"] for r in mc.db.query("SELECT token_hash FROM user_sessions")]
    assert stored == [token_hash(token)]


def test_secure_cookie_when_forced(make_mc, users):
    mc = make_mc(cookie_secure=True)
    mc.users.add("sam", PASSWORD, role="admin")
    client = Client(WebApp(mc))
    cookie = client.post("/api/auth/login", json={"username": "sam", "password": PASSWORD}).headers["Set-Cookie"]
    assert cookie.startswith("__Host-mc-session=") and "Secure" in cookie
    assert client.get("/api/auth/me").json["user"]["username"] == "sam"


def test_secure_cookie_name_is_read_too(mc, users):
    client = Client(WebApp(mc))
    response = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD},
                           base_url="https://mc.example")
    assert response.headers["Set-Cookie"].startswith("__Host-mc-session=")
    me = client.get("/api/auth/me", base_url="https://mc.example")
    assert me.json["user"]["username"] == "alice"


@pytest.mark.parametrize("body", [None, "", "not json", [], {"username": "alice"},
                                  {"password": PASSWORD}, {"username": " ", "password": "x"},
                                  {"username": 5, "password": PASSWORD}])
def test_login_needs_username_and_password(client, users, body):
    if isinstance(body, (dict, list)):
        response = client.post("/api/auth/login", json=body)
    else:
        response = client.post("/api/auth/login", data=body)
    assert response.status_code == 400
    assert response.json == {"error": "Username and password are required"}


def test_wrong_password_and_unknown_user_answer_alike(client, users, mc):
    wrong = client.post("/api/auth/login", json={"username": "alice", "password": "nope" * 4})
    unknown = client.post("/api/auth/login", json={"username": "mallory", "password": "nope" * 4})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json == {"error": "Invalid credentials"}
    actions = [e["action"] for e in mc.audit_store.query()[0]]
    assert actions == ["login_failed", "login_failed"]


def test_login_rate_limit_per_ip_then_recovers(client, users, clock):
    for _ in range(5):
        assert client.post("/api/auth/login", json={"username": "alice", "password": "x" * 12}).status_code == 401
    blocked = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    other_ip = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD},
                           environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other_ip.status_code == 200
    clock.advance(61)
    assert client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200


def test_successful_logins_do_not_count_against_the_limit(client, users):
    # Opening the page on two devices, a tab per hour, ...: each a login that worked.
    for _ in range(8):
        ok = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        assert ok.status_code == 200
    for _ in range(5):
        assert client.post("/api/auth/login",
                           json={"username": "alice", "password": "x" * 12}).status_code == 401
    blocked = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert blocked.status_code == 429
    # The message says what happened once; when to try again is Retry-After's.
    assert blocked.json == {"error": "Too many login attempts: 5 failed within a minute from "
                                     "this address"}
    assert "again" not in blocked.json["error"].lower()
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60


def test_a_success_between_failures_neither_counts_nor_clears_them(client, users, clock):
    def login(password):
        return client.post("/api/auth/login", json={"username": "alice", "password": password})

    for _ in range(4):
        assert login("x" * 12).status_code == 401
    assert login(PASSWORD).status_code == 200  # the user's own login: not a failure, no reset
    assert login("x" * 12).status_code == 401  # the fifth failure within the minute
    blocked = login(PASSWORD)
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= 60
    assert login("x" * 12).status_code == 429
    clock.advance(61)
    assert login(PASSWORD).status_code == 200


def test_forwarded_for_is_believed_only_from_trusted_proxies(make_mc, clock):
    mc = make_mc(trusted_proxies=frozenset({"127.0.0.1"}))
    mc.users.add("alice", PASSWORD, role="admin")
    client = Client(WebApp(mc))

    def login(password, forwarded, remote="127.0.0.1"):
        return client.post("/api/auth/login", json={"username": "alice", "password": password},
                           headers={"X-Forwarded-For": forwarded},
                           environ_base={"REMOTE_ADDR": remote})

    assert login(PASSWORD, "198.51.100.1", remote="192.0.2.1").status_code == 200
    assert mc.audit_store.query(action="login")[0][0]["ip_address"] == "192.0.2.1"
    for _ in range(5):
        login("x" * 12, "203.0.113.7")
    # The limit applies to the real client behind the proxy, not to the proxy itself.
    assert login(PASSWORD, "203.0.113.7").status_code == 429
    assert login(PASSWORD, "203.0.113.8, 127.0.0.1").status_code == 200
    assert mc.audit_store.query(action="login")[0][0]["ip_address"] == "203.0.113.8"


def test_me_and_logout(auth, client, mc):
    auth.login()
    assert client.get("/api/auth/me").json["user"]["username"] == "alice"
    response = auth.logout()
    assert response.json == {"ok": True}
    assert "mc-session=;" in response.headers.getlist("Set-Cookie")[0]
    assert client.get("/api/auth/me").status_code == 401
    assert mc.db.query("SELECT * FROM user_sessions") == []
    assert mc.audit_store.query(action="logout")[1] == 1


def test_a_stolen_cookie_is_useless_after_logout(auth, client, mc):
    token = auth.login().headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    auth.logout()
    thief = Client(WebApp(mc))
    thief.set_cookie("mc-session", token)
    assert thief.get("/api/backup").status_code == 401


def test_sessions_expire_after_seven_days(auth, client, clock):
    auth.login()
    clock.advance(SESSION_SECONDS - 1)
    assert client.get("/api/auth/me").status_code == 200
    clock.advance(2)
    assert client.get("/api/auth/me").json == {"error": "Authentication required"}


def test_password_change_ends_sessions(auth, client, mc):
    auth.login()
    mc.users.set_password("alice", "another-long-password")
    assert client.get("/api/auth/me").status_code == 401


@pytest.mark.parametrize("headers", [{"x-api-key": "s3cret-key-for-tests"},
                                     {"Authorization": "Bearer s3cret-key-for-tests"}])
def test_api_key_acts_as_admin_api(make_mc, headers):
    client = Client(WebApp(make_mc(api_key="s3cret-key-for-tests")))
    assert client.get("/api/auth/me", headers=headers).json["user"]["username"] == "api"
    made = client.post("/api/backup", headers=headers)
    assert made.status_code == 200


@pytest.mark.parametrize("headers", [{"x-api-key": "wrong"}, {"Authorization": "Bearer wrong"},
                                     {"x-api-key": ""}, {}])
def test_bad_or_missing_api_key_is_401(make_mc, headers):
    client = Client(WebApp(make_mc(api_key="s3cret-key-for-tests")))
    response = client.get("/api/backup", headers=headers)
    assert response.status_code == 401
    assert response.json == {"error": "Authentication required"}


def test_api_key_unset_means_no_key_works(client):
    assert client.get("/api/backup", headers={"x-api-key": ""}).status_code == 401
    assert client.get("/api/backup", headers={"x-api-key": "None"}).status_code == 401


ENDPOINTS = [("GET", "/api/backup", None), ("POST", "/api/backup", None),
             ("DELETE", "/api/backup", {"name": "mc-backup-2026-01-01_00-00-00.db"}),
             ("GET", "/api/audit", None)]


@pytest.mark.parametrize("method, path, body", ENDPOINTS)
@pytest.mark.parametrize("role, username, status", [(None, None, 401), ("viewer", "vic", 403),
                                                    ("operator", "olga", 403)])
def test_admin_endpoints_refuse_others(client, auth, method, path, body, role, username, status):
    if username:
        assert auth.login(username).status_code == 200
    response = client.open(path, method=method, json=body)
    assert response.status_code == status
    expected = "Authentication required" if status == 401 else "Requires admin role or higher"
    assert response.json == {"error": expected}


def test_me_is_open_to_every_role(client, auth):
    auth.login("vic")
    assert client.get("/api/auth/me").json["user"]["role"] == "viewer"


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"},
                                     {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "http://localhost:9999"}])
def test_cross_site_writes_are_refused_before_anything_happens(admin_client, mc, headers):
    response = admin_client.post("/api/backup", headers=headers)
    assert response.status_code == 403
    assert response.json == {"error": "CSRF origin mismatch"}
    assert mc.backups.list() == []
    login = admin_client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD},
                              headers=headers)
    assert login.status_code == 403


def test_same_origin_writes_pass(admin_client):
    response = admin_client.post("/api/backup", headers={"Origin": "http://localhost",
                                                         "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200


def test_cross_site_reads_are_not_blocked_but_need_auth(client):
    assert client.get("/api/backup", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 401


def test_passwords_are_scrypt_hashes_and_must_be_long(mc):
    from mission_control.users import UserError
    with pytest.raises(UserError, match="at least 12"):
        mc.users.add("shorty", "short", role="admin")
    mc.users.add("longer", PASSWORD, role="admin")
    stored = mc.db.query_one("SELECT password_hash FROM users WHERE username='longer'")["password_hash"]
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    other = mc.users.add("twin", PASSWORD, role="admin")
    assert other and mc.db.query_one("SELECT password_hash FROM users WHERE username='twin'")["password_hash"] != stored


def test_first_admin_is_created_once_with_a_random_password(make_mc):
    mc = make_mc()
    said = []
    user = mc.ensure_admin(said.append)
    assert user.username == "admin" and user.role == "admin"
    password = said[0].split("password: ")[1].split()[0]
    assert len(password) >= 12
    assert mc.auth.login("admin", password)[0].username == "admin"
    assert mc.ensure_admin(said.append) is None and len(said) == 1


def test_first_admin_from_auth_user(make_mc):
    mc = make_mc(auth_user="root", auth_pass=PASSWORD)
    said = []
    assert mc.ensure_admin(said.append).username == "root"
    assert said == []


def test_short_auth_pass_is_refused_clearly(make_mc):
    from mission_control.config import ConfigError
    with pytest.raises(ConfigError, match="AUTH_PASS"):
        make_mc(auth_user="root", auth_pass="short").ensure_admin()
