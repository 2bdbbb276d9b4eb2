-- A replay claims each letter (open -> replayed) before it sends it. With `status` in an index,
-- every claim was a new row version on another page plus an entry in each of the table's eight
-- indexes: about half of a replay's time. A claim now changes no indexed value, so with room
-- left on the page it is a HOT update: one row version on the same page, no index touched.
--
-- Listings by status still read an index: open and replayed letters (the few an operator works
-- on) through a partial index on `resolved`, a stored column derived from `status` that a
-- claim leaves unchanged; resolved letters, most of the table, through the time index.
--
-- Half of each page is left free: a replay claims every letter of a page in one statement, and
-- each claim's new version must fit beside the old one. Set first, so that the rewrite adding
-- the column leaves the letters already there that room too.
ALTER TABLE finsync.dead_letters SET (fillfactor = 50);
ALTER TABLE finsync.dead_letters
    ADD COLUMN resolved boolean GENERATED ALWAYS AS (status = 'resolved') STORED;
DROP INDEX finsync.dead_letters_status;
CREATE INDEX dead_letters_unresolved ON finsync.dead_letters (failed_at, id) WHERE NOT resolved;
