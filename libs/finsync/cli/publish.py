"""`finsync publish TOPIC FILE.json`: validate against the topic's contract, publish as Avro."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic

from finsync.cli.console import console
from finsync.contract.events import EVENT_TYPES, Event
from finsync.runtime import clients
from finsync.runtime.serde import Serde, registry_client
from finsync.settings import Settings


def load_events(topic: str, path: Path) -> list[Event]:
    """Events from a JSON object or array; envelope fields left out are filled in."""
    if topic not in EVENT_TYPES:
        raise SystemExit(f"unknown topic {topic!r}; topics are: {', '.join(EVENT_TYPES)}")
    data: Any = json.loads(path.read_text(), parse_float=Decimal)  # money never passes a float
    items = data if isinstance(data, list) else [data]
    events = []
    for n, item in enumerate(items, 1):
        event_id = item.get("event_id") or str(uuid.uuid4())
        defaults = {
            "event_id": event_id,
            "occurred_at": datetime.now(UTC),
            "source": "finsync-cli",
            "correlation_id": event_id,
        }
        try:
            events.append(EVENT_TYPES[topic].model_validate({**defaults, **item}))
        except pydantic.ValidationError as exc:
            raise SystemExit(f"{path} item {n} is not a valid {topic} event:\n{exc}") from exc
    return events


def publish(settings: Settings, topic: str, path: Path) -> int:
    events = load_events(topic, path)
    serde = Serde(registry_client(settings))
    producer = clients.producer(settings, "finsync-publish")
    try:
        return clients.send(producer, [serde.outgoing(e) for e in events], timeout=30)
    except clients.DeliveryError as exc:
        raise SystemExit(str(exc)) from exc


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    n = publish(settings, args.topic, Path(args.file))
    console.print(f"published {n} event(s) to {args.topic}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("publish", help="validate a JSON event (or array) and publish it as Avro")
    s.add_argument("topic")
    s.add_argument("file")
    s.set_defaults(func=cmd_publish)
