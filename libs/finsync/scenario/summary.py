"""What a finance lead reads after an order-to-cash run: stages, dead letters, books, AR.

Every figure is read back from where it landed — the systems of record, the outbound topics
and the dead-letter topics — not from what the scenario meant to happen.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from finsync.books.cash_position import cash_positions
from finsync.books.printout import print_report
from finsync.books.reconcile import reconcile
from finsync.contract.events import (
    AccountUpserted,
    CustomerSynced,
    Event,
    OpportunityClosed,
    SyncAction,
)
from finsync.domain.accounting import fmt
from finsync.reference import reports
from finsync.runtime import clients, db
from finsync.runtime.serde import Serde, registry_client
from finsync.scenario.cash_summary import print_cash
from finsync.scenario.outcome import Outcome, dead_letters
from finsync.settings import Settings

TOP_CUSTOMERS = 5  # per legal entity


def _outbound(settings: Settings, serde: Serde, topic: str, outcome: Outcome) -> list[Event]:
    """The run's events on an outbound topic, as published."""
    return [
        serde.decode(topic, r.value)
        for r in clients.read(settings, topic, outcome.started_ms)
        if outcome.scenario.owns(r.key_text)
    ]


def print_summary(console: Console, settings: Settings, outcome: Outcome) -> bool:
    """Print the summary; True when the run completed and the books are right."""
    s = outcome.scenario
    like = s.like()
    serde = Serde(registry_client(settings))
    letters = dead_letters(settings, s, outcome.started_ms)
    dead_by_service = Counter(x.service for x in letters)
    synced = _outbound(settings, serde, CustomerSynced.TOPIC, outcome)
    actions = Counter(
        "linked" if e.matched_account_id and e.action is SyncAction.UNCHANGED else e.action.value
        for e in synced
        if isinstance(e, CustomerSynced)
    )
    with db.connect(settings) as conn:
        accounts = reports.accounts_synced(conn, like)
        trails = reports.opportunity_trails(conn, sorted(s.expected.activated))
        statuses = reports.payments_by_status(conn, like)
        receivables = reports.receivables_by_customer(conn, like)
        balance = reports.trial_balance(conn)
        cash = cash_positions(conn, like)

    console.rule(f"[bold]Order to cash[/bold] — run {s.tag}, seed {s.seed}, as of {s.as_of}")
    table = Table(
        "stage",
        "events in",
        "what happened",
        "dead letters",
        title=f"Stages (in {outcome.elapsed:.0f} s)",
    )
    crm_accounts = sum(isinstance(e, AccountUpserted) for e in s.crm) + len(s.late_accounts)
    table.add_row(
        "CRM accounts",
        str(crm_accounts + 1),
        f"{accounts.synced} accounts synced to {accounts.customers} ERP customers: "
        f"{actions['CREATED']} created, {accounts.linked} duplicates linked"
        + (f" (+{accounts.linked_earlier} to earlier customers)" if accounts.linked_earlier else "")
        + ", "
        + f"{actions['UPDATED']} updates applied, {actions['UNCHANGED']} stale versions ignored",
        str(dead_by_service["account-sync"]),
    )
    opportunities = sum(isinstance(e, OpportunityClosed) for e in s.crm) + 1
    activated = sum(1 for t in trails if t.subscription_id)
    table.add_row(
        "Opportunities",
        str(opportunities),
        f"{activated} subscriptions activated",
        str(dead_by_service["subscription-activator"]),
    )
    issued = sum(t.invoices for t in trails)
    posted = sum(t.posted for t in trails)
    table.add_row(
        "Invoices",
        f"{len(outcome.invoices)} issued",
        f"{posted} of {issued} posted to AR, one journal entry each",
        str(dead_by_service["invoice-poster"]),
    )
    table.add_row("Credit memos", f"{len(outcome.credit_memos)} issued", "posted against AR", "")
    table.add_row(
        "Payments",
        f"{len(outcome.payments)} distinct",
        ", ".join(f"{n} {k}" for k, n in sorted(statuses.items()) if n),
        str(dead_by_service["payment-settler"]),
    )
    console.print(table)

    table = Table("service", "key", "error", "reason", title="Dead letters of this run")
    for x in sorted(letters, key=lambda x: (x.service, x.error_class, x.record.key_text or "")):
        table.add_row(x.service, x.record.key_text or "", x.error_class, x.reason[:300])
    console.print(table)

    missing = [t.opportunity_id for t in trails if not t.posted]
    reached = len(trails) - len(missing)
    mark = "[green]✓[/green]" if not missing else "[red]✗[/red]"
    console.print(
        f"{mark} {reached} of {len(trails)} valid closed-won opportunities reached an invoice "
        "posting in the ERP" + (f"; not: {', '.join(missing[:10])}" if missing else "")
    )

    console.print(_receivables(receivables))
    clearing_tied = print_cash(console, cash)
    console.print(_trial_balance(balance))

    # The books proven three ways, for this run's documents: every control account against
    # the documents behind it, and CRM, billing, payments and the ERP against each other.
    report = reconcile(settings, since=datetime.fromtimestamp(outcome.started_ms / 1000, UTC))
    print_report(console, report)
    # The payout planted with a wrong item is the one break the run must have, by name.
    planted = f"payout {outcome.cash.mismatched}" if outcome.cash else None
    unexpected = [f for f in report.breaks if f.scope != planted]
    if planted:
        named = any(f.scope == planted for f in report.breaks)
        mark = "[green]✓[/green]" if named else "[red]✗[/red]"
        console.print(f"{mark} the planted payout mismatch is reported by name: {planted}")
    if not outcome.complete:
        console.print(f"[red]✗ the run did not complete: still waiting for {outcome.waiting_for}")
    ok = outcome.complete and not missing and not unexpected and clearing_tied
    return ok and (planted is None or len(unexpected) < len(report.breaks))


