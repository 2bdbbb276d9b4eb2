-- Service health: every running consumer and relay writes its row here every few seconds
-- (finsync.runtime.heartbeat) and deletes it when it stops cleanly. A row not seen for 30 s is
-- an instance that is gone (killed, hung, cut off from the database); rows a day old are pruned.
CREATE TABLE finsync.service_instances (
    instance_id text        PRIMARY KEY,   -- host:pid:random, unique per process start
    service     text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('consumer', 'relay')),
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),  -- the database's clock, not the host's
    -- A relay standing by (another relay of its service holds the lock) is alive, not active.
    active      boolean     NOT NULL DEFAULT true,
    -- Consumers: [{"topic", "partition", "lag" (null: unknown yet), "paused"}].
    partitions  jsonb       NOT NULL DEFAULT '[]',
    -- Cumulative counts by outcome since the instance started (a consumer's processed,
    -- duplicate, retried, dead-lettered; a relay's published, refused), and per second over
    -- the last minute.
    counts      jsonb       NOT NULL DEFAULT '{}',
    rates       jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX service_instances_seen_at ON finsync.service_instances (seen_at);

-- The trace an event was processed in, so a document's lineage links to its trace and logs:
-- the trace its record carried (traceparent), or the one a record taken on its own (a retry)
-- was processed in. NULL for rows from before, and for batch records without trace context.
ALTER TABLE finsync.inbox ADD COLUMN trace_id text;
