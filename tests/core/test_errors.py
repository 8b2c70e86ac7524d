"""`describe_error`, the one home for turning an exception into a reason safe to show."""
import shutil
import sqlite3
import urllib.error

import pytest

from mission_control import describe_error


@pytest.mark.parametrize("exc, expected", [
    (FileNotFoundError(2, "No such file", "/var/lib/mc/x.db"),
     "FileNotFoundError: No such file or directory"),
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
     "URLError: ConnectionRefusedError: Connection refused"),
    (urllib.error.HTTPError("http://h/p", 503, "Service Unavailable", {}, None),
     "HTTPError: HTTP Error 503: Service Unavailable"),
    (shutil.Error("Destination path '/srv/x' already exists"),
     "Error: Destination path '<path>' already exists"),
    (sqlite3.OperationalError("database is locked"), "sqlite: database is locked"),
    (RuntimeError('Could not connect to "http://key:secret@127.0.0.1:9/bucket"'),
     'RuntimeError: Could not connect to "http://***@127.0.0.1:9/bucket"'),
    (ValueError(""), "ValueError"),
])
def test_reasons_name_no_host_path_and_no_credential(exc, expected):
    assert describe_error(exc) == expected


def test_reasons_are_short():
    assert len(describe_error(RuntimeError("x" * 5000))) == 300
