"""The business content of an event as hashes, so a document re-sent under its business key can
be told apart from a document re-sent with other content, and the fields that differ named.

Every field counts except the envelope. Values are made canonical first: an amount by its value
(Avro hands decimals back at the schema's scale, so 1.5 and 1.50 are one amount), dates and
times as ISO (times in UTC), enums by their value, lists in their order. Fields are named by
their flattened path: `total`, `lines[1].amount`, and `lines` for the number of lines.

Only digests are kept, never the values (the content holds personal data): a 16-byte digest of
the whole content, and per field a 4-byte CRC-32 of its path and value. A field differs when its
CRC is not among the other document's: that names it without storing the path, so 25 fields
cost 100 bytes. (CRC-32 only names what differs; the whole digest decides whether anything
does.)
"""

from __future__ import annotations

import decimal
import hashlib
import sys
import zlib
from array import array
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from finsync.contract.events import Event

# event_id, occurred_at, source, correlation_id, causation_id: how it was sent, not what.
ENVELOPE = frozenset(Event.model_fields)

_EXACT = decimal.Context(prec=decimal.MAX_PREC)  # normalize() must never round
assert array("I").itemsize == 4, "a CRC-32 is stored in 4 bytes"


@dataclass(frozen=True)
class Fingerprint:
    digest: bytes  # 16 bytes, of the whole business content
    fields: bytes  # 4 bytes per field path: CRC-32 of the path and its value
    paths: tuple[str, ...]  # the field paths, in the order of `fields`; never stored


def fingerprint(event: Event) -> Fingerprint:
    # This runs for every event a service takes in, so it is written for speed: model_dump
    # walks the nested models in compiled code, and the loop below is flat, with the common
    # types first and the methods it calls bound once.
    content = event.model_dump(exclude=ENVELOPE)  # type: ignore[arg-type]
    parts: list[str] = []
    paths: list[str] = []
    crcs = array("I")
    part_, path_, crc_, crc32 = parts.append, paths.append, crcs.append, zlib.crc32
    todo: list[tuple[str, Any]] = [("", content)]  # in order: fields first, then lines' fields
    for prefix, item in todo:  # grows as it goes
        for name, value in item.items() if type(item) is dict else item:
            path = prefix + name
            kind = type(value)
            if kind is str:
                text: str = "s" + value
            elif kind is Decimal:
                text = "n" + _number(value)
            elif kind is date:
                text = "d" + value.isoformat()
            elif value is None:
                # A null is left out of the whole digest, so an optional field the contract
                # gains later leaves the digests of the documents before it as they were.
                crc_(crc32(f"{path}!".encode()))
                path_(path)
                continue
            elif kind is dict:
                todo.append((path + ".", value))
                continue
            elif kind is list:
                todo.append((path, [(f"[{i}]", x) for i, x in enumerate(value)]))
                text = f"n{len(value)}"  # one element more or fewer: a difference too
            else:
                text = canonical(value) or ""  # not None: that is handled above
            # Length-prefixed, so no value runs into the next path; tagged: "1" is not 1.
            part = f"{path}:{len(text)}:{text}\n"
            part_(part)
            crc_(crc32(part.encode()))
            path_(path)
    if sys.byteorder == "big":
        crcs.byteswap()  # stored little-endian, whatever the machine
    whole = hashlib.blake2b("".join(parts).encode(), digest_size=16).digest()
    return Fingerprint(whole, crcs.tobytes(), tuple(paths))


def canonical(value: object) -> str | None:
    """The value as tagged text: `s` text, `n` number, `d` date or time, `b` boolean."""
    if value is None:
        return None
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, Decimal):
        return "n" + _number(value)
    if isinstance(value, bool):
        return "b" + str(value).lower()
    if isinstance(value, int):
        return f"n{value}"
    if isinstance(value, datetime):
        return "d" + (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, date):
        return "d" + value.isoformat()
    raise TypeError(f"no canonical form for a {type(value).__name__}")


def _number(value: Decimal) -> str:
    """An amount by its value: 1.50 and 1.5 are `1.5`, 100.00 and 1E+2 are `100`."""
    if not value:
        return "0"  # also -0 and 0E-2
    text = str(value)
    if "E" in text:  # exponent notation: rare, and slower to make plain
        return format(value.normalize(_EXACT), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def differing(before: bytes, after: Fingerprint) -> list[str]:
    """The fields of `after` that `before` (its `fields`) did not have with the same value, in
    the order of the event's fields. A list element whose every field differs is named once,
    as `lines[2]`: one that is new, or replaced. One that is gone shows as `lines`, the count."""
    old = set(_crcs(before))
    fields = list(zip(after.paths, _crcs(after.fields), strict=True))
    same_in = {_element(p) for p, c in fields if c in old}  # elements with a field unchanged
    named: list[str] = []
    for path in (p for p, c in fields if c not in old):
        element = _element(path)
        name = element[:-1] if element and element not in same_in else path
        if name not in named:
            named.append(name)
    return named


def _crcs(fields: bytes) -> array[int]:
    crcs = array("I")
    crcs.frombytes(fields[: len(fields) - len(fields) % 4])
    if sys.byteorder == "big":
        crcs.byteswap()
    return crcs


def _element(path: str) -> str | None:
    """`lines[2].` for `lines[2].amount`: the prefix of the list element the path is in."""
    end = path.rfind("].")
    return path[: end + 2] if end >= 0 else None
