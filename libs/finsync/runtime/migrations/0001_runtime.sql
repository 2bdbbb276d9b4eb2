-- The runtime every service shares: inbox (dedupe), outbox (publish after commit), replay audit.
CREATE SCHEMA IF NOT EXISTS finsync;

-- One row per event a service has taken effect for; written in the effect's transaction.
-- document_key is the business idempotency key (e.g. the invoice id): a document re-sent under
-- a new event_id conflicts here and takes effect once.
CREATE TABLE finsync.inbox (
    service      text        NOT NULL,
    event_id     uuid        NOT NULL,
    topic        text        NOT NULL,
    document_key text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, event_id),
    UNIQUE (service, document_key)
);
CREATE INDEX inbox_processed_at ON finsync.inbox (processed_at);

-- Messages a service will publish, written in the effect's transaction; the relay sends them
-- in id order and stamps sent_at. Key, value and headers are the exact bytes to produce.
CREATE TABLE finsync.outbox (
    id            bigserial   PRIMARY KEY,
    service       text        NOT NULL,
    topic         text        NOT NULL,
    key           bytea,
    value         bytea,
    header_keys   text[]      NOT NULL DEFAULT '{}',
    header_values bytea[]     NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz
);
CREATE INDEX outbox_unsent ON finsync.outbox (service, id) WHERE sent_at IS NULL;

-- Who replayed which dead letter, when, and what came of it.
CREATE TABLE finsync.replay_audit (
    id           bigserial   PRIMARY KEY,
    replayed_by  text        NOT NULL,
    replayed_at  timestamptz NOT NULL DEFAULT now(),
    service      text        NOT NULL,
    dlq_topic    text        NOT NULL,
    dlq_partition integer    NOT NULL,
    dlq_offset   bigint      NOT NULL,
    message_key  text,
    event_id     text,
    error_class  text,
    target_topic text        NOT NULL,
    dry_run      boolean     NOT NULL,
    outcome      text        NOT NULL
);
