"""invoice-poster written with faust-streaming, as a process:

    python -m finsync.bench.peers.faust_poster --mode take --group G --topic-out T

`--mode single`: an agent that posts each event in its own transaction; `--mode take`: an
agent over `stream.take(500, within=1)`, one transaction per buffer. Everything else is
faust's default: at-least-once, offsets of acknowledged events committed every 2.8 s, a
member silent for 60 s leaves the group. The app's id is the consumer group, which must
already hold the offsets to start from.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import faust

from finsync.bench.peers.posting import (
    TOPIC,
    Decoder,
    Posting,
    arguments,
    datadir,
    pool,
    post,
    serde,
)
from finsync.settings import Settings

BATCH, WITHIN = 500, 1.0


def app(settings: Settings, mode: str, group: str, topic_out: str, directory: Path) -> faust.App:
    if settings.kafka_security_protocol != "PLAINTEXT":
        raise SystemExit("the faust peers connect to a plaintext broker only")
    application = faust.App(
        group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        datadir=str(directory),  # no tables, but faust keeps a directory per app
        web_enabled=False,  # no web views: its port would clash with other faust apps
        key_serializer="raw",
        value_serializer="raw",
    )
    source = application.topic(TOPIC)
    results = application.topic(topic_out)
    db = pool(settings.database_url)
    codec = serde(settings)
    decode = Decoder(settings)

    async def publish(postings: list[Posting]) -> None:
        async with db.connection() as conn:
            posted = await post(conn, postings)
        for p, event in zip(postings, posted, strict=True):
            await results.send(key=p.invoice.key.encode(), value=codec.encode(event))

    if mode == "single":

        @application.agent(source, name="post-invoices")
        async def post_each(stream: faust.StreamT[bytes]) -> None:
            await db.open(wait=True)  # no-op when a restarted agent finds it open
            async for value in stream:
                await publish([Posting.of(decode(value))])

    else:

        @application.agent(source, name="post-invoices")
        async def post_taken(stream: faust.StreamT[bytes]) -> None:
            await db.open(wait=True)  # no-op when a restarted agent finds it open
            async for values in stream.take(BATCH, within=WITHIN):
                await publish([Posting.of(decode(v)) for v in values])

    return application


def main() -> None:
    args = arguments(__doc__ or "", ("single", "take"))
    settings = Settings.from_env()
    for name in ("faust", "mode", "aiokafka", "httpx2"):  # start and stop steps, requests
        logging.getLogger(name).setLevel(logging.WARNING)
    directory = datadir(settings, args.group)
    directory.parent.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    application = app(settings, args.mode, args.group, args.topic_out, directory)
    worker = faust.Worker(application, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
