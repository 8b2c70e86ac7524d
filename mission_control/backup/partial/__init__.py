"""Partial restore: what changed between a backup and the live database (or another backup),
putting back only some tables or rows of a backup, and undoing that."""
