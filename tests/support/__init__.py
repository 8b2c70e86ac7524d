"""Shared test helpers (not tests, not fixtures: those live in the conftest.py files)."""
