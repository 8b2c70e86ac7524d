"""`/api/auth/*`: log in (session cookie), log out, and who am I."""
from .http import (SECURE_SESSION_COOKIE, SESSION_COOKIE, is_secure, json_response, read_json,
                   request_actor, require, session_token)

COOKIE_MAX_AGE = 7 * 24 * 3600


def login(mc, request):
    body = read_json(request, "Username and password are required")
    if not isinstance(body, dict):
        body = {}
    user, token = mc.auth.login(body.get("username"), body.get("password"),
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


ROUTES = [
    ("/api/auth/login", ["POST"], login),
    ("/api/auth/logout", ["POST"], logout),
    ("/api/auth/me", ["GET"], me),
]
