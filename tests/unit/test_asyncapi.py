"""docs/asyncapi.yaml: what the code describes now, valid AsyncAPI 3.0.0, the .avsc files inline."""

import copy
import json
from pathlib import Path
from typing import Never

import fastavro
import pytest
import yaml

from finsync.cli.main import main
from finsync.contract.events import EVENT_TYPES, Event, InvoiceIssued, InvoicePosted
from finsync.contract.topics import SERVICES, all_topics, dlq_topic, retry_topic
from finsync.runtime import asyncapi, asyncapi_check
from finsync.runtime import headers as h
from finsync.service import Service

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture(scope="module")
def doc():
    return asyncapi.document()


@pytest.fixture(scope="module")
def committed():
    return yaml.safe_load(asyncapi.DOCUMENT.read_text())


def test_the_committed_document_is_what_the_code_describes(doc):
    problem = asyncapi_check.stale(asyncapi.DOCUMENT, asyncapi.render(doc))
    assert problem is None, f"docs/asyncapi.yaml is out of date; run finsync asyncapi\n{problem}"


def test_the_committed_document_is_valid_asyncapi_3(committed):
    assert committed["asyncapi"] == "3.0.0"
    assert asyncapi_check.invalid(committed) == []


def test_generating_twice_gives_the_same_bytes_whatever_the_environment(doc, monkeypatch):
    monkeypatch.setenv("FINSYNC_KAFKA_BOOTSTRAP", "elsewhere:19092")
    monkeypatch.setenv("FINSYNC_TOPIC_PARTITIONS", "12")
    assert asyncapi.render(asyncapi.document()) == asyncapi.render(doc)
    assert yaml.safe_load(asyncapi.render(doc)) == doc


def _set(d, path, value):
    *parents, last = path
    for part in parents:
        d = d[part]
    d[last] = value


@pytest.mark.parametrize(
    ("path", "value", "reported"),
    [
        (
            ("channels", "billing.invoice-issued", "bindings", "kafka", "partitions"),
            0,
            "channels/billing.invoice-issued/bindings/kafka/partitions",
        ),
        (("channels", "billing.invoice-issued", "address"), 42, "billing.invoice-issued/address"),
        (
            ("channels", "billing.invoice-issued", "messages", "InvoiceIssued"),
            {"$ref": "#/components/messages/NoSuchMessage"},
            "#/components/messages/NoSuchMessage points at nothing",
        ),
        (
            ("operations", "invoice-poster.receive.billing.invoice-issued", "action"),
            "subscribe",
            "invoice-poster.receive.billing.invoice-issued/action",
        ),
        (
            ("operations", "invoice-poster.receive.billing.invoice-issued", "messages"),
            [{"$ref": "#/channels/crm.account-upserted/messages/AccountUpserted"}],
            "is not of #/channels/billing.invoice-issued",
        ),
        (
            ("components", "schemas", "billing.invoice-issued", "schema", "type"),
            "recordd",
            "components/schemas/billing.invoice-issued/schema",
        ),
    ],
)
def test_a_broken_document_fails_validation(doc, path, value, reported):
    broken = copy.deepcopy(doc)
    _set(broken, path, value)
    problems = asyncapi_check.invalid(broken)
    assert problems, "the broken document passed validation"
    assert any(reported in p for p in problems), problems


@pytest.mark.parametrize("topic", sorted(p.stem for p in SCHEMAS.glob("*.avsc")))
def test_each_payload_is_its_avsc_file_inline(committed, topic):
    avsc = json.loads((SCHEMAS / f"{topic}.avsc").read_text())
    schema = committed["components"]["schemas"][topic]
    assert schema == {"schemaFormat": "application/vnd.apache.avro;version=1.9.0", "schema": avsc}
    fastavro.parse_schema(schema["schema"])  # an Avro schema Avro itself accepts
    (ref,) = committed["channels"][topic]["messages"].values()
    message = asyncapi_check.resolve(committed, ref["$ref"])
    assert message["payload"] == {"$ref": f"#/components/schemas/{topic}"}
    key = EVENT_TYPES[topic].KEY_FIELD
    assert f"`{key}`" in message["bindings"]["kafka"]["key"]["description"]


def test_every_topic_is_a_channel(doc):
    topics = {t.name for t in all_topics(list(SERVICES), 3)}
    assert set(doc["channels"]) == topics
    assert {f"{s}.retry" for s in SERVICES} | {f"{s}.dlq" for s in SERVICES} <= topics


