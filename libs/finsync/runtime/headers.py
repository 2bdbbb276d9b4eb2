"""Header names finsync writes. They reach Kafka, so they are contract: see docs/dead-letters.md.

Dead letters follow Kafka Connect's `__connect.errors.*` scheme (UTF-8 string values), which
existing tooling already reads; what that scheme has no name for lives under `finsync.errors.*`.
"""

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

ERR_TOPIC = "__connect.errors.topic"
ERR_PARTITION = "__connect.errors.partition"
ERR_OFFSET = "__connect.errors.offset"
ERR_CONNECTOR = "__connect.errors.connector.name"  # the finsync service
ERR_STAGE = "__connect.errors.stage"  # VALUE_CONVERTER (decoding) or TASK_PUT (handler)
ERR_EXCEPTION_CLASS = "__connect.errors.exception.class.name"
ERR_EXCEPTION_MESSAGE = "__connect.errors.exception.message"
ERR_EXCEPTION_STACKTRACE = "__connect.errors.exception.stacktrace"

ERR_TIMESTAMP = "finsync.errors.timestamp"  # original record timestamp, epoch ms
ERR_CONSUMER_GROUP = "finsync.errors.consumer.group"
ERR_CLASS = "finsync.errors.class"  # permanent | retries-exhausted
ERR_ATTEMPTS = "finsync.errors.attempts"
ERR_FIRST_FAILURE = "finsync.errors.first.failure"  # ISO-8601 UTC
ERR_LAST_FAILURE = "finsync.errors.last.failure"
ERR_WAITED = "finsync.errors.waited.seconds"  # first failure to dead letter
ERR_TRACE_ID = "finsync.errors.trace.id"
ERR_EVENT_ID = "finsync.errors.event.id"  # when the record decoded

RETRY_ATTEMPTS = "finsync.retry.attempts"  # failed attempts so far
RETRY_NOT_BEFORE = "finsync.retry.not-before"  # epoch ms
RETRY_FIRST_FAILURE = "finsync.retry.first-failure"
RETRY_TOPIC = "finsync.retry.original.topic"
RETRY_PARTITION = "finsync.retry.original.partition"
RETRY_OFFSET = "finsync.retry.original.offset"
RETRY_TIMESTAMP = "finsync.retry.original.timestamp"
RETRY_SEQ = "finsync.retry.seq"  # its place in its key's queue (see parking)
RETRY_GENERATION = "finsync.retry.generation"  # bumped each time it is sent to retry again
REPLAY_ID = "finsync.replay.id"
REPLAY_DEAD_LETTER = "finsync.replay.dead-letter"  # the id of the indexed dead letter replayed
REPLAY_PREFIX = "finsync.replay."

# Headers finsync adds on the way; everything else on a record is the publisher's own.
RUNTIME_PREFIXES = ("__connect.errors.", "finsync.errors.", "finsync.retry.", "finsync.replay.")


def is_runtime(name: str) -> bool:
    return name.startswith(RUNTIME_PREFIXES)
