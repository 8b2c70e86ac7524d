"""The installed `mission-control` command."""
