"""SQL for users and their sessions; roles and the `User` record."""
import hashlib
from dataclasses import dataclass

from .passwords import check_strength, hash_password

ROLES = ("viewer", "operator", "admin")
SESSION_SECONDS = 7 * 24 * 3600


class UserError(ValueError):
    """A user operation was refused; the message says why (for the CLI)."""


class UserNotFound(UserError):
    """The named user does not exist."""


@dataclass(frozen=True)
class User:
    id: int | None
    username: str
    display_name: str
    role: str

    def has_role(self, role):
        return ROLES.index(self.role) >= ROLES.index(role)

    def to_json(self):
        return {"id": self.id, "username": self.username, "display_name": self.display_name,
                "role": self.role}


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row):
    return User(row["id"], row["username"], row["display_name"], row["role"])


class UserStore:
    """Users and sessions in the live database. Only a session token's SHA-256 is stored."""

    def __init__(self, db, clock):
        self._db = db
        self._clock = clock

    def count(self):
        return self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    def list(self):
        return [_user(r) for r in self._db.query(
            "SELECT id, username, display_name, role FROM users ORDER BY username")]

    def credentials(self, username):
        """`(User, password_hash)` or `(None, None)`."""
        row = self._db.query_one("SELECT * FROM users WHERE username = ?", (username,))
        return (_user(row), row["password_hash"]) if row else (None, None)

    def add(self, username, password, role="admin", display_name=None):
        username = (username or "").strip()
        if not username or len(username) > 64 or any(c.isspace() or ord(c) < 32 for c in username):
            raise UserError("username must be 1-64 characters without spaces")
        if role not in ROLES:
            raise UserError(f"role must be one of: {', '.join(ROLES)}")
        problem = check_strength(password)
        if problem:
            raise UserError(problem)
        now = int(self._clock())
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise UserError(f"user {username!r} already exists")
            cur = conn.execute(
                "INSERT INTO users (username, display_name, role, password_hash, created_at,"
                " updated_at) VALUES (?,?,?,?,?,?)",
                (username, display_name or username, role, hash_password(password), now, now))
        return User(cur.lastrowid, username, display_name or username, role)

    def set_password(self, username, password):
        """Change a password and end every session of that user."""
        problem = check_strength(password)
        if problem:
            raise UserError(problem)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()
            if not row:
                raise UserNotFound(f"no user {username!r}")
            conn.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
                         (hash_password(password), int(self._clock()), row[0]))
            conn.execute("DELETE FROM user_sessions WHERE user_id = ?", (row[0],))

    def remove(self, username):
        with self._db.transaction() as conn:
            if conn.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount == 0:
                raise UserNotFound(f"no user {username!r}")

    def create_session(self, user, token, ip_address=None, user_agent=None):
        now = int(self._clock())
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM user_sessions WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT INTO user_sessions (token_hash, user_id, created_at, expires_at,"
                " ip_address, user_agent) VALUES (?,?,?,?,?,?)",
                (token_hash(token), user.id, now, now + SESSION_SECONDS, ip_address,
                 (user_agent or "")[:512] or None))

    def session_user(self, token):
        row = self._db.query_one(
            "SELECT u.id, u.username, u.display_name, u.role FROM user_sessions s"
            " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
            (token_hash(token), int(self._clock())))
        return _user(row) if row else None

    def end_session(self, token):
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM user_sessions WHERE token_hash = ?", (token_hash(token),))
