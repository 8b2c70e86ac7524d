"""Tests that start real processes, browsers, containers or installs; all marked `slow` by conftest.py."""
