-- Version 10: incremental off-site copies. A copy is `full` (today's form) or `delta`: its
-- remote name is then its manifest object's (`NAME.db.delta.zst[.age]`), `size`/`sha256` are that
-- object's, `plain_size`/`plain_sha256` the whole database's once rebuilt; `parent` is the remote
-- name of the copy it was made over, `chain_length` the number of delta copies from its full copy
-- to it (0 for a full copy), `objects` (JSON) the other objects it consists of (its pack:
-- `{name: {"size": n, "sha256": hex}}`), and `uploaded` the bytes its upload stored (all objects).
ALTER TABLE offsite_copies ADD COLUMN kind TEXT NOT NULL DEFAULT 'full';
ALTER TABLE offsite_copies ADD COLUMN parent TEXT;
ALTER TABLE offsite_copies ADD COLUMN chain_length INTEGER NOT NULL DEFAULT 0;
ALTER TABLE offsite_copies ADD COLUMN objects TEXT;
ALTER TABLE offsite_copies ADD COLUMN uploaded INTEGER;
