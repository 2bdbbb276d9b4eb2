"""The messaging runtime that runs a service: Kafka clients and serde, the consumer loop, batch
processing with inbox and outbox, the outbox relay, retry and dead letters, telemetry.

Services never import it; they implement `finsync.service.Service` and the runner runs them.
"""
