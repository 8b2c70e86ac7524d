-- Version 9: `backup_verifications` also holds the check the service runs on each file it makes
-- (`PRAGMA quick_check` on the copy before it gets its name): `source` is 'creation' for those
-- rows (no SHA-256: `sha256` is ''), 'verify' for a full verification. Like a verification, a
-- creation check counts only while the file's size and mtime are the ones it was made with.
ALTER TABLE backup_verifications ADD COLUMN source TEXT NOT NULL DEFAULT 'verify';
