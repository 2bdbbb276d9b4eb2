"""How a failure is classified decides where the event goes next.

- PermanentError: the event can never succeed as it is -> `<service>.dlq` at once.
- TransientError: it may succeed later (a dependency is not there yet) -> `<service>.retry`
  with exponential backoff, then `<service>.dlq` after the last attempt.
- Outage: our own infrastructure (database, schema registry) is unavailable. Not the event's
  fault: the service stops, waits and retries the same batch; nothing is dead-lettered.
"""

from __future__ import annotations


class FinsyncError(Exception):
    """Base of the classified failures."""


class PermanentError(FinsyncError):
    """The event cannot be processed, whatever we retry."""


class UndecodableEvent(PermanentError):
    """The bytes are not a Confluent-framed Avro record of the topic's schema."""


class UnknownSchema(PermanentError):
    """The schema id in the message is not known to the schema registry."""


class InvalidEvent(PermanentError):
    """Schema-valid, but it breaks a business rule (e.g. lines do not sum to the total)."""


class ConflictingResend(PermanentError):
    """A document that took effect before, re-sent under its business key with other content
    (e.g. a corrected invoice under the same invoice id): it is never applied over the first."""


class UnexpectedError(PermanentError):
    """The handler failed in a way nobody classified: kept as a dead letter, not a crash."""


class TransientError(FinsyncError):
    """May succeed later: retried with backoff through `<service>.retry`."""


class DependencyNotReady(TransientError):
    """Something the event refers to is not there yet (e.g. an invoice not posted yet)."""


class Outage(FinsyncError):
    """Database or schema registry unavailable: wait and retry the batch, dead-letter nothing."""
