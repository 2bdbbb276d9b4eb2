"""invoice-poster written with FastStream 0.7 (confluent-kafka backend), as a process:

    python -m finsync.bench.peers.faststream_poster --mode batch --group G --topic-out T

`--mode single`: one message per handler call, one transaction each; `--mode batch`: a batch
subscriber of up to 500 records, one transaction per batch. Offsets are committed after the
handler (`AckPolicy.ACK`); the group must already hold the offsets to start from. The
per-message Received/Processed lines are logged at DEBUG, so they are off at INFO.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from faststream import AckPolicy, FastStream
from faststream.confluent import KafkaBroker, KafkaResponse
from faststream.confluent.message import KafkaMessage

from finsync.bench.peers.posting import TOPIC, Decoder, Posting, arguments, pool, post, serde
from finsync.contract.events import InvoiceIssued, InvoicePosted
from finsync.settings import Settings

BATCH = 500


def app(settings: Settings, mode: str, group: str, topic_out: str) -> FastStream:
    # Security settings as every finsync client has them (FastStream spells the protocol in
    # lower case); the broker brings its own logger.
    security = {
        k: v.lower() if k == "security.protocol" else v
        for k, v in settings.kafka_config().items()
        if k not in ("bootstrap.servers", "logger")
    }
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        config=security,  # type: ignore[arg-type]
        enable_idempotence=True,  # no duplicate results from the producer's own retries
        log_level=logging.DEBUG,  # the two lines it logs per message
    )
    application = FastStream(broker)
    db = pool(settings.database_url)
    codec = serde(settings)
    decode = Decoder(settings)

    @application.on_startup
    async def open_pool() -> None:
        await db.open(wait=True)

    @application.after_shutdown
    async def close_pool() -> None:
        await db.close()

    def response(posting: Posting, posted: InvoicePosted) -> KafkaResponse:
        return KafkaResponse(codec.encode(posted), key=posting.invoice.key.encode())

    if mode == "single":
        results = broker.publisher(topic_out)

        async def decode_one(msg: KafkaMessage) -> InvoiceIssued:
            return decode(msg.body)

        @broker.subscriber(
            TOPIC,
            group_id=group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.ACK,
            decoder=decode_one,
        )
        async def post_one(invoice: InvoiceIssued) -> None:
            posting = Posting.of(invoice)
            async with db.connection() as conn:
                [posted] = await post(conn, [posting])
            await results.publish(codec.encode(posted), key=posting.invoice.key.encode())

    else:
        batch_results = broker.publisher(topic_out, batch=True)

        async def decode_batch(msg: KafkaMessage) -> list[InvoiceIssued]:
            bodies = cast("list[bytes]", msg.body)  # a batch's body: the list of its values
            return [decode(body) for body in bodies]

        @broker.subscriber(
            TOPIC,
            group_id=group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.ACK,
            batch=True,
            max_records=BATCH,
            decoder=decode_batch,
        )
        async def post_batch(invoices: list[InvoiceIssued]) -> None:
            postings = [Posting.of(invoice) for invoice in invoices]
            async with db.connection() as conn:
                posted = await post(conn, postings)
            # One batch publish, each result keyed by its invoice; waits for Kafka's answers.
            await batch_results.publish(
                *(response(p, e) for p, e in zip(postings, posted, strict=True))
            )

    return application


def main() -> None:
    args = arguments(__doc__ or "", ("single", "batch"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # the registry requests at start
    application = app(Settings.from_env(), args.mode, args.group, args.topic_out)
    asyncio.run(application.run())


if __name__ == "__main__":
    main()
