-- A record whose retry chain ends in a dead letter keeps its row, marked, instead of losing
-- it: a redelivery of the record (its offset commit failed, or reached a group that had not
-- seen it) then finds it and is skipped, where before it started a second chain and a second
-- dead letter once the first chain had ended. A record dead-lettered at its first delivery
-- gets such a row too. Marked rows hold no place in their key's queue; they go, as stale
-- tickets do, once the retry topic's retention is past (parking.prune, at a service's start).
ALTER TABLE finsync.parked ADD COLUMN dead_lettered_at timestamptz;
