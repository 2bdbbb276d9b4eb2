"""Invoice numbers: one gap-free series per legal entity and year, following the issue dates.

Each test bills legal entities of its own, added for it, over dates years before anything
else the shared stack bills (2019-2020), so its run issues only its own invoices and each
series starts at 1. Every phase bills its last period by the run's date: no later run bills them.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal

import pytest

from finsync.contract.events import BillingPeriod
from finsync.ports.billing import BillingAccount, NewSubscription, Phase
from finsync.reference.billing import jobs as billing_jobs
from finsync.reference.billing.adapter import ReferenceBilling
from finsync.runtime import db, outbox
from finsync.settings import Settings

pytestmark = pytest.mark.integration

AS_OF = date(2020, 3, 31)


def _entities(settings: Settings, *names: str) -> list[str]:
    tag = uuid.uuid4().hex[:6].upper()
    entities = [f"NUM{tag}-{n}" for n in names]
    with db.connect(settings) as conn:
        for entity in entities:
            conn.execute(
                "INSERT INTO billing.legal_entities (legal_entity, name, tax_rate, "
                "payment_terms_days) VALUES (%s, %s, 0.19, 30)",
                (entity, f"Numbering test {entity}"),
            )
        conn.commit()
    return entities


def _monthly(sku: str, start: date, end: date, price: str = "100.00") -> Phase:
    return Phase("1", sku, sku, Decimal(1), Decimal(price), BillingPeriod.MONTHLY, start, end)


def _subscribe(settings: Settings, entity: str, opportunity: str, *phases: Phase) -> None:
    with db.connect(settings) as conn:
        billing = ReferenceBilling(conn)
        account_id = f"ACC-{opportunity}"
        billing_account = billing.create_account(
            BillingAccount(account_id, "Numbering Test GmbH", "DE", "EUR", entity, None, None)
        )
        billing.create_subscription(
            NewSubscription(
                opportunity_id=opportunity,
                account_id=account_id,
                billing_account_id=billing_account,
                legal_entity=entity,
                currency="EUR",
                correlation_id=f"o2c-{opportunity}",
                phases=tuple(
                    Phase(str(n), p.sku, p.description, p.quantity, p.unit_price,
                          p.billing_period, p.start_date, p.end_date)
                    for n, p in enumerate(phases, 1)
                ),
            )
        )  # fmt: skip
        conn.commit()


def _book(settings: Settings) -> tuple[list[str], list[str]]:
    """Two entities, A and B, and five subscriptions that catch up from Oct 2019 to Mar 2020.
    The subscription ids sort against their dates: a run that issues one subscription after
    the other numbers out of date order."""
    a, b = _entities(settings, "A", "B")
    tag = uuid.uuid4().hex[:6].upper()
    setup = Phase("2", "SETUP", "Setup", Decimal(1), Decimal("500.00"),
                  BillingPeriod.ONE_TIME, date(2019, 10, 5), date(2019, 10, 5))  # fmt: skip
    quarterly = Phase("1", "QTR", "Quarterly", Decimal(2), Decimal("300.00"),
                      BillingPeriod.QUARTERLY, date(2019, 11, 30), date(2020, 5, 29))  # fmt: skip
    book = [
        (a, _monthly("LATE", date(2019, 10, 20), date(2020, 4, 19))),
        (a, _monthly("EARLY", date(2019, 10, 5), date(2020, 2, 4)), setup),
        (a, _monthly("MID", date(2019, 12, 12), date(2020, 4, 11))),
        (b, quarterly),
        (b, _monthly("B-MONTHLY", date(2019, 11, 1), date(2020, 1, 31))),
    ]
    for n, (entity, *phases) in enumerate(book, 1):
        _subscribe(settings, entity, f"NUM-{tag}-{n}", *phases)
    return [a, b], [f"SUB-NUM-{tag}-{n}" for n in range(1, 6)]


# What the book owes by AS_OF, per entity: A bills (1) 20 Oct-20 Mar, 6 times, (2) 5 Oct-5 Jan,
# 4 times, (3) 12 Dec-12 Mar, 4 times; B bills (4) 30 Nov and 29 Feb, (5) 1 Nov-1 Jan, 3 times.
EXPECTED = {"A": 14, "B": 5}


def _invoices(settings: Settings, entities: list[str]) -> list[tuple[str, date, str, str]]:
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT legal_entity, issued_on, subscription_id, invoice_number "
            "FROM billing.invoices WHERE legal_entity = ANY(%s) "
            "ORDER BY legal_entity, issued_on, subscription_id",
            (entities,),
        ).fetchall()
    return [tuple(r) for r in rows]


def _assert_series(settings: Settings, entities: list[str], subscriptions: list[str]) -> None:
    """Each entity's numbers are 1..n per year, without gaps, in order of issue date (then
    subscription), and each period was billed once."""
    invoices = _invoices(settings, entities)
    counts = Counter(entity for entity, *_ in invoices)
    assert counts == {entities[0]: EXPECTED["A"], entities[1]: EXPECTED["B"]}, invoices
    series: dict[tuple[str, int], list[int]] = defaultdict(list)
    for entity, issued_on, _, number in invoices:  # in order of entity, date, subscription
        prefix = f"{entity}-{issued_on.year}-"
        assert number.startswith(prefix), number
        series[(entity, issued_on.year)].append(int(number.removeprefix(prefix)))
    for (entity, year), numbers in series.items():
        assert numbers == list(range(1, len(numbers) + 1)), (entity, year, invoices)
    with db.connect(settings) as conn:
        twice = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM billing.invoice_lines "
            "WHERE subscription_id = ANY(%s) GROUP BY subscription_id, phase_no, period_start "
            "HAVING count(*) > 1) t",
            (subscriptions,),
        ).fetchone()
    assert twice == (0,)


def test_each_entity_numbers_its_invoices_from_1_without_gaps_in_issue_date_order(
    settings: Settings,
) -> None:
    entities, subscriptions = _book(settings)
    billing_jobs.run_invoices(settings, AS_OF)
    _assert_series(settings, entities, subscriptions)
    a = entities[0]
    numbers = {(d, s[-1]): n for e, d, s, n in _invoices(settings, entities) if e == a}
    # 2019: 5 Oct (2, with its setup), 20 Oct (1), 5 Nov (2), 20 Nov (1), 5 Dec (2), 12 Dec (3),
    # 20 Dec (1); 2020: 5 Jan (2), 12 Jan (3), 20 Jan (1), 12 Feb (3), 20 Feb (1), 12 Mar (3),
    # 20 Mar (1).
    assert numbers[(date(2019, 10, 5), "2")] == f"{a}-2019-000001"
    assert numbers[(date(2019, 10, 20), "1")] == f"{a}-2019-000002"
    assert numbers[(date(2019, 12, 12), "3")] == f"{a}-2019-000006"
    assert numbers[(date(2020, 1, 5), "2")] == f"{a}-2020-000001"  # a new year, a new series
    assert numbers[(date(2020, 3, 20), "1")] == f"{a}-2020-000007"
    assert billing_jobs.run_invoices(settings, AS_OF).invoices == []  # nothing new the second time


def test_a_run_stopped_by_a_failing_transaction_leaves_no_gap_and_the_next_run_finishes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    entities, subscriptions = _book(settings)
    add, calls = outbox.add, 0

    def fail_the_fifth(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:  # after the invoice's number was taken, before it commits
            raise RuntimeError("the database went away mid-transaction")
        add(*args, **kwargs)

    monkeypatch.setattr(outbox, "add", fail_the_fifth)
    with pytest.raises(RuntimeError):
        billing_jobs.run_invoices(settings, AS_OF)
    monkeypatch.setattr(outbox, "add", add)
    done_before = _invoices(settings, entities)
    assert 0 < len(done_before) < sum(EXPECTED.values())

    billing_jobs.run_invoices(settings, AS_OF)
    _assert_series(settings, entities, subscriptions)


def test_two_runs_at_once_bill_each_period_once_and_share_no_number(settings: Settings) -> None:
    entities, subscriptions = _book(settings)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            billing_jobs.run_invoices(settings, AS_OF)
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    runs = [threading.Thread(target=run) for _ in range(2)]
    for r in runs:
        r.start()
    for r in runs:
        r.join(300)
    assert failures == []
    _assert_series(settings, entities, subscriptions)
