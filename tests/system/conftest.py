"""Every test in this folder starts real processes, browsers, containers or installs: mark it `slow`."""
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    # A conftest's hook sees every collected item, not just this folder's: pick ours by path.
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.slow)
