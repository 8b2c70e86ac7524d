"""Backups of the live database: taking, checking, keeping, removing and restoring them."""
