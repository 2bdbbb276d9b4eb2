"""The AsyncAPI document as the console shows it: each channel with the operations on it, its
messages with their key, headers and Avro payload fields, every $ref resolved (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Field:
    path: str  # lines[].amount
    type: str  # decimal(18,4), string | null, ...
    doc: str


@dataclass(frozen=True)
class Message:
    id: str
    title: str
    summary: str
    description: str
    key: str
    headers: list[tuple[str, str]]  # name, meaning
    payload_name: str  # the Avro record's full name
    fields: list[Field]


@dataclass(frozen=True)
class Operation:
    id: str
    action: str  # send | receive
    summary: str
    group: str  # the consumer group of a receive


@dataclass(frozen=True)
class Channel:
    name: str
    address: str
    title: str
    description: str
    kind: str  # event | retry | dead-letter (its tag)
    partitions: str
    retention: str
    operations: list[Operation]
    messages: list[Message]


@dataclass(frozen=True)
class View:
    title: str
    version: str
    description: str
    servers: list[tuple[str, str, str]]  # name, host, protocol
    channels: list[Channel]

    def of_kind(self, kind: str) -> list[Channel]:
        return [c for c in self.channels if c.kind == kind]


def resolve(doc: Mapping[str, Any], node: Any) -> Any:
    """Follow local $refs ('#/a/b') until a node is not one."""
    seen = 0
    while isinstance(node, Mapping) and "$ref" in node and seen < 20:
        target: Any = doc
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node, seen = target, seen + 1
    return node


def avro_type(t: Any) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, list):
        return " | ".join(avro_type(x) for x in t)
    if isinstance(t, Mapping):
        logical = t.get("logicalType")
        if logical == "decimal":
            return f"decimal({t.get('precision')},{t.get('scale', 0)})"
        if logical:
            return str(logical)
        kind = t.get("type")
        if kind == "array":
            return f"array<{avro_type(t.get('items'))}>"
        if kind == "map":
            return f"map<{avro_type(t.get('values'))}>"
        if kind == "enum":
            return "enum(" + ", ".join(t.get("symbols", [])) + ")"
        if kind in ("record", "fixed"):
            return str(t.get("name", kind))
        return avro_type(kind)
    return str(t)


def _records(t: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Records nested in a type, with the path suffix to reach them ('[]' through arrays)."""
    if isinstance(t, list):
        for x in t:
            yield from _records(x)
    elif isinstance(t, Mapping):
        if t.get("type") == "record":
            yield "", t
        elif t.get("type") == "array":
            for suffix, r in _records(t.get("items")):
                yield "[]" + suffix, r
        elif t.get("type") == "map":
            for suffix, r in _records(t.get("values")):
                yield "{}" + suffix, r


def avro_fields(record: Mapping[str, Any], prefix: str = "", depth: int = 0) -> list[Field]:
    out: list[Field] = []
    for f in record.get("fields", []):
        path = f"{prefix}{f['name']}"
        out.append(Field(path, avro_type(f.get("type")), str(f.get("doc", ""))))
        if depth < 5:
            for suffix, nested in _records(f.get("type")):
                out += avro_fields(nested, f"{path}{suffix}.", depth + 1)
    return out


def _message(doc: Mapping[str, Any], msg_id: str, node: Any) -> Message:
    m = resolve(doc, node)
    headers = resolve(doc, m.get("headers", {}))
    payload = resolve(doc, m.get("payload", {}))
    schema = payload.get("schema", payload) if isinstance(payload, Mapping) else {}
    key = m.get("bindings", {}).get("kafka", {}).get("key", {})
    namespace = schema.get("namespace")
    return Message(
        id=msg_id,
        title=str(m.get("title") or m.get("name") or msg_id),
        summary=str(m.get("summary", "")),
        description=str(m.get("description", "")),
        key=str(key.get("description", key.get("type", ""))),
        headers=[
            (name, str(spec.get("description", "")))
            for name, spec in headers.get("properties", {}).items()
        ],
        payload_name=f"{namespace}.{schema.get('name')}" if namespace else str(schema.get("name")),
        fields=avro_fields(schema),
    )


def view(doc: Mapping[str, Any]) -> View:
    by_channel: dict[str, list[Operation]] = {}
    for op_id, op in doc.get("operations", {}).items():
        channel = str(op.get("channel", {}).get("$ref", "")).rsplit("/", 1)[-1]
        group = op.get("bindings", {}).get("kafka", {}).get("groupId", {}).get("enum", [""])
        by_channel.setdefault(channel, []).append(
            Operation(op_id, str(op.get("action", "")), str(op.get("summary", "")), group[0])
        )
    channels = []
    for name, c in doc.get("channels", {}).items():
        kafka = c.get("bindings", {}).get("kafka", {})
        retention = kafka.get("topicConfiguration", {}).get("retention.ms")
        tags = [t.get("name", "") for t in c.get("tags", [])]
        channels.append(
            Channel(
                name=name,
                address=str(c.get("address", name)),
                title=str(c.get("title", name)),
                description=str(c.get("description") or c.get("summary") or ""),
                kind=tags[0] if tags else "event",
                partitions=str(kafka.get("partitions", "")),
                retention=_retention(retention),
                operations=sorted(by_channel.get(name, []), key=lambda o: (o.action, o.id)),
                messages=[_message(doc, k, v) for k, v in c.get("messages", {}).items()],
            )
        )
    info = doc.get("info", {})
    return View(
        title=str(info.get("title", "")),
        version=str(info.get("version", "")),
        description=str(info.get("description", "")),
        servers=[
            (n, str(s.get("host", "")), str(s.get("protocol", "")))
            for n, s in doc.get("servers", {}).items()
        ],
        channels=channels,
    )


def _retention(ms: object) -> str:
    if ms is None:
        return ""
    value = int(str(ms))
    if value < 0:
        return "forever"
    days = value / 86_400_000
    return f"{days:g} days" if days >= 1 else f"{value / 3_600_000:g} hours"