def _receivables(rows: list[reports.CustomerReceivable]) -> Table:
    """Per legal entity: the customers with the most open, then the entity's total."""
    table = Table(
        "customer", "entity", "invoiced", "credited", "paid", "written off", "open",
        "unapplied cash",
        title=f"Accounts receivable of this run: top {TOP_CUSTOMERS} customers per legal entity",
    )  # fmt: skip
    by_entity: dict[tuple[str, str], list[reports.CustomerReceivable]] = defaultdict(list)
    for r in rows:
        by_entity[(r.legal_entity, r.currency)].append(r)
    for (entity, c), group in sorted(by_entity.items()):
        for r in group[:TOP_CUSTOMERS]:  # largest open amount first
            table.add_row(
                f"{r.customer_id} {r.name}", entity, fmt(r.invoiced, c), fmt(r.credited, c),
                fmt(r.paid, c), fmt(r.written_off, c), fmt(r.open, c), fmt(r.unapplied_cash, c),
            )  # fmt: skip

        def total(field: str, group: list[reports.CustomerReceivable] = group) -> Decimal:
            return sum((getattr(r, field) for r in group), Decimal(0))

        table.add_row(
            f"[bold]all {len(group)} customers[/bold]", entity,
            *(fmt(total(f), c) for f in ("invoiced", "credited", "paid", "written_off", "open",
                                         "unapplied_cash")),
            end_section=True,
        )  # fmt: skip
    return table


def _trial_balance(balance: list[reports.TrialBalanceRow]) -> Table:
    """Each account's balance, net: a debit balance or a credit balance, never both."""
    table = Table(
        "legal entity", "account", "debit balance", "credit balance",
        title="Trial balance of the reference ERP (all postings so far)",
    )  # fmt: skip
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in balance:
        net = r.debit - r.credit
        if not net:
            continue  # an account that nets to nothing shows nothing
        dr, cr = (net, Decimal(0)) if net > 0 else (Decimal(0), -net)
        table.add_row(
            f"{r.legal_entity} {r.currency}",
            f"{r.account_code} {r.account_name}",
            fmt(dr, r.currency) if dr else "",
            fmt(cr, r.currency) if cr else "",
        )
        t = totals[(r.legal_entity, r.currency)]
        t[0] += dr
        t[1] += cr
    for (entity, currency), (dr, cr) in totals.items():
        mark = "[green]nets to zero[/green]" if dr == cr else "[red]DOES NOT NET TO ZERO[/red]"
        table.add_row(
            f"{entity} {currency}", f"[bold]total[/bold] {mark}", fmt(dr, currency),
            fmt(cr, currency), end_section=True,
        )  # fmt: skip
    return table
