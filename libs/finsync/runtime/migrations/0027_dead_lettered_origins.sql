-- Where each record a service dead-lettered came from (its input record's topic, partition and
-- offset), so a redelivery of it (its offset commit failed, or the group re-read the topic) is
-- skipped instead of starting a second retry chain and a second dead letter, even after its
-- chain has ended. A table of its own: `finsync.parked` stays the queues of waiting records.
-- Kept well past the input topics' retention (14 days; segments roll up to 7 more), then
-- pruned by the relay.
CREATE TABLE finsync.dead_lettered (
    service          text        NOT NULL,
    origin_topic     text        NOT NULL,
    origin_partition integer     NOT NULL,
    origin_offset    bigint      NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, origin_topic, origin_partition, origin_offset)
);
CREATE INDEX dead_lettered_age ON finsync.dead_lettered (service, dead_lettered_at);
