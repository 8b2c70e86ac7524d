"""`/api/auth/*`: log in (session cookie), log out, and who am I."""
from .http import (SECURE_SESSION_COOKIE, SESSION_COOKIE, is_secure, json_response, read_body,
                   request_actor, require, session_token)
from .openapi_schemas import INT_OR_NULL, STR_OR_NULL, obj, operation, ref, response
from .operations import Operation

COOKIE_MAX_AGE = 7 * 24 * 3600


def login(mc, request):
    body = read_body(request)
    user, token = mc.auth.login(body["username"], body["password"],
                                request_actor(mc, request))
    response = json_response({"user": user.to_json()})
    secure = mc.config.cookie_secure
    if secure is None:
        secure = is_secure(request, mc.config.trusted_proxies)
    name = SECURE_SESSION_COOKIE if secure else SESSION_COOKIE
    response.set_cookie(name, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True,
                        samesite="Strict", secure=secure)
    return response


def logout(mc, request):
    """Always answers ok and clears the cookie; ends and audits the session if there was one."""
    token = session_token(request)
    user = mc.auth.authenticate(session_token=token) if token else None
    if user is not None:
        mc.auth.logout(request_actor(mc, request, user), token)
    response = json_response({"ok": True})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    response.delete_cookie(SECURE_SESSION_COOKIE, path="/", httponly=True, samesite="Strict",
                           secure=True)
    return response


def me(mc, request):
    return json_response({"user": require(mc, request, "viewer").to_json()})


SCHEMAS = {
    "User": obj(id={**INT_OR_NULL, "description": "null for the API key's user `api`"},
                username={"type": "string"},
                display_name=STR_OR_NULL, role={"enum": ["viewer", "operator", "admin"]}),
}

_REQUIRED = "Username and password are required"

OPERATIONS = [
    Operation("POST", "/api/auth/login", login, "login", operation(
        "Log in; sets the `mc-session` cookie (HttpOnly, SameSite=Strict, 7 days)",
        response("Logged in", obj(user=ref("User")),
                 {"Set-Cookie": "mc-session=<token> (or __Host-mc-session over HTTPS)"}),
        400, 401, 403, 413, 429, public=True, tag="auth"),
        body=obj(username={"type": "string", "pattern": r"\S"},
                 password={"type": "string", "minLength": 1}),
        # One answer for every missing or malformed credential, as the contract says.
        no_body=_REQUIRED, plain_error=_REQUIRED, plain_fields=("username", "password"),
        ignore_unknown=True),
    Operation("POST", "/api/auth/logout", logout, "logout", operation(
        "Log out: ends the session if there is one and clears the cookie",
        response("Always ok", obj(ok={"const": True})), 403, public=True, tag="auth")),
    Operation("GET", "/api/auth/me", me, "getCurrentUser", operation(
        "Who am I (any role)", response("The current user", obj(user=ref("User"))),
        tag="auth")),
]