def test_receive_operations_carry_the_consumer_group(doc):
    ops = doc["operations"]
    for topic in ("billing.invoice-issued", "billing.credit-memo-issued", "invoice-poster.retry"):
        op = ops[f"invoice-poster.receive.{topic}"]
        assert op["action"] == "receive"
        assert op["bindings"]["kafka"]["groupId"]["enum"] == ["invoice-poster"]
    receivers = {k.split(".receive.")[0] for k in ops if k.endswith(".receive.erp.invoice-posted")}
    assert receivers == {"finance-analytics"}  # no service consumes it; the analytics do
    kpis = ops["finance-analytics.send.analytics.finance-kpis"]
    assert "faust-streaming app" in kpis["summary"]
    channel = doc["channels"]["analytics.finance-kpis"]
    assert channel["bindings"]["kafka"]["topicConfiguration"] == {"cleanup.policy": ["compact"]}
    assert not any(k.endswith(".receive.invoice-poster.dlq") for k in ops)


def test_send_operations_name_the_publishers(doc):
    senders = {k for k, op in doc["operations"].items() if op["action"] == "send"}
    assert {
        "crm.send.crm.account-upserted",
        "billing.send.billing.invoice-issued",
        "payments.send.payments.payment-settled",
        "erp.send.erp.revenue-recognized",  # published by no service: the ERP's own job
        "invoice-poster.send.erp.invoice-posted",
        "invoice-poster.send.erp.payment-applied",  # earmarked cash applied as an invoice posts
        "payment-settler.send.erp.payout-reconciled",
        "subscription-activator.send.billing.subscription-activated",
        "payment-settler.send.payment-settler.retry",
        "payment-settler.send.payment-settler.dlq",
    } <= senders
    assert "crm.send.erp.invoice-posted" not in senders
    assert not any(k.startswith("billing.send.billing.subscription-activated") for k in senders)


def test_dead_letter_and_retry_headers_are_all_described(doc):
    schemas = doc["components"]["schemas"]
    dlq = schemas["headers.dead-letter"]["properties"]
    retry = schemas["headers.retry"]["properties"]
    for name in (h.ERR_TOPIC, h.ERR_EXCEPTION_MESSAGE, h.ERR_CLASS, h.ERR_TRACE_ID):
        assert dlq[name]["description"]
    assert dlq[h.ERR_FIRST_FAILURE]["description"] == "ISO-8601 UTC"  # a row naming two headers
    assert set(asyncapi.DLQ_HEADERS) <= set(dlq)
    assert set(asyncapi.RETRY_HEADERS) | {h.TRACEPARENT} <= set(retry)
    assert not any(n.startswith("finsync.retry.") for n in dlq)  # dropped on the way to the dlq
    message = doc["components"]["messages"]["InvoiceIssued.dead-letter"]
    assert message["headers"] == {"$ref": "#/components/schemas/headers.dead-letter"}
    channel = doc["channels"][dlq_topic("invoice-poster")]["messages"]
    assert set(channel) == {"InvoiceIssued", "CreditMemoIssued"}
    assert retry_topic("invoice-poster") in doc["channels"]


def test_a_header_the_docs_do_not_explain_stops_the_generation(tmp_path, monkeypatch):
    docs = asyncapi.HEADER_DOCS.read_text()
    row = next(line for line in docs.splitlines() if line.startswith(f"| `{h.ERR_STAGE}`"))
    (tmp_path / "dead-letters.md").write_text(docs.replace(row + "\n", ""))
    monkeypatch.setattr(asyncapi, "HEADER_DOCS", tmp_path / "dead-letters.md")
    with pytest.raises(ValueError, match=f"no meaning for the headers \\['{h.ERR_STAGE}'\\]"):
        asyncapi.document()


def _posts(invoice: InvoiceIssued, systems: object) -> list[InvoicePosted]:
    return []


def _nothing(invoice: InvoiceIssued, systems: object) -> list[Never]:
    return []


def _anything(invoice: InvoiceIssued, systems: object) -> list[Event]:
    return []


def test_what_a_service_publishes_is_what_its_handlers_declare():
    def service(handler):
        return Service(name="x", handlers={InvoiceIssued.TOPIC: handler}, bind=lambda c: None)

    assert asyncapi.published(service(_posts)) == ["erp.invoice-posted"]
    assert asyncapi.published(service(_nothing)) == []
    with pytest.raises(TypeError, match="declare the event types it publishes"):
        asyncapi.published(service(_anything))


def test_check_exits_1_on_a_stale_file_and_0_on_a_current_one(doc, tmp_path, capsys):
    current = tmp_path / "asyncapi.yaml"
    current.write_text(asyncapi.render(doc))
    assert main(["asyncapi", "--check", "--file", str(current)]) == 0
    current.write_text(asyncapi.render(doc).replace("retention.ms: -1", "retention.ms: 1"))
    assert main(["asyncapi", "--check", "--file", str(current)]) == 1
    assert "run `finsync asyncapi`" in capsys.readouterr().out
