"""Is docs/asyncapi.yaml current, and valid AsyncAPI 3.0.0? (`finsync asyncapi --check`)"""

from __future__ import annotations

import difflib
import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finsync.runtime.asyncapi import DOCUMENT, SPEC_SCHEMA, document, render

DIFF_LINES = 40


def stale(path: Path = DOCUMENT, expected: str | None = None) -> str | None:
    """Why the file is not what the generator produces now (with the first lines that differ),
    or None if it is."""
    if not path.exists():
        return f"{path} does not exist: run `finsync asyncapi`"
    expected = render(document()) if expected is None else expected
    actual = path.read_text()
    if actual == expected:
        return None
    lines = difflib.unified_diff(
        actual.splitlines(), expected.splitlines(), str(path), "generated now", lineterm="", n=1
    )
    shown = list(itertools.islice(lines, DIFF_LINES))
    return f"{path} is not what the code describes now: run `finsync asyncapi`\n" + "\n".join(shown)


def invalid(doc: Mapping[str, Any]) -> list[str]:
    """Why the document is not valid AsyncAPI 3.0.0: the official JSON Schema (needs the
    jsonschema package, a development dependency), and the rules it cannot express (every
    local $ref resolves; an operation's messages are its channel's)."""
    import jsonschema

    schema = json.loads(SPEC_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(dict(doc)), key=lambda e: list(e.absolute_path)):
        leaf = jsonschema.exceptions.best_match([error])  # the likeliest of a oneOf's failures
        where = "/".join(map(str, leaf.absolute_path)) or "(root)"
        problems.append(f"{where}: {leaf.message[:200]}")
    for ref in sorted(_refs(doc)):
        if resolve(doc, ref) is None:
            problems.append(f"$ref {ref} points at nothing")
    for op_id, op in (doc.get("operations") or {}).items():
        channel = str((op.get("channel") or {}).get("$ref", ""))
        for m in op.get("messages") or []:
            if not str(m.get("$ref", "")).startswith(f"{channel}/messages/"):
                problems.append(f"operations/{op_id}: message {m} is not of {channel}")
    return problems


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return own.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def resolve(doc: Any, ref: str) -> Any:
    """What a local `$ref` (`#/components/messages/InvoiceIssued`) points at, or None."""
    if not ref.startswith("#/"):
        return None  # the document refers only to itself
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
