-- A message Kafka will never accept (too large, invalid) is not re-sent forever: the relay
-- stamps failed_at with Kafka's answer and goes on. The row keeps the exact bytes for an SRE.
ALTER TABLE finsync.outbox
    ADD COLUMN failed_at timestamptz,
    ADD COLUMN error     text;
