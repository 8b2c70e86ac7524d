-- Version 6: each off-site copy's signed manifest (JSON, Ed25519), as uploaded beside the copy, so
-- a copy planted at the target by someone else is told apart from the copies this service made.
-- Rows from before signing keep NULL: they were written here, which is what makes them trusted.
ALTER TABLE offsite_copies ADD COLUMN manifest TEXT;
