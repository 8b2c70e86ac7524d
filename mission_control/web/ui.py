"""The admin web page: `/` (HTML) and `/static/<file>` (CSS, JS, icon), shipped as package data."""
import hashlib
import re
from importlib import resources

from werkzeug.wrappers import Response

from ..errors import NotFound
from .operations import Operation

# No inline script or style anywhere: the page loads its CSS and JS from /static only.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self'; connect-src 'self'; form-action 'self'; "
                           "base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
TYPES = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8",
         "svg": "image/svg+xml", "html": "text/html; charset=utf-8"}
# Only plain file names of known types: no folders, so no way out of the static folder.
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(css|js|svg)$")


def _read(name):
    """The bytes of `static/<name>` inside the installed package, or None."""
    try:
        return resources.files("mission_control").joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _asset_response(request, body, kind, cache_control):
    response = Response(body, content_type=TYPES[kind])
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = cache_control
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    return response.make_conditional(request)


def index(mc, request):
    """The single page; it asks `/api/auth/me` whether to show the login form or the backups."""
    body = _read("index.html")
    if body is None:
        raise NotFound("The web page is not installed")
    return _asset_response(request, body, "html", "no-store")


def static(mc, request, filename):
    """CSS, JS and the icon. Revalidated on every use (ETag), so an upgrade shows at once."""
    match = STATIC_NAME.match(filename)
    body = _read(filename) if match else None
    if body is None:
        raise NotFound()
    return _asset_response(request, body, match.group(1), "no-cache")


#: Pages, not API: no OpenAPI entry.
OPERATIONS = [
    Operation("GET", "/", index),
    Operation("GET", "/static/<path:filename>", static),
]
