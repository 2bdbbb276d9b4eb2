-- The dead-letter index: one row per dead letter, written in the transaction that puts it in
-- the outbox, so the console and `finsync dlq` filter in SQL instead of reading the whole
-- dead-letter topic. The original key, value and publisher headers are kept here too, so a
-- replay or a decode needs no topic scan and still works once the topic's retention is past.
CREATE TABLE finsync.dead_letters (
    id               bigserial   PRIMARY KEY,
    service          text        NOT NULL,
    outbox_id        bigint,                 -- the outbox row that carries it to the topic
    dlq_topic        text        NOT NULL,
    dlq_partition    integer,                -- where Kafka put it: stamped by the relay
    dlq_offset       bigint,
    message_key      text,
    event_id         text,                   -- when the record decoded
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    source_timestamp timestamptz,            -- the original record's timestamp
    stage            text        NOT NULL,
    error_class      text        NOT NULL,   -- exception class name, e.g. InvalidEvent
    category         text        NOT NULL,   -- permanent | retries-exhausted
    reason           text        NOT NULL,
    stack            text        NOT NULL DEFAULT '',
    attempts         integer     NOT NULL,
    trace_id         text,
    failed_at        timestamptz NOT NULL,
    key              bytea,
    value            bytea,
    header_keys      text[]      NOT NULL DEFAULT '{}',  -- the publisher's headers, as sent
    header_values    bytea[]     NOT NULL DEFAULT '{}',
    status           text        NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'replayed', 'resolved')),
    assignee         text,
    notes            text,
    replay_of        bigint REFERENCES finsync.dead_letters (id),  -- the letter a replay retried
    replays          integer     NOT NULL DEFAULT 0,  -- replays of this content that failed again
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Each filter the console offers is one index, and every listing is newest first by failure
-- time then id, so each index also serves a time range and the next page (keyset) of its
-- filter. The error filter matches a class name whatever its case, hence lower().
CREATE INDEX dead_letters_service ON finsync.dead_letters (service, failed_at, id);
CREATE INDEX dead_letters_status ON finsync.dead_letters (status, failed_at, id);
CREATE INDEX dead_letters_error ON finsync.dead_letters (lower(error_class), failed_at, id);
CREATE INDEX dead_letters_category ON finsync.dead_letters (category, failed_at, id);
-- By the key's md5: a key is the publisher's and may be far longer than a btree entry holds.
CREATE INDEX dead_letters_key ON finsync.dead_letters (md5(message_key), failed_at, id);
CREATE INDEX dead_letters_failed_at ON finsync.dead_letters (failed_at, id);
CREATE INDEX dead_letters_replay_of ON finsync.dead_letters (replay_of) WHERE replay_of IS NOT NULL;
CREATE INDEX dead_letters_outbox ON finsync.dead_letters (outbox_id) WHERE dlq_offset IS NULL;
CREATE UNIQUE INDEX dead_letters_position
    ON finsync.dead_letters (dlq_topic, dlq_partition, dlq_offset);

-- Every operator action in the console or the CLI, with who took it and why.
CREATE TABLE finsync.ops_audit (
    id        bigserial   PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text        NOT NULL,
    action    text        NOT NULL,   -- replay | replay-dry-run | resolve | reopen | assign | note
    target    text        NOT NULL,   -- e.g. dead-letter:42
    detail    jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX ops_audit_target ON finsync.ops_audit (target, id);

-- A replay names the indexed letter it sent; one not on its topic yet has no position there.
ALTER TABLE finsync.replay_audit
    ADD COLUMN dead_letter_id bigint,
    ALTER COLUMN dlq_partition DROP NOT NULL,
    ALTER COLUMN dlq_offset DROP NOT NULL;
CREATE INDEX replay_audit_dead_letter ON finsync.replay_audit (dead_letter_id)
    WHERE dead_letter_id IS NOT NULL;
