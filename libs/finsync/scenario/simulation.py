"""A realistic order-to-cash scenario, seedable, played through the running services.

CRM publishes hundreds of accounts — some duplicates of others, some children before their
parents, some updated and then sent a stale version — and closed-won opportunities with
multi-line, phased contracts in four legal entities and currencies; some arrive before their
account. The reference billing system runs its invoices and issues a few credit memos. The
payment gateway settles payments: full, partial, within tolerance, over, without invoice,
early (before the invoice is posted), for next month's invoice, duplicated. Every source also
sends a few malformed events.

The same seed gives the same scenario; ids carry the run's tag so runs do not collide.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import LiteralString

from finsync.contract.events import (
    AccountUpserted,
    BillingPeriod,
    CreditMemoIssued,
    Event,
    InvoiceIssued,
    OpportunityClosed,
    OpportunityLine,
    PaymentSettled,
)
from finsync.contract.topics import SERVICES, dlq_topic
from finsync.domain.billing_schedule import (
    add_months,
    due_invoices,
    line_value,
    money,
    phase_end,
)
from finsync.ports.billing import Phase
from finsync.reference.billing import jobs as billing_jobs
from finsync.runtime import clients, db
from finsync.runtime.dlq import DeadLetter
from finsync.runtime.messages import Outgoing
from finsync.runtime.serde import Serde, registry_client
from finsync.scenario.documents import FX
from finsync.settings import Settings

# Legal entity, its currency, the countries its customers are in.
REGIONS = [
    ("ACME-US", "USD", ["US", "US", "US", "CA"]),
    ("ACME-DE", "EUR", ["DE", "DE", "AT", "FR", "NL"]),
    ("ACME-UK", "GBP", ["GB", "GB", "IE"]),
    ("ACME-JP", "JPY", ["JP"]),
]
LEGAL_FORMS = {
    "US": "Inc.",
    "CA": "Ltd.",
    "DE": "GmbH",
    "AT": "GmbH",
    "FR": "SAS",
    "NL": "B.V.",
    "GB": "Ltd",
    "IE": "Ltd",
    "JP": "K.K.",
}
_FIRST = (
    "Northwind Blue-Harbor Granite Silverline Kestrel Juniper Aurora Copperfield Meridian "
    "Tidewater Evergreen Redwood Falcon Summit Lakeside Orion Harbor-Light Ironbridge Quartz "
    "Willow Cobalt Stonegate Brightwater Pinecrest Sable Vantage Horizon Atlas Beacon Crescent"
)
FIRST = _FIRST.split()
_SECOND = (
    "Logistics Analytics Foods Robotics Health Media Energy Retail Labs Systems Freight "
    "Pharma Textiles Mobility Insurance"
)
SECOND = _SECOND.split()
MIDDLE = ["", "", "", "Nordic", "Pacific", "United", "Global", "Digital", "Applied", "Advanced",
          "Prime", "Central", "Coastal", "Alpine", "Metro"]  # fmt: skip
# SKU, description, price per unit per period in USD, billing period, terms in months.
PRODUCTS = [
    ("PLAT-SEAT", "Platform seat", Decimal("49.00"), BillingPeriod.MONTHLY, (12, 24)),
    ("PLAT-SEAT-Q", "Platform seat, quarterly", Decimal("141.00"), BillingPeriod.QUARTERLY, (12,)),
    ("ANALYTICS", "Analytics add-on", Decimal("1200.00"), BillingPeriod.ANNUAL, (12, 24)),
    ("SUPPORT-PREM", "Premium support", Decimal("300.00"), BillingPeriod.QUARTERLY, (12,)),
    ("ONBOARDING", "Onboarding package", Decimal("2500.00"), BillingPeriod.ONE_TIME, (1,)),
]
UNREADABLE = b'{"this is": "JSON, not Avro"}'  # a publisher that forgot the serializer
MIN_ACCOUNTS = 20  # enough for every kind of account, deal and payment to occur
STALL = 90  # seconds without progress after which a stage is reported as stuck


@dataclass
class Expected:
    """What the run must end with."""

    linked: dict[str, str] = field(default_factory=dict)  # duplicate -> account it matches
    versions: dict[str, int] = field(default_factory=dict)  # synced account -> its last version
    activated: set[str] = field(default_factory=set)  # opportunities with a subscription
    dead: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> key -> error
    payments: set[str] = field(default_factory=set)  # payments that take effect

    def dead_letter(self, service: str, key: str, error: str) -> None:
        self.dead.setdefault(service, {})[key] = error


@dataclass
class Scenario:
    seed: int
    tag: str
    as_of: date
    rng: random.Random
    crm: list[Event | Outgoing]  # what CRM publishes first, in order
    late_accounts: list[AccountUpserted]  # published after their opportunities
    opportunities: list[OpportunityClosed]  # the valid ones
    orphan_parent: AccountUpserted  # never published by the run: its child waits in vain
    expected: Expected

    def like(self) -> str:
        """SQL LIKE pattern matching the ids of this run."""
        return f"%-{self.tag}-%"

    def owns(self, key: str | None) -> bool:
        """Whether a business id (a message key) is one of this run's."""
        return f"-{self.tag}-" in (key or "")


