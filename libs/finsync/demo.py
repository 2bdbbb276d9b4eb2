"""`make demo`: invoice-poster on the local stack with a realistic batch of billing documents.

Starts invoice-poster (consumer + relay) as its own process, publishes about a hundred invoices
and credit memos through the schema registry — including a duplicate delivery, a document
re-sent under a new event id, a malformed invoice and undecodable bytes — and shows what came
of them: postings, dead letters and why, receivables, and a trial balance that balances.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from finsync import clients, db, dlq, reports, scenario
from finsync.accounting import fmt
from finsync.events import CreditMemoIssued, Event, InvoiceIssued
from finsync.messages import Outgoing
from finsync.serde import Serde, registry_client
from finsync.settings import Settings

console = Console()
SERVICE = "invoice-poster"
# A publisher that sent JSON where Avro belongs: undecodable, so a dead letter.
POISON = b'{"invoice_id": "INV-1", "total": 100.0}'


def start_service(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    log = str(settings.home / "run" / f"demo-{SERVICE}.log")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "finsync.cli.main", "run", SERVICE],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


def publish(settings: Settings, serde: Serde, events: list[Event], raw: list[Outgoing]) -> None:
    producer = clients.producer(settings, "finsync-demo")
    try:
        clients.send(producer, [*(serde.outgoing(e) for e in events), *raw], timeout=30)
    except clients.DeliveryError as exc:
        raise SystemExit(f"the demo events were not published: {exc}") from exc


def main() -> int:
    settings = Settings.from_env()
    seed = int(os.environ.get("FINSYNC_DEMO_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    console.rule(f"[bold]finsync demo[/bold] — {SERVICE}, seed {seed}")

    invoices = [scenario.invoice(rng, n) for n in range(1, 97)]
    memos = [scenario.credit_memo(rng, inv) for inv in rng.sample(invoices, 8)]
    duplicate = invoices[5]  # delivered twice, same event id
    resent = invoices[6].model_copy(update={"event_id": uuid.uuid4()})  # same invoice, new id
    good = invoices[7]
    malformed = good.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "invoice_id": f"INV-MALFORMED-{seed}",
            "total": good.total + 10,
        }
    )
    poison_key = f"INV-UNREADABLE-{seed}".encode()
    events: list[Event] = [*invoices, *memos, duplicate, resent, malformed]

    serde = Serde(registry_client(settings))
    proc, log = start_service(settings)
    started = time.monotonic()
    try:
        publish(settings, serde, events, [Outgoing("billing.invoice-issued", poison_key, POISON)])
        console.print(
            f"published {len(invoices)} invoices and {len(memos)} credit memos, plus one duplicate "
            "delivery, one invoice re-sent under a new event id, one malformed invoice and one "
            f"undecodable message; {SERVICE} logs to {log}"
        )
        keys = [f"invoice:{i.invoice_id}" for i in invoices] + [
            f"credit-memo:{m.credit_memo_id}" for m in memos
        ]
        dead_keys = {malformed.invoice_id, poison_key.decode()}
        with console.status("waiting for postings and dead letters ...") as status:
            deadline = time.monotonic() + 180
            while True:
                with db.connect(settings) as conn:
                    posted = reports.postings_by_key(conn, keys)
                letters = [x for x in dlq.read(settings, SERVICE) if x.record.key_text in dead_keys]
                status.update(
                    f"posted {len(posted)}/{len(keys)} documents, {len(letters)}/2 dead letters ..."
                )
                if len(posted) == len(keys) and len(letters) >= 2:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the demo did not complete; see {log}")
                time.sleep(0.5)
        elapsed = time.monotonic() - started
        report(settings, invoices, memos, posted, letters, duplicate, resent, elapsed)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return 0


def report(
    settings: Settings,
    invoices: list[InvoiceIssued],
    memos: list[CreditMemoIssued],
    posted: dict[str, int],
    letters: list[dlq.DeadLetter],
    duplicate: InvoiceIssued,
    resent: InvoiceIssued,
    elapsed: float,
) -> None:
    inv_posted = sum(1 for i in invoices if posted.get(f"invoice:{i.invoice_id}") == 1)
    memo_posted = sum(1 for m in memos if posted.get(f"credit-memo:{m.credit_memo_id}") == 1)
    console.print(f"\n[bold]Postings[/bold] (in {elapsed:.1f} s)")
    console.print(f"  invoices posted      {inv_posted}/{len(invoices)}, one journal entry each")
    console.print(f"  credit memos posted  {memo_posted}/{len(memos)}")
    console.print(
        f"  duplicate delivery of {duplicate.invoice_id}: "
        f"{posted.get(f'invoice:{duplicate.invoice_id}')} journal entry"
    )
    console.print(
        f"  {resent.invoice_id} re-sent under a new event id: "
        f"{posted.get(f'invoice:{resent.invoice_id}')} journal entry"
    )

    table = Table("key", "error", "reason", title="Dead letters (invoice-poster.dlq)")
    for x in letters:
        table.add_row(x.record.key_text or "", x.error_class, x.reason)
    console.print(table)

    with db.connect(settings) as conn:
        receivables = reports.open_receivables(conn, [i.invoice_id for i in invoices])
        balance = reports.trial_balance(conn)
        unbalanced = reports.unbalanced_entries(conn)
    table = Table("legal entity", "invoiced", "open", title="Receivables from this run")
    for entity, currency, original, open_ in receivables:
        table.add_row(entity, fmt(original, currency), fmt(open_, currency))
    console.print(table)

    table = Table(
        "legal entity",
        "account",
        "debit",
        "credit",
        title="Trial balance of the reference ERP (all postings so far)",
    )
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in balance:
        table.add_row(
            f"{r.legal_entity} {r.currency}",
            f"{r.account_code} {r.account_name}",
            fmt(r.debit, r.currency),
            fmt(r.credit, r.currency),
        )
        t = totals[(r.legal_entity, r.currency)]
        t[0] += r.debit
        t[1] += r.credit
    for (entity, currency), (dr, cr) in totals.items():
        mark = "[green]balanced[/green]" if dr == cr else "[red]NOT BALANCED[/red]"
        table.add_row(
            f"{entity} {currency}",
            f"[bold]total[/bold] {mark}",
            fmt(dr, currency),
            fmt(cr, currency),
        )
    console.print(table)
    verdict = (
        "[green]every journal entry balances[/green]"
        if unbalanced == 0
        else f"[red]{unbalanced} journal entries do not balance[/red]"
    )
    console.print(verdict)


if __name__ == "__main__":
    sys.exit(main())
