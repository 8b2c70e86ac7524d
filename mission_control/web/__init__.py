"""The HTTP layer: a Werkzeug WSGI app whose views parse, authorise, call a service and serialise."""
from .app import WebApp, create_app

__all__ = ["WebApp", "create_app"]
