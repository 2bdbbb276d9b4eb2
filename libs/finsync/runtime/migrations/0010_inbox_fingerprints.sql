-- The content a document took effect with, as digests (finsync.contract.fingerprint): a re-send
-- of the document under a new event_id is a no-op when its fingerprint is the same, and a
-- ConflictingResend dead letter naming the fields that differ when it is not.
-- fingerprint: 16-byte digest of the business content (every field but the envelope).
-- field_digests: 4 bytes per field, the CRC-32 of its path (e.g. lines[1].amount) and value, to
-- name the fields that differ. Digests only, never values: the content holds personal data.
-- Rows from before this migration keep NULL in both: their content is unknown, so a re-send of
-- their document is taken as the same content, as before.
ALTER TABLE finsync.inbox
    ADD COLUMN fingerprint   bytea,
    ADD COLUMN field_digests bytea;
