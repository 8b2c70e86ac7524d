"""Exceptions that carry their HTTP status, so one dispatcher can turn any of them into JSON."""
import os
import re
import sqlite3

_USERINFO = re.compile(r"://[^/@\s]+@")
# A host path: starts at / ~/ or C:\ not inside a word or a URL ("http://host/x" is kept).
_PATH = re.compile(r"(?<![\w.~:/-])(?:~?/|[A-Za-z]:\\)[^\s'\",;)\]]*")
MAX_REASON = 300


def safe_text(text, limit=MAX_REASON):
    """`text` with host paths replaced by ``<path>`` and URL credentials masked, cut to `limit`."""
    return _PATH.sub("<path>", _USERINFO.sub("://***@", text))[:limit]


def describe_error(exc):
    """A short reason for the log, the audit trail and answers that names no host path and no
    credential: the one home for turning an unexpected exception into words.

    ``OSError`` messages carry file names, so only their ``strerror`` is kept; SQLite's are
    prefixed ``sqlite:``; others (botocore's, urllib's, say) describe the remote side and are
    kept through `safe_text` (host paths and URL credentials masked). Cut to 300 characters.
    """
    if isinstance(exc, OSError):
        if exc.errno:
            return f"{type(exc).__name__}: {os.strerror(exc.errno)}"
        reason = getattr(exc, "reason", None)  # urllib's URLError wraps the socket's error
        if isinstance(reason, BaseException):
            return f"{type(exc).__name__}: {describe_error(reason)}"[:MAX_REASON]
    prefix = "sqlite" if isinstance(exc, sqlite3.Error) else type(exc).__name__
    text = safe_text(str(exc).strip())
    return f"{prefix}: {text}"[:MAX_REASON] if text else prefix



class MissionControlError(Exception):
    """An error meant for the user: `message` is safe to show, `status` is the HTTP status.

    `details` lists validation problems; `headers` are extra response headers (`Retry-After`).
    """

    status = 500
    default_message = "Internal server error"

    def __init__(self, message=None, *, status=None, details=None, headers=None):
        self.message = message or self.default_message
        if status is not None:
            self.status = status
        self.details = list(details) if details else None
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def to_json(self):
        body = {"error": self.message}
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(MissionControlError):
    status = 400
    default_message = "Bad request"


class NotAuthentic(BadRequest):
    """An off-site copy is not in the signed record of the copies made here, or differs (400)."""


class ValidationFailed(BadRequest):
    """400 with one `details` entry per problem, e.g. `"name: must end in .db"`."""

    default_message = "Validation failed"

    def __init__(self, details, message=None):
        super().__init__(message, details=details)


class FileRejected(ValidationFailed):
    """400: a backup, upload or fetched copy failed its checks; `details` says why.

    The request was fine, the file was not: the CLI reports it as a failed operation (exit 1),
    like `backup verify` on the same file.
    """


class AuthenticationRequired(MissionControlError):
    status = 401
    default_message = "Authentication required"


class Forbidden(MissionControlError):
    status = 403
    default_message = "Forbidden"


class NotFound(MissionControlError):
    status = 404
    default_message = "Not found"


class Conflict(MissionControlError):
    status = 409
    default_message = "Conflict"


class PayloadTooLarge(MissionControlError):
    status = 413
    default_message = "Request body too large"


class TooManyRequests(MissionControlError):
    status = 429
    default_message = "Too many requests"

    def __init__(self, message=None, *, retry_after):
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(message, headers={"Retry-After": str(self.retry_after)})


class BackupFailed(MissionControlError):
    """The backup could not be made; the reason goes to the audit trail, not the client."""

    status = 500
    default_message = "Backup failed"

    def __init__(self, reason):
        self.reason = reason
        super().__init__()


class BackupRefused(MissionControlError):
    """Raised by a `pre_backup` plugin to refuse a backup before it starts.

    `reason` is shown to the client as the error; `status` defaults to 507 (insufficient storage),
    the usual reason for a refusal.
    """

    status = 507

    def __init__(self, reason, status=507):
        super().__init__(reason, status=status)
        self.reason = reason
