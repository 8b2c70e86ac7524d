"""Logging in and out, and resolving credentials (session token or API key) to a `User`."""
import hmac
import secrets
from dataclasses import replace

from .actor import Actor

from .errors import AuthenticationRequired, BadRequest, Forbidden, TooManyRequests
from .passwords import dummy_hash, verify_password
from .ratelimit import RateLimiter
from .users import User

#: The global `API_KEY` acts as this admin.
API_USER = User(None, "api", "API key", "admin")
#: Where a login attempt came from when the caller does not say (scripts, tests).
ANONYMOUS = Actor("anonymous")


class Authenticator:
    """Turns credentials into users. Knows nothing of HTTP: the web layer extracts the credentials."""

    def __init__(self, users, auditor, clock, api_key=None, login_attempts_per_minute=5,
                 metrics_token=None):
        self._users = users
        self._audit = auditor
        self._api_key = api_key
        self._metrics_token = metrics_token
        self._login_limit = RateLimiter(login_attempts_per_minute, 60, clock)

    def login(self, username, password, client=ANONYMOUS):
        """Check a password and open a session.

        :param client: an `Actor` saying where the attempt came from (its name is not used).
        :return: ``(User, token)``; the token goes to the client, only its hash is stored.
        :raises BadRequest: username or password missing.
        :raises TooManyRequests: more than the allowed failed attempts this minute from this IP
            (a successful login does not count).
        :raises AuthenticationRequired: "Invalid credentials", the same for an unknown user and a
            wrong password (an unknown user is checked against a dummy hash to take as long).
        """
        if not isinstance(username, str) or not isinstance(password, str) or not username.strip() \
                or not password:
            raise BadRequest("Username and password are required")
        # Only failures count: the slot is taken up front (so parallel guesses cannot pass the
        # limit together) and given back when the password was right.
        address = client.ip_address or "unknown"
        slot, wait = self._login_limit.reserve(address)
        if slot is None:
            # When to try again is in Retry-After (the page says it in words): said once.
            raise TooManyRequests(f"Too many login attempts: {self._login_limit.limit} failed "
                                  "within a minute from this address", retry_after=wait)
        username = username.strip()
        user, stored = self._users.credentials(username)
        ok = verify_password(password, stored if user else dummy_hash())
        if not (user and ok):
            self._audit.emit("login_failed", replace(client, name=username[:64], id=None),
                             target_type="user", target_id=username[:64])
            raise AuthenticationRequired("Invalid credentials")
        self._login_limit.release(address, slot)
        session_token = secrets.token_bytes(32).hex()
        self._users.create_session(user, session_token, client.ip_address, client.user_agent)
        self._audit.emit("login", client.as_user(user), target_type="user", target_id=user.id)
        return user, session_token

    def logout(self, actor, token):
        """End the session `token` of `actor` (an `Actor` for the logged-in user) and audit it."""
        if token:
            self._users.end_session(token)
        self._audit.emit("logout", actor, target_type="user", target_id=actor.id)

    def authenticate(self, api_key=None, session_token=None):
        """The `User` for these credentials, or None. An API key, when given, is checked first."""
        if api_key is not None:
            if self._api_key and hmac.compare_digest(api_key.encode(), self._api_key.encode()):
                return API_USER
            return None
        if session_token:
            return self._users.session_user(session_token)
        return None


    def reads_metrics(self, token):
        """Whether `token` is the metrics token (``MC_METRICS_TOKEN``), compared in constant time.

        That token is no user: it opens ``GET /metrics`` and ``GET /api/backup/status`` only.
        """
        return bool(self._metrics_token) and token is not None and \
            hmac.compare_digest(token.encode(), self._metrics_token.encode())


def require_role(user, role):
    """Raise 401 when nobody is logged in, 403 when the user's role is below `role`."""
    if user is None:
        raise AuthenticationRequired()
    if not user.has_role(role):
        raise Forbidden(f"Requires {role} role or higher")
    return user
