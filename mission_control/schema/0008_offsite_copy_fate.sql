-- Version 8: where each off-site copy was sent (the target's location: a folder, or
-- s3://bucket/prefix/), when this service pruned it (NULL: never), and the ETag its upload
-- returned. A copy of the newest kept that is gone from its location without having been pruned
-- here was deleted by someone else; a same-size replacement on a store that keeps no SHA-256
-- checksum shows in its ETag. Rows from before keep NULL: their location is filled in the first
-- time they are found at the target.
ALTER TABLE offsite_copies ADD COLUMN location TEXT;
ALTER TABLE offsite_copies ADD COLUMN pruned_at INTEGER;
ALTER TABLE offsite_copies ADD COLUMN etag TEXT;
