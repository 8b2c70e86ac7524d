"""The access log (`MC_ACCESS_LOG=1`): WSGI middleware writing one line per request once it is done.

The line is written when the server closes the response, so it has the bytes really sent and the
whole duration, a streamed download included. Query values whose names look secret (token, key,
password, ...) are masked; the client's address is the one `MC_TRUSTED_PROXIES` lets us believe.
"""
import logging
import re
import time
from urllib.parse import parse_qsl, quote, urlencode

from .http import Request, client_ip

LOGGER = "mission_control.access"
_SECRET_NAME = re.compile(r"token|key|secret|pass|auth|sig|session|code|credential", re.I)
#: Characters kept as they are in a logged path; anything else (spaces, newlines) is %-escaped.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def logged_path(request):
    """The request's path and query for the log: secret-looking values masked, all of it escaped
    so that no client can write a line break (or a fake line) into the log."""
    path = quote(request.path, safe=_PATH_SAFE)[:2000]
    query = request.query_string.decode("latin-1")
    if not query:
        return path
    pairs = [(key, "***" if _SECRET_NAME.search(key) else value)
             for key, value in parse_qsl(query, keep_blank_values=True)]
    return f"{path}?{urlencode(pairs)[:2000]}"


class AccessLog:
    """Wraps the WSGI callable `app`; each request is logged at INFO on ``mission_control.access``.

    :param app: the WSGI application.
    :param trusted_proxies: addresses whose `X-Forwarded-For` is believed (`Config`).
    """

    def __init__(self, app, trusted_proxies):
        self.app = app
        self.trusted_proxies = trusted_proxies
        self.log = logging.getLogger(LOGGER)

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        seen = {}

        def start(status, headers, exc_info=None):
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        body = self.app(environ, start)
        return _Counted(body, lambda sent: self._write(environ, seen.get("status", 0), sent,
                                                       time.perf_counter() - started))

    def _write(self, environ, status, sent, seconds):
        request = Request(environ)
        facts = {"method": request.method[:16], "path": logged_path(request), "status": status,
                 "bytes": sent, "duration_ms": round(seconds * 1000, 1),
                 "client_ip": client_ip(request, self.trusted_proxies)}
        self.log.info('%s "%s %s" %s %s %.1f ms', facts["client_ip"], facts["method"],
                      facts["path"], status, sent, facts["duration_ms"], extra=facts)


class _Counted:
    """A response body that counts what is sent and reports it when the server closes it."""

    def __init__(self, body, done):
        self._body = body
        self._done = done
        self._sent = 0

    def __iter__(self):
        for chunk in self._body:
            self._sent += len(chunk)
            yield chunk

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(self._sent)
