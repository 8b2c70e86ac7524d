"""Tests of the Mission Control backup service."""
