"""Peers of invoice-poster in `make bench`: the same posting written with FastStream and with
faust-streaming, as a careful user of each framework would write it, run over the same
`billing.invoice-issued` events as processes, then killed and cut off from PostgreSQL
beside finsync's invoice-poster to count what each loses or doubles.

Each peer decodes with confluent-kafka's Avro deserializer, applies invoice-poster's posting
rule (`services.invoice_poster.posting.invoice_posting`), writes the hand-written loop's rows
as an idempotent upsert (the entry `ON CONFLICT (idempotency_key) DO NOTHING`; the rest only
when the entry is new) through a psycopg connection pool, and publishes one `InvoicePosted`
per invoice, finsync-encoded, to a topic of the bench's own (`bench.peer-invoice-posted`).
They write to the database `finsync_peers`, reset before each run.
"""
