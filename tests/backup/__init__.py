"""Backups: making, copying, removing, verifying, uploading, pruning and restoring them, and point in time."""
