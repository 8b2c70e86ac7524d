"""The core: configuration, database, settings, auth, health, metrics, logs, hooks and plugin loading."""
