-- Version 7: the object versions each off-site copy was uploaded as (JSON {key: version_id}: the
-- copy, its manifest, its catalog entry), so locks are extended on exactly those versions and
-- never on whatever someone wrote over them later. NULL for copies made before (and on storages
-- without versions): those are matched by their recorded SHA-256 instead.
ALTER TABLE offsite_copies ADD COLUMN versions TEXT;
