"""Request and response helpers shared by every view: JSON in and out, who is asking, from where."""
import json
from urllib.parse import urlsplit

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request as BaseRequest
from werkzeug.wrappers import Response

from ..actor import Actor
from ..auth import require_role
from ..errors import BadRequest, Forbidden, PayloadTooLarge, ValidationFailed

SESSION_COOKIE = "mc-session"
SECURE_SESSION_COOKIE = "__Host-mc-session"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Request(BaseRequest):
    """A Werkzeug request that remembers who it was authenticated as, and what the app that
    routed it knows of it: its operation's body check and the API modules it serves."""

    user = None
    user_resolved = False
    body_check = None
    api_modules = ()


def json_response(data, status=200, headers=None):
    return Response(json.dumps(data, separators=(",", ":")), status=status, headers=headers,
                    content_type="application/json")


def json_text_response(text, status=200, headers=None):
    """A response whose body is `text`, already JSON (for answers too long to build as objects)."""
    return Response(text, status=status, headers=headers, content_type="application/json")


def error_response(message, status, details=None, headers=None):
    body = {"error": message}
    if details:
        body["details"] = details
    return json_response(body, status, headers)


def read_json(request, missing_message="Request body required"):
    """The parsed JSON body. Any content type is accepted, as curl users often omit it.

    :raises BadRequest: no body, or not JSON (with `missing_message`).
    :raises ValidationFailed: a string in it is not Unicode text (a lone surrogate such as
        `"\\ud800"`, which JSON escapes allow but nothing after this can store or encode).
    :raises PayloadTooLarge: the body is over the configured limit (checked before reading it).
    """
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise PayloadTooLarge() from None
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body Werkzeug cut off at the limit: refuse it rather than parse a prefix.
        raise PayloadTooLarge()
    if not raw.strip():
        raise BadRequest(missing_message)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[... nested deep
        raise BadRequest(missing_message) from None
    where = _first_invalid_text(body)
    if where is not None:
        raise ValidationFailed([f"{where}: must be valid Unicode text (no lone surrogates)"])
    return body


def _is_text(value):
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_invalid_text(body):
    """Where in a parsed JSON value a key or string is not UTF-8 encodable (e.g. `settings.x`),
    or None when every one is. Iterative: a body may nest as deep as the parser allows."""
    stack = [("body", body)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if not _is_text(value):
                return where
        elif isinstance(value, (dict, list)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                if isinstance(key, str):
                    shown = key.encode("utf-8", "backslashreplace").decode("utf-8")
                    if not _is_text(key):
                        return f"{where}: key {shown!r}"
                    stack.append((shown if where == "body" else f"{where}.{shown}", child))
                else:
                    stack.append((f"{where}[{key}]", child))
    return None


def read_body(request):
    """The JSON body, checked against the schema its operation declares (`Operation.body`).

    :raises BadRequest, ValidationFailed, PayloadTooLarge: as `read_json`, and `BodyCheck.check`.
    """
    check = request.body_check
    return check.check(read_json(request, check.no_body))


def client_ip(request, trusted_proxies):
    """The client's address: `X-Forwarded-For` is believed only when it comes from a trusted proxy.

    Walking the header from the right, the first address that is not itself a trusted proxy is
    the client.
    """
    addr = request.remote_addr or "unknown"
    if addr not in trusted_proxies:
        return addr
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return hop[:64]
    return addr


def is_secure(request, trusted_proxies):
    if request.scheme == "https":
        return True
    return (request.remote_addr in trusted_proxies
            and request.headers.get("X-Forwarded-Proto", "").lower() == "https")


def request_actor(mc, request, user=None):
    """The `Actor` for this request: `user` (default: nobody yet), the client's IP and user agent."""
    return Actor(user.username if user else "anonymous", user.id if user else None,
                 client_ip(request, mc.config.trusted_proxies),
                 (request.headers.get("User-Agent") or "")[:512] or None)


def check_same_origin(request, trusted_proxies):
    """Refuse a state-changing request that a browser says came from another site.

    The request's own origin is its scheme (HTTPS also when a trusted proxy says so with
    `X-Forwarded-Proto`, see `is_secure`) and its `Host`.

    :raises Forbidden: "CSRF origin mismatch" when `Sec-Fetch-Site` is `cross-site`, or `Origin`
        names another scheme or host than the request's own. Clients that send neither (curl,
        scripts) are not browsers and pass.
    """
    if request.method not in UNSAFE_METHODS:
        return
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise Forbidden("CSRF origin mismatch")
    origin = request.headers.get("Origin")
    if origin is None:
        return
    try:
        parts = urlsplit(origin)
        origin_scheme, origin_host = parts.scheme.lower(), parts.netloc.lower()
    except ValueError:
        origin_scheme = origin_host = ""
    own_scheme = "https" if is_secure(request, trusted_proxies) else "http"
    if not origin_host or (origin_scheme, origin_host) != (own_scheme, request.host.lower()):
        raise Forbidden("CSRF origin mismatch")


def session_token(request):
    return request.cookies.get(SECURE_SESSION_COOKIE) or request.cookies.get(SESSION_COOKIE)


def bearer_token(request):
    """The token of an `Authorization: Bearer` header, or None."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def api_key(request):
    key = request.headers.get("x-api-key")
    return key if key is not None else bearer_token(request)


def current_user(mc, request):
    """The `User` behind the request's API key or session cookie, or None; resolved once."""
    if not request.user_resolved:
        request.user = mc.auth.authenticate(api_key=api_key(request),
                                            session_token=session_token(request))
        request.user_resolved = True
    return request.user


def require(mc, request, role="admin"):
    """The authenticated user, if their role is at least `role`; 401 or 403 otherwise."""
    return require_role(current_user(mc, request), role)


def require_actor(mc, request, role="admin"):
    """`require`, then the `Actor` of that user from this request's address and user agent."""
    return request_actor(mc, request, require(mc, request, role))