def _envelope(source: str, correlation: str) -> dict[str, object]:
    return {
        # Random, not seeded: the seed repeats a scenario's documents, but each publication is
        # a new event. (Documents repeated under the same tag still take effect once.)
        "event_id": uuid.uuid4(),
        "occurred_at": datetime.now(UTC),
        "source": source,
        "correlation_id": correlation,
    }


def _company(rng: random.Random, country: str, first: str | None = None) -> str:
    first = first or rng.choice(FIRST).replace("-", " ")
    words = [first, rng.choice(MIDDLE), rng.choice(SECOND), LEGAL_FORMS.get(country, "Ltd")]
    return " ".join(w for w in words if w)


def _tax_id(rng: random.Random, country: str) -> str:
    return f"{country}{rng.randrange(10**8, 10**9)}"


def build(seed: int, tag: str | None, as_of: date, accounts: int = 200) -> Scenario:
    """The whole CRM side of the scenario; billing and payments follow from what happens."""
    if accounts < MIN_ACCOUNTS:
        raise ValueError(f"a scenario needs at least {MIN_ACCOUNTS} accounts, not {accounts}")
    rng = random.Random(seed)
    tag = tag or f"s{seed}{uuid.uuid4().hex[:4]}"
    # Who the companies are differs from run to run, so one run's accounts are not duplicates
    # of the last one's; what happens to them is the seed's.
    who = random.Random(f"{seed}:{tag}")
    expected = Expected()
    valid: dict[str, AccountUpserted] = {}

    def account(n: int, name_prefix: str | None = None, **over: object) -> AccountUpserted:
        entity, currency, countries = rng.choice(REGIONS)
        country = str(over.get("country") or rng.choice(countries))
        account_id = f"ACC-{tag}-{n:04d}"
        name = _company(who, country, name_prefix)
        fields: dict[str, object] = {
            **_envelope("crm", f"acc-{account_id}"),
            "account_id": account_id,
            "name": name,
            "country": country,
            "currency": currency,
            "tax_id": _tax_id(who, country) if rng.random() < 0.9 else None,
            "email_domain": name.split()[0].lower() + ".example",
            "legal_entity": entity,
            "version": 1,
        }
        fields.update(over)
        return AccountUpserted.model_validate(fields)

    # Names are kept distinct (per country) so that only the planted duplicates match.
    names: set[tuple[str, str]] = set()

    def distinct(n: int, name_prefix: str | None = None, **over: object) -> AccountUpserted:
        a = account(n, name_prefix, **over)
        while (a.name.lower(), a.country) in names:
            a = account(n, name_prefix, **over)
        names.add((a.name.lower(), a.country))
        return a

    for n in range(1, accounts + 1):
        a = distinct(n)
        valid[a.account_id] = a
    plain = list(valid.values())

    # Children: some published before their parents, which then wait in retry.
    children = []
    for n, parent in enumerate(rng.sample(plain, max(4, accounts // 12)), accounts + 1):
        child = distinct(
            n,
            legal_entity=parent.legal_entity,
            currency=parent.currency,
            country=parent.country,
            parent_account_id=parent.account_id,
            name_prefix=parent.name.split(" ")[0],  # a subsidiary: the group's name, a division
        )
        valid[child.account_id] = child
        children.append(child)
    early_children = {c.account_id for c in children[: len(children) // 2]}

    # Duplicates: the same company entered twice in CRM — by tax id written differently, or by
    # the same name with another spelling of case and legal form.
    duplicates = []
    n = accounts + len(children) + 1
    for original in rng.sample([a for a in plain if a.tax_id], max(3, accounts // 40)):
        tax = original.tax_id or ""
        dup = account(
            n,
            legal_entity=original.legal_entity,
            currency=original.currency,
            country=original.country,
            name=original.name.upper(),
            tax_id=f"{tax[:2]} {tax[2:5]}.{tax[5:8]}-{tax[8:]}",
        )
        duplicates.append(dup)
        expected.linked[dup.account_id] = original.account_id
        n += 1
    for original in rng.sample([a for a in plain if not a.tax_id], max(2, accounts // 60)):
        bare = original.name.rsplit(" ", 1)[0]
        dup = account(
            n,
            legal_entity=original.legal_entity,
            currency=original.currency,
            country=original.country,
            name=f"{bare.lower()}, {LEGAL_FORMS[original.country].upper()}",
            tax_id=None,
        )
        duplicates.append(dup)
        expected.linked[dup.account_id] = original.account_id
        n += 1
    for dup in duplicates:
        valid[dup.account_id] = dup

    # Updates (a new billing domain). For some, version 3 reaches CRM's topic before version 2:
    # the stale version 2 must change nothing.
    updates = []
    for a in rng.sample(plain, max(6, accounts // 15)):
        v2 = a.model_copy(
            update={
                **_envelope("crm", a.correlation_id),
                "version": 2,
                "email_domain": f"billing.{a.email_domain}",
            }
        )
        if rng.random() < 0.5:
            updates.append(v2)
            valid[a.account_id] = v2
            continue
        v3 = v2.model_copy(
            update={**_envelope("crm", a.correlation_id), "version": 3,
                    "email_domain": f"ap.{a.email_domain}"}
        )  # fmt: skip
        updates += [v3, v2]
        valid[a.account_id] = v3

    # An orphan: its parent never comes, so it ends as a dead letter after its retries.
    orphan_parent = distinct(n + 1)
    orphan = distinct(
        n + 2,
        legal_entity=orphan_parent.legal_entity,
        currency=orphan_parent.currency,
        country=orphan_parent.country,
        parent_account_id=orphan_parent.account_id,
    )
    expected.dead_letter("account-sync", orphan.account_id, "DependencyNotReady")
    bad_account = account(n + 3, country="XX")
    expected.dead_letter("account-sync", bad_account.account_id, "InvalidEvent")
    unreadable_key = f"ACC-{tag}-UNREADABLE"
    expected.dead_letter("account-sync", unreadable_key, "UndecodableEvent")

    expected.versions = {a.account_id: a.version for a in valid.values()}

    # Opportunities: every account buys once, and two of the duplicates too.
    buyers = [a for a in valid.values() if a.account_id not in expected.linked]
    buyers += [valid[d] for d in rng.sample(sorted(expected.linked), 2)]
    opportunities = [_opportunity(rng, tag, k, b, as_of) for k, b in enumerate(buyers, 1)]
    expected.activated = {o.opportunity_id for o in opportunities}

    invalid_opps = _invalid_opportunities(rng, tag, plain[0], as_of)
    for o, error in invalid_opps:
        expected.dead_letter("subscription-activator", o.opportunity_id, error)
    orphan_opp = _opportunity(rng, tag, 9001, orphan, as_of)
    expected.dead_letter("subscription-activator", orphan_opp.opportunity_id, "DependencyNotReady")
    expected.dead_letter("subscription-activator", f"OPP-{tag}-UNREADABLE", "UndecodableEvent")

    # A few accounts reach CRM's topic only after their opportunities, which wait in retry.
    # (Not parents, originals of duplicates or updated accounts: those have stories of their own.)
    busy = {c.parent_account_id for c in children} | {u.account_id for u in updates}
    busy |= set(expected.linked.values()) | {plain[0].account_id}
    late = rng.sample([a for a in plain if a.account_id not in busy], max(3, accounts // 30))
    late_ids = {a.account_id for a in late}

    crm: list[Event | Outgoing] = [
        *(c for c in children if c.account_id in early_children),
        *(a for a in plain if a.account_id not in late_ids),
        *(c for c in children if c.account_id not in early_children),
        *duplicates,
        orphan,
        bad_account,
        *updates,
        Outgoing(AccountUpserted.TOPIC, unreadable_key.encode(), UNREADABLE),
        *opportunities,
        opportunities[0],  # delivered twice
        opportunities[1].model_copy(update={"event_id": uuid.uuid4()}),  # re-sent, new event id
        *(o for o, _ in invalid_opps),
        orphan_opp,
        Outgoing(OpportunityClosed.TOPIC, f"OPP-{tag}-UNREADABLE".encode(), UNREADABLE),
    ]
    return Scenario(
        seed=seed,
        tag=tag,
        as_of=as_of,
        rng=rng,
        crm=crm,
        late_accounts=late,
        opportunities=opportunities,
        orphan_parent=orphan_parent,
        expected=expected,
    )


def _line(
    rng: random.Random, n: int, product: tuple[str, str, Decimal, BillingPeriod, tuple[int, ...]],
    currency: str, start: date,
) -> OpportunityLine:  # fmt: skip
    sku, description, usd, period, terms = product
    quantity = Decimal(1) if period is BillingPeriod.ONE_TIME else Decimal(rng.randint(1, 40))
    return OpportunityLine(
        line_id=str(n),
        sku=sku,
        description=description,
        quantity=quantity,
        unit_price=money(usd * FX[currency], currency),
        billing_period=period,
        start_date=start,
        term_months=rng.choice(terms),
    )


def contract_value(lines: list[OpportunityLine], currency: str) -> Decimal:
    values = (
        line_value(x.quantity, x.unit_price, x.billing_period, x.term_months, currency)
        for x in lines
    )
    return sum((v or Decimal(0) for v in values), Decimal(0))


def _opportunity(
    rng: random.Random, tag: str, k: int, buyer: AccountUpserted, as_of: date
) -> OpportunityClosed:
    """A deal signed in the last quarter; lines may start later than the deal (phased)."""
    start = as_of - timedelta(days=rng.randrange(0, 100))
    chosen = rng.sample(PRODUCTS, rng.randint(1, 3))
    lines = []
    for n, product in enumerate(chosen, 1):
        # A ramp: add-ons often start a month after the platform.
        phase_start = start if n == 1 or rng.random() < 0.5 else add_months(start, 1)
        lines.append(_line(rng, n, product, buyer.currency, min(phase_start, as_of)))
    opportunity_id = f"OPP-{tag}-{k:04d}"
    return OpportunityClosed.model_validate(
        {
            **_envelope("crm", f"o2c-{opportunity_id}"),
            "opportunity_id": opportunity_id,
            "account_id": buyer.account_id,
            "closed_at": datetime.combine(start - timedelta(days=3), datetime.min.time(), UTC),
            "currency": buyer.currency,
            "legal_entity": buyer.legal_entity,
            "lines": lines,
            "total_contract_value": contract_value(lines, buyer.currency),
        }
    )


def _invalid_opportunities(
    rng: random.Random, tag: str, buyer: AccountUpserted, as_of: date
) -> list[tuple[OpportunityClosed, str]]:
    base = _opportunity(rng, tag, 9000, buyer, as_of)
    other = "EUR" if buyer.currency != "EUR" else "USD"
    first = base.lines[0]

    def variant(suffix: str, **changes: object) -> OpportunityClosed:
        return base.model_copy(
            update={"event_id": uuid.uuid4(), "opportunity_id": f"OPP-{tag}-{suffix}", **changes}
        )

    return [
        (variant("BAD-CURRENCY", currency=other), "InvalidEvent"),
        (variant("BAD-QUANTITY", lines=[first.model_copy(update={"quantity": Decimal(0)})]),
         "InvalidEvent"),
        (variant("BAD-TERM", lines=[first.model_copy(update={"term_months": 0})]), "InvalidEvent"),
        (variant("BAD-TOTAL", total_contract_value=base.total_contract_value + 100),
         "InvalidEvent"),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Playing it


@dataclass
class Outcome:
    scenario: Scenario
    started_ms: int
    invoices: list[InvoiceIssued] = field(default_factory=list)
    credit_memos: list[CreditMemoIssued] = field(default_factory=list)
    payments: list[PaymentSettled] = field(default_factory=list)  # distinct, published
    prepaid: list[tuple[str, date]] = field(default_factory=list)  # future invoices paid for
    elapsed: float = 0.0
    complete: bool = False
    waiting_for: str = ""


def _publish(settings: Settings, serde: Serde, items: list[Event | Outgoing]) -> None:
    producer = clients.producer(settings, "finsync-simulate")
    messages = [i if isinstance(i, Outgoing) else serde.outgoing(i) for i in items]
    clients.send(producer, messages, timeout=60)


def _count(settings: Settings, sql: LiteralString, *params: object) -> int:
    with db.connect(settings) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def dead_letters(
    settings: Settings, s: Scenario, since_ms: int, services: Sequence[str] = SERVICES
) -> list[DeadLetter]:
    """The run's dead letters on the services' topics since `since_ms`, oldest first."""
    return [
        DeadLetter(service, record)
        for service in services
        for record in clients.read(settings, dlq_topic(service), since_ms)
        if s.owns(record.key_text)
    ]


def dead_keys(settings: Settings, s: Scenario, service: str, since_ms: int) -> dict[str, str]:
    """The run's dead letters of one service: key -> error class."""
    return {
        x.record.key_text or "": x.error_class
        for x in dead_letters(settings, s, since_ms, [service])
    }


def _arrived(
    settings: Settings, sql: LiteralString, ids: list[str], what: str
) -> Callable[[], tuple[bool, str]]:
    """A check for `_wait`: have all `ids` arrived, counted by `sql` (with `= ANY(%s)`)?"""

    def check() -> tuple[bool, str]:
        n = _count(settings, sql, ids)
        return n >= len(ids), f"{n}/{len(ids)} {what}"

    return check


def _wait(
    what: str,
    done: Callable[[], tuple[bool, str]],
    say: Callable[[str], None],
    timeout: float,
    outcome: Outcome,
) -> bool:
    """Wait until `done`; give up after `timeout`, or when nothing moved for STALL seconds."""
    started = moved = time.monotonic()
    last = ""
    while True:
        ok, progress = done()
        if progress != last:
            say(f"{what}: {progress}")
            last, moved = progress, time.monotonic()
        if ok:
            return True
        now = time.monotonic()
        if now - started > timeout or now - moved > STALL:
            outcome.waiting_for = f"{what} ({progress})"
            return False
        time.sleep(1.0)


def _dead_done(
    settings: Settings, s: Scenario, outcome: Outcome, services: list[str]
) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        got = {sv: dead_keys(settings, s, sv, outcome.started_ms) for sv in services}
        want = {sv: s.expected.dead.get(sv, {}) for sv in services}
        seen = sum(len(set(got[sv]) & set(want[sv])) for sv in services)
        total = sum(len(want[sv]) for sv in services)
        return seen == total, f"{seen}/{total} expected dead letters"

    return check


def play(
    settings: Settings, s: Scenario, say: Callable[[str], None], timeout: float = 300
) -> Outcome:
    """Publish the scenario to the running services, stage by stage, waiting for each."""
    serde = Serde(registry_client(settings))
    outcome = Outcome(s, started_ms=int(time.time() * 1000) - 1000)
    started = time.monotonic()
    try:
        _play(settings, s, serde, outcome, say, timeout)
    finally:
        outcome.elapsed = time.monotonic() - started
    return outcome


def _play(
    settings: Settings,
    s: Scenario,
    serde: Serde,
    outcome: Outcome,
    say: Callable[[str], None],
    timeout: float,
) -> None:
    accounts = len([e for e in s.crm if isinstance(e, AccountUpserted)])
    say(
        f"CRM publishes {accounts + len(s.late_accounts)} account events and "
        f"{len(s.opportunities)} closed-won opportunities (run tag {s.tag})"
    )
    _publish(settings, serde, s.crm)
    time.sleep(2)  # the late accounts' opportunities go round the retry topic meanwhile
    _publish(settings, serde, list(s.late_accounts))

    synced = _arrived(
        settings,
        "SELECT count(*) FROM finsync.account_xref WHERE account_id = ANY(%s)",
        sorted(s.expected.versions),
        "accounts synced",
    )
    if not _wait("CRM accounts", synced, say, timeout, outcome):
        return
    activated = _arrived(
        settings,
        "SELECT count(*) FROM billing.subscriptions WHERE opportunity_id = ANY(%s)",
        sorted(s.expected.activated),
        "subscriptions activated",
    )
    if not _wait("opportunities", activated, say, timeout, outcome):
        return
    crm_dead = _dead_done(settings, s, outcome, ["account-sync", "subscription-activator"])
    if not _wait("CRM dead letters", crm_dead, say, timeout, outcome):
        return

    rates = _tax_rates(settings)
    early = _early_payments(s, rates)
    say(f"the gateway settles {len(early)} card payments before their invoices reach the ERP")
    _publish(settings, serde, list(early))
    result = billing_jobs.run_invoices(settings, s.as_of)
    outcome.invoices = [i for i in result.invoices if s.owns(i.invoice_id)]
    say(f"billing's invoice run as of {s.as_of} issued {len(outcome.invoices)} invoices")
    posted = _arrived(
        settings,
        "SELECT count(*) FROM erp.ar_open_items WHERE invoice_id = ANY(%s)",
        [i.invoice_id for i in outcome.invoices],
        "invoices posted",
    )
    if not _wait("invoice postings", posted, say, timeout, outcome):
        return
    _publish(settings, serde, _malformed_invoices(s, outcome.invoices[0]))
    billing_dead = _dead_done(settings, s, outcome, ["invoice-poster"])
    if not _wait("billing dead letters", billing_dead, say, timeout, outcome):
        return

    plan = PaymentPlan.make(s, outcome.invoices, {p.invoice_id for p in early}, rates)
    for invoice, line in plan.credits:
        outcome.credit_memos.append(
            billing_jobs.issue_credit_memo(
                settings, invoice.invoice_id, line, "service credit", s.as_of
            )
        )
    credited = _arrived(
        settings,
        "SELECT count(*) FROM erp.ar_credits WHERE credit_memo_id = ANY(%s)",
        [m.credit_memo_id for m in outcome.credit_memos],
        "credit memos posted",
    )
    say(f"billing issues {len(outcome.credit_memos)} credit memos")
    if not _wait("credit memo postings", credited, say, timeout, outcome):
        return

    payments = plan.payments(s, outcome.credit_memos)
    outcome.prepaid = plan.prepaid
    for p, error in plan.invalid:
        s.expected.dead_letter("payment-settler", p.payment_id, error)
    s.expected.dead_letter("payment-settler", f"PAY-{s.tag}-UNREADABLE", "UndecodableEvent")
    distinct = {p.payment_id: p for p in [*early, *payments]}
    s.expected.payments = set(distinct) - set(s.expected.dead.get("payment-settler", {}))
    outcome.payments = list(distinct.values())
    say(
        f"the gateway settles {len(payments)} more payment events (duplicates and malformed "
        "ones among them)"
    )
    unreadable = Outgoing(PaymentSettled.TOPIC, f"PAY-{s.tag}-UNREADABLE".encode(), UNREADABLE)
    _publish(settings, serde, [*payments, unreadable])
    applied = _arrived(
        settings,
        "SELECT count(*) FROM erp.payments WHERE payment_id = ANY(%s)",
        sorted(s.expected.payments),
        "payments applied",
    )
    if not _wait("cash application", applied, say, timeout, outcome):
        return
    pay_dead = _dead_done(settings, s, outcome, ["payment-settler"])
    if not _wait("payment dead letters", pay_dead, say, timeout, outcome):
        return
    outcome.complete = True


def _malformed_invoices(s: Scenario, template: InvoiceIssued) -> list[Event | Outgoing]:
    """A billing release with a bug: an invoice whose lines do not add up, and JSON bytes."""
    wrong = template.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "invoice_id": f"INV-{s.tag}-MALFORMED",
            "total": template.total + 10,
        }
    )
    unreadable = f"INV-{s.tag}-UNREADABLE"
    s.expected.dead_letter("invoice-poster", wrong.invoice_id, "InvalidEvent")
    s.expected.dead_letter("invoice-poster", unreadable, "UndecodableEvent")
    return [wrong, Outgoing(InvoiceIssued.TOPIC, unreadable.encode(), UNREADABLE)]


def _tax_rates(settings: Settings) -> dict[str, Decimal]:
    """Billing's tax rate per legal entity, to predict what its invoices will total."""
    with db.connect(settings) as conn:
        rows = conn.execute("SELECT legal_entity, tax_rate FROM billing.legal_entities").fetchall()
    return {r[0]: r[1] for r in rows}


def predicted_invoices(
    o: OpportunityClosed, as_of: date, tax_rate: Decimal
) -> list[tuple[str, date, Decimal]]:
    """(invoice id, billing date, total) of the invoices billing will issue for the opportunity
    by `as_of`."""
    phases = [
        Phase(x.line_id, x.sku, x.description, x.quantity, x.unit_price, x.billing_period,
              x.start_date, phase_end(x.start_date, x.billing_period, x.term_months))
        for x in o.lines
    ]  # fmt: skip
    return [
        (
            billing_jobs.invoice_id(o.opportunity_id, d.billing_date),
            d.billing_date,
            d.subtotal + d.tax_total,
        )
        for d in due_invoices(enumerate(phases, 1), o.currency, tax_rate, as_of)
    ]


def next_invoice(o: OpportunityClosed, as_of: date, tax_rate: Decimal) -> tuple[str, date] | None:
    """The first invoice billing will issue for the opportunity after `as_of`, if any."""
    later = predicted_invoices(o, as_of + timedelta(days=400), tax_rate)
    return next(((i, d) for i, d, _ in later if d > as_of), None)


def _payment(
    s: Scenario, n: int, account_id: str, invoice_id: str | None, amount: Decimal, currency: str,
    method: str = "CARD", correlation: str | None = None,
) -> PaymentSettled:  # fmt: skip
    rng = s.rng
    fee = money(amount * Decimal("0.029"), currency) if method == "CARD" else Decimal(0)
    payment_id = f"PAY-{s.tag}-{n:05d}"
    return PaymentSettled.model_validate(
        {
            **_envelope("payments", correlation or f"pay-{payment_id}"),
            "payment_id": payment_id,
            "account_id": account_id,
            "invoice_id": invoice_id,
            "amount": amount,
            "fee_amount": min(fee, amount),
            "currency": currency,
            "settled_at": datetime.now(UTC),
            "method": method,
            "gateway_reference": f"gw_{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}",
        }
    )


def _early_payments(s: Scenario, rates: dict[str, Decimal]) -> list[PaymentSettled]:
    """Card payments captured at checkout for each deal's first invoice: they settle before
    billing's invoice is posted, and wait for it."""
    out = []
    for k, o in enumerate(s.rng.sample(s.opportunities, min(10, len(s.opportunities))), 1):
        invoices = predicted_invoices(o, s.as_of, rates[o.legal_entity])
        if invoices:
            invoice_id, _, total = invoices[0]
            out.append(_payment(s, k, o.account_id, invoice_id, total, o.currency,
                                correlation=o.correlation_id))  # fmt: skip
    return out


@dataclass
class PaymentPlan:
    """Which invoice gets which kind of payment."""

    by_kind: dict[str, list[InvoiceIssued]]
    credits: list[tuple[InvoiceIssued, str]]  # (invoice, line credited)
    tax_rates: dict[str, Decimal]
    invalid: list[tuple[PaymentSettled, str]] = field(default_factory=list)
    prepaid: list[tuple[str, date]] = field(default_factory=list)  # future invoice, its date

    @classmethod
    def make(
        cls,
        s: Scenario,
        invoices: list[InvoiceIssued],
        paid_early: set[str | None],
        tax_rates: dict[str, Decimal],
    ) -> PaymentPlan:
        rng = s.rng
        pool = [i for i in invoices if i.invoice_id not in paid_early]
        rng.shuffle(pool)
        kinds: dict[str, list[InvoiceIssued]] = {}
        shares = [("partial", 0.12), ("tolerance", 0.08), ("over", 0.08), ("unpaid", 0.12),
                  ("credited", 0.03), ("two-part", 0.03)]  # fmt: skip
        start = 0
        for kind, share in shares:
            take = max(2, int(len(pool) * share))
            chosen = pool[start : start + take]
            if kind == "tolerance":  # a yen has no cents to write off
                chosen = [i for i in chosen if i.currency != "JPY"]
            kinds[kind] = chosen
            start += take
        kinds["full"] = pool[start:]
        # Credit one line of invoices with more than one, and collect the rest.
        kinds["credited"] = [i for i in kinds["credited"] if len(i.lines) > 1]
        credits = [(i, i.lines[0].line_id) for i in kinds["credited"]]
        return cls(kinds, credits, tax_rates)

    def payments(self, s: Scenario, memos: list[CreditMemoIssued]) -> list[PaymentSettled]:
        rng, out, n = s.rng, [], 100
        credited = {m.invoice_id: m.total for m in memos}

        def pay(invoice: InvoiceIssued, amount: Decimal, method: str = "CARD") -> PaymentSettled:
            nonlocal n
            n += 1
            p = _payment(s, n, invoice.account_id, invoice.invoice_id, amount, invoice.currency,
                         method, invoice.correlation_id)  # fmt: skip
            out.append(p)
            return p

        for i in self.by_kind["full"]:
            pay(i, i.total, rng.choice(["CARD", "WIRE", "SEPA_DEBIT"]))
        for i in self.by_kind["partial"]:
            pay(i, money(i.total * Decimal(rng.randint(30, 80)) / 100, i.currency), "WIRE")
        for i in self.by_kind["tolerance"]:
            short = Decimal(rng.randint(1, 5)) / 100
            pay(i, i.total - short, "WIRE")
        for i in self.by_kind["over"]:
            pay(i, i.total + money(Decimal(rng.randint(5, 200)) * FX[i.currency], i.currency),
                "WIRE")  # fmt: skip
        for i in self.by_kind["credited"]:
            pay(i, i.total - credited.get(i.invoice_id, Decimal(0)), "WIRE")
        for i in self.by_kind["two-part"]:
            half = money(i.total / 2, i.currency)
            pay(i, half, "WIRE")
            pay(i, i.total - half, "WIRE")
        # Payments on account, with no invoice: unapplied cash on the customer.
        for i in rng.sample(self.by_kind["full"], min(6, len(self.by_kind["full"]))):
            n += 1
            out.append(_payment(s, n, i.account_id, None,
                                money(Decimal(rng.randint(50, 500)) * FX[i.currency], i.currency),
                                i.currency, "WIRE"))  # fmt: skip
        # Prepaying next period's invoice, which billing has not issued yet: it waits, then
        # ends as a dead letter until that invoice is run and the payment replayed.
        for o in rng.sample(s.opportunities, 2):
            future = next_invoice(o, s.as_of, self.tax_rates[o.legal_entity])
            if future is None:
                continue
            n += 1
            amount = money(Decimal(100) * FX[o.currency], o.currency)
            p = _payment(s, n, o.account_id, future[0], amount, o.currency, "WIRE")
            out.append(p)
            self.invalid.append((p, "DependencyNotReady"))
            self.prepaid.append(future)
        # Duplicates: the same event delivered twice, the same payment re-sent with a new id.
        repeat = rng.sample(out[: len(out) // 2], min(8, len(out) // 2))
        out += repeat[:5]
        out += [p.model_copy(update={"event_id": uuid.uuid4()}) for p in repeat[5:]]
        # Malformed: a gateway bug or three.
        sample = self.by_kind["full"][0]
        bad = [
            (pay(sample, Decimal("-10.00")), "InvalidEvent"),
            (pay(sample, Decimal(0)), "InvalidEvent"),
        ]
        wrong = "EUR" if sample.currency != "EUR" else "USD"
        n += 1
        p = _payment(s, n, sample.account_id, sample.invoice_id, Decimal(10), wrong, "WIRE")
        out.append(p)
        bad.append((p, "InvalidEvent"))
        n += 1
        p = _payment(s, n, sample.account_id, sample.invoice_id, Decimal(10), sample.currency)
        p = p.model_copy(update={"fee_amount": Decimal(11)})
        out.append(p)
        bad.append((p, "InvalidEvent"))
        self.invalid += bad
        return out
