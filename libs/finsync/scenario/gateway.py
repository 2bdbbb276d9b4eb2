"""What the payment gateway settles: full, partial, within tolerance, over, without invoice,
early (before the invoice is posted), for next month's invoice, duplicated, and malformed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from finsync.contract.events import CreditMemoIssued, InvoiceIssued, PaymentSettled
from finsync.domain.billing_schedule import money
from finsync.domain.write_off import DEFAULT_TOLERANCES
from finsync.scenario.billing import next_invoice, predicted_invoices
from finsync.scenario.documents import FX
from finsync.scenario.plan import Scenario, envelope


def payment(
    s: Scenario, n: int, account_id: str, invoice_id: str | None, amount: Decimal, currency: str,
    method: str = "CARD", correlation: str | None = None,
) -> PaymentSettled:  # fmt: skip
    rng = s.rng
    fee = money(amount * Decimal("0.029"), currency) if method == "CARD" else Decimal(0)
    payment_id = f"PAY-{s.tag}-{n:05d}"
    return PaymentSettled.model_validate(
        {
            **envelope("payments", correlation or f"pay-{payment_id}"),
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


def early_payments(s: Scenario, rates: dict[str, Decimal]) -> list[PaymentSettled]:
    """Card payments captured at checkout for each deal's first invoice: they settle before
    billing's invoice is posted, are booked as deposits earmarked for it, and are applied when
    it posts."""
    out = []
    for k, o in enumerate(s.rng.sample(s.opportunities, min(10, len(s.opportunities))), 1):
        invoices = predicted_invoices(o, s.as_of, rates[o.legal_entity])
        if invoices:
            invoice_id, _, total = invoices[0]
            out.append(payment(s, k, o.account_id, invoice_id, total, o.currency,
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
            kinds[kind] = pool[start : start + take]
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
            p = payment(s, n, invoice.account_id, invoice.invoice_id, amount, invoice.currency,
                         method, invoice.correlation_id)  # fmt: skip
            out.append(p)
            return p

        for i in self.by_kind["full"]:
            pay(i, i.total, rng.choice(["CARD", "WIRE", "SEPA_DEBIT"]))
        for i in self.by_kind["partial"]:
            pay(i, money(i.total * Decimal(rng.randint(30, 80)) / 100, i.currency), "WIRE")
        for i in self.by_kind["tolerance"]:  # short by 1/5 .. 5/5 of the currency's tolerance
            short = DEFAULT_TOLERANCES[i.currency] * rng.randint(1, 5) / 5
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
            out.append(payment(s, n, i.account_id, None,
                                money(Decimal(rng.randint(50, 500)) * FX[i.currency], i.currency),
                                i.currency, "WIRE"))  # fmt: skip
        # Prepaying next period's invoice, which billing has not issued yet: booked at once as
        # a deposit earmarked for it, and applied when that invoice is run and posts.
        for o in rng.sample(s.opportunities, 2):
            future = next_invoice(o, s.as_of, self.tax_rates[o.legal_entity])
            if future is None:
                continue
            n += 1
            amount = money(Decimal(100) * FX[o.currency], o.currency)
            p = payment(s, n, o.account_id, future[0], amount, o.currency, "WIRE")
            out.append(p)
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
        # In another currency than its invoice: a dead letter where the entity does not apply
        # payments across currencies (ACME-UK does, at the day's cross rate).
        home = next((i for i in self.by_kind["full"] if i.legal_entity != "ACME-UK"), sample)
        wrong = "EUR" if home.currency != "EUR" else "USD"
        n += 1
        p = payment(s, n, home.account_id, home.invoice_id, Decimal(10), wrong, "WIRE")
        out.append(p)
        bad.append((p, "InvalidEvent"))
        n += 1
        p = payment(s, n, sample.account_id, sample.invoice_id, Decimal(10), sample.currency)
        p = p.model_copy(update={"fee_amount": Decimal(11)})
        out.append(p)
        bad.append((p, "InvalidEvent"))
        self.invalid += bad
        return out
