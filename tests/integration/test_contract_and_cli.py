"""The contract as publishers meet it: the compatibility gate and the `finsync` CLI."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import psycopg
import pytest

from finsync.cli.main import main as finsync
from finsync.runtime import provision
from finsync.runtime.serde import registry_client, schema_text
from finsync.scenario import documents
from finsync.settings import Settings
from tests.support import ServiceProcess, eventually

pytestmark = pytest.mark.integration


def test_a_schema_change_that_breaks_registered_versions_fails_the_check(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = registry_client(settings)
    assert provision.check_and_register(client, register=False) == []

    def breaking(topic: str) -> str:
        schema = json.loads(schema_text(topic))
        if topic == "billing.invoice-issued":  # a new field without a default breaks readers
            schema["fields"].append({"name": "po_number", "type": "string"})
        return json.dumps(schema)

    monkeypatch.setattr(provision, "schema_text", breaking)
    problems = provision.check_and_register(client, register=False)
    assert [p.subject for p in problems] == ["billing.invoice-issued-value"]
    assert "BACKWARD" in problems[0].reason


def test_a_publisher_posts_an_invoice_from_json_and_an_sre_finds_a_bad_one(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    invoice = documents.invoice(random.Random(uuid.uuid4().int), 1)
    record = json.loads(invoice.model_dump_json(exclude={"event_id", "occurred_at"}))
    good = tmp_path / "invoice.json"
    good.write_text(json.dumps(record))
    bad_id = f"{invoice.invoice_id}-NOLINES"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**record, "invoice_id": bad_id, "lines": []}))

    poster = ServiceProcess("invoice-poster", tmp_path).start()
    try:
        assert finsync(["publish", "billing.invoice-issued", str(good)]) == 0
        assert finsync(["publish", "billing.invoice-issued", str(bad)]) == 0

        def posted() -> bool:
            with psycopg.connect(settings.database_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM erp.ar_open_items WHERE invoice_id = %s",
                    (invoice.invoice_id,),
                ).fetchone()
            return row == (1,)

        eventually(posted, 30, "the invoice published from JSON to be posted")

        def listed() -> bool:
            capsys.readouterr()
            finsync(["dlq", "list", "--service", "invoice-poster", "--key", bad_id])
            return "1 dead letter(s)" in capsys.readouterr().out

        eventually(listed, 30, "the dead letter to be listed")
    finally:
        poster.stop()
    finsync(["dlq", "list", "--service", "invoice-poster", "--key", bad_id,
             "--error", "InvalidEvent"])  # fmt: skip
    assert "has no lines" in capsys.readouterr().out


def test_publish_refuses_a_file_that_breaks_the_contract(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"invoice_id": "INV-1", "total": 1.5}))
    with pytest.raises(SystemExit, match=r"not a valid billing\.invoice-issued event"):
        finsync(["publish", "billing.invoice-issued", str(bad)])
