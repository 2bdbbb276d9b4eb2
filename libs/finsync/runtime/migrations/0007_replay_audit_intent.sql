-- A replay is audited before it sends anything (outcome 'intended') and each row is stamped
-- with its outcome as it goes, so an interrupted replay still leaves a record of what it meant
-- to do and how far it got. `replay_id` is also the finsync.replay.id header of what it sent.
ALTER TABLE finsync.replay_audit
    ADD COLUMN replay_id   uuid,
    ADD COLUMN finished_at timestamptz;
CREATE INDEX replay_audit_replay_id ON finsync.replay_audit (replay_id);
