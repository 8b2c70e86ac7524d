"""The WSGI application: one URL map, one dispatcher, one JSON error shape, security headers."""
import logging

from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.routing import Map, Rule

from ..core import MissionControl
from ..errors import MissionControlError
from . import (api_alerts, api_audit, api_auth, api_backup, api_backup_files, api_health,
               api_offsite, api_openapi, api_partial, api_pitr, api_plugins, api_restore,
               api_scheduler, api_settings, ui)
from .access_log import AccessLog
from .http import SECURITY_HEADERS, Request, check_same_origin, error_response
from .openapi import operations, request_components
from .operations import compile_checks

log = logging.getLogger(__name__)

API_MODULES = (api_auth, api_backup, api_backup_files, api_restore, api_partial, api_pitr,
               api_audit, api_settings, api_scheduler, api_plugins, api_offsite, api_health,
               api_alerts, api_openapi, ui)

_HTTP_MESSAGES = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}


def build_routes(modules=API_MODULES):
    """The URL map and the endpoint -> view table, from each module's `OPERATIONS`."""
    rules, views = [], {}
    for endpoint, op in operations(modules).items():
        rules.append(Rule(op.path, methods=[op.method], endpoint=endpoint))
        views[endpoint] = op.view
    # merge_slashes off: `//api//backup` is a 404, not a redirect the API's clients would not follow.
    return Map(rules, strict_slashes=False, merge_slashes=False), views


class WebApp:
    """The service over HTTP. Views are `view(mc, request, **url_args) -> Response`."""

    def __init__(self, mc):
        self.mc = mc
        self.url_map, self.views = build_routes()
        # Compiled once: the schema of every body, with the task ids this service runs.
        self.body_checks = compile_checks(
            operations(API_MODULES),
            request_components(API_MODULES, list(mc.scheduler.tasks)), mc)
        self._entry = (AccessLog(self.wsgi_app, mc.config.trusted_proxies) if mc.config.access_log
                       else self.wsgi_app)

    def dispatch(self, request):
        try:
            check_same_origin(request, self.mc.config.trusted_proxies)
            endpoint, args = self.url_map.bind_to_environ(request.environ).match()
            request.body_check = self.body_checks.get(endpoint)
            request.api_modules = API_MODULES
            return self.views[endpoint](self.mc, request, **args)
        except MissionControlError as exc:
            return error_response(exc.message, exc.status, exc.details, exc.headers)
        except MethodNotAllowed as exc:
            return error_response("Method not allowed", 405,
                                  headers={"Allow": ", ".join(sorted(exc.valid_methods or ()))})
        except RequestEntityTooLarge:
            return error_response("Request body too large", 413)
        except HTTPException as exc:
            return error_response(_HTTP_MESSAGES.get(exc.code, exc.name), exc.code or 500)
        except Exception:  # noqa: BLE001 - the one place unexpected errors are turned into a 500
            log.exception("unhandled error in %s %s", request.method, request.path)
            return error_response("Internal server error", 500)

    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        request.max_content_length = self.mc.config.max_body_bytes
        response = self.dispatch(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response(environ, start_response)

    def __call__(self, environ, start_response):
        return self._entry(environ, start_response)


def create_app(config=None, *, mc=None, **kwargs):
    """Build the WSGI app. Starts no thread; `mc` (or a new one from `config`) holds the state.

    :param config: a `Config`; by default read from the environment.
    :param mc: an already open `MissionControl` to serve.
    :param kwargs: passed to `MissionControl` (e.g. `clock`, `plugins`). Like `serve`, it makes
        the database when there is none yet (`create=False` refuses instead).
    """
    if mc is None:
        mc = MissionControl(config, **{"create": True, **kwargs})
        mc.ensure_admin()
    return WebApp(mc)
