"""Lineage without a database: why a document did not take effect, where its evidence is
filed, and how a wide tree is capped."""

from __future__ import annotations

from datetime import UTC, datetime

from finsync.ops.lineage_evidence import why_missing
from finsync.ops.lineage_model import (
    Builder,
    DeadLetterRef,
    EventRef,
    Waiting,
    source_of,
    trace_of_traceparent,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 27, 9, 5, tzinfo=UTC)


def _letter(id_: int, status: str = "open") -> DeadLetterRef:
    return DeadLetterRef(
        id_, "invoice-poster", "InvalidEvent", "permanent",
        "invoice INV-1 total 120.00 EUR is not subtotal 100.00 EUR + tax 19.00 EUR",
        status, T0, None,
    )  # fmt: skip


def test_a_record_waiting_in_retry_is_what_a_missing_document_is_doing_now() -> None:
    waiting = Waiting("subscription-activator", since=T0, due_at=T1, queued=2)
    missing = why_missing("subscription-activator", [], [_letter(7, "replayed")], waiting)
    assert missing.why == "retrying" and missing.waiting == waiting
    assert missing.detail == (
        "waiting in retry at subscription-activator since 2026-11-27 09:00:00 UTC, next "
        "attempt at 2026-11-27 09:05:00 UTC; 2 records of its key wait in order"
    )


def test_a_dead_letter_gives_its_id_class_and_reason() -> None:
    missing = why_missing("invoice-poster", [], [_letter(42), _letter(41)], None)
    assert missing.why == "dead-letter" and missing.dead_letter is not None
    assert missing.dead_letter.id == 42
    assert missing.detail == (
        "dead letter 42 at invoice-poster: InvalidEvent, permanent: invoice INV-1 total "
        "120.00 EUR is not subtotal 100.00 EUR + tax 19.00 EUR"
    )
    assert "(replayed)" in why_missing("invoice-poster", [], [_letter(43, "replayed")], None).detail


def test_without_retries_or_dead_letters_it_was_received_or_not_yet() -> None:
    event = EventRef("payment-settler", "e-1", "payments.payment-settled",
                     "payments.payment-settled:PAY-1", T0, None)  # fmt: skip
    assert why_missing("payment-settler", [event], [], None).why == "received"
    missing = why_missing("payment-settler", [], [], None)
    assert (missing.why, missing.detail) == ("not-received", "not received by payment-settler yet")


def test_each_kind_of_document_is_filed_under_its_service_key_and_inbox_keys() -> None:
    invoice = source_of("invoice", "INV-1")
    assert (invoice.service, invoice.key) == ("invoice-poster", "INV-1")
    assert invoice.document_keys == ["billing.invoice-issued:INV-1"]
    account = source_of("account", "ACC-1", took_effect=False)
    assert (account.service, account.prefix, account.took_effect) == (
        "account-sync",
        "crm.account-upserted:ACC-1:v",
        False,
    )
    assert source_of("dispute", "DSP-1").document_keys == [
        "payments.dispute-updated:DSP-1:OPENED",
        "payments.dispute-updated:DSP-1:WON",
        "payments.dispute-updated:DSP-1:LOST",
    ]


def test_children_over_the_fan_out_are_counted_and_the_tree_stops_at_its_size_cap() -> None:
    b = Builder(fan_out=2, max_hops=4)
    root = b.add(None, "account", "ACC-1", "synced v1")
    b.left_out(root, total=5, shown=2)
    assert b.hops[root].more == 3 and b.capped
    for n in range(3):
        assert b.room()
        b.add(root, "opportunity", f"OPP-{n}", "activated")
    assert not b.room() and len(b.hops) == 4
    assert b.seen("opportunity", "OPP-2") and not b.seen("opportunity", "OPP-3")
    assert [h.parent for h in b.hops] == [None, 0, 0, 0]


def test_the_trace_id_of_a_traceparent() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_of_traceparent(f"00-{trace_id}-00f067aa0ba902b7-01") == trace_id
    assert trace_of_traceparent(None) is None
    assert trace_of_traceparent("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None
