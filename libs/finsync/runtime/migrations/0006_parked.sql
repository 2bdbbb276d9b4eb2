-- Per-key order through retries: the records of a key waiting in `<service>.retry`, in the
-- order they must take effect. A record is taken up only while its ticket (seq) is the lowest
-- of its key; `generation` tells the live copy of a record from a stale redelivery. The origin
-- (where the record entered the queue) is unique, so a redelivery can never start a second
-- retry chain. Keys are stored as their SHA-256: a key of any length fits the index.
CREATE TABLE finsync.parked (
    service          text        NOT NULL,
    seq              bigserial   NOT NULL,
    key_hash         bytea       NOT NULL,
    generation       integer     NOT NULL DEFAULT 0,
    due_ms           bigint      NOT NULL,
    origin_topic     text        NOT NULL,
    origin_partition integer     NOT NULL,
    origin_offset    bigint      NOT NULL,
    parked_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, seq),
    UNIQUE (service, origin_topic, origin_partition, origin_offset)
);
CREATE INDEX parked_key ON finsync.parked (service, key_hash, seq);
