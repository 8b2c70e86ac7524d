"""Hostile-input test pieces: the API key, hypothesis settings, the plugins safe to fuzz, JSON values."""
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from mission_control.web import WebApp

KEY = "hostile-input-key-0123456789"
FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
#: Plugins whose settings name paths and addresses: fuzzing them would write files elsewhere.
SAFE_PLUGINS_ONLY = ("audit_jsonl", "audit_syslog", "offsite_dir", "offsite_s3")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=6),
    max_leaves=30)


def api(mc):
    """A test client for `mc`'s real WSGI app."""
    return Client(WebApp(mc))
