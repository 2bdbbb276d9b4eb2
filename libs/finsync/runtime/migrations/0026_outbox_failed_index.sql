-- The console's overview counts, per service, what Kafka refused for good: a partial index
-- keeps that count from reading the whole outbox on every refresh.
CREATE INDEX IF NOT EXISTS outbox_failed ON finsync.outbox (service) WHERE failed_at IS NOT NULL;
