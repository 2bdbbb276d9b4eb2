"""invoice-poster: invoices and credit memos from billing become AR items and journals."""

from __future__ import annotations

from decimal import Decimal

from finsync.contract.events import (
    CreditMemoIssued,
    DocumentType,
    InvoiceIssued,
    InvoicePosted,
    PaymentApplied,
)
from finsync.domain.accounting import Journal
from finsync.domain.customer_credit import (
    credit_application_journal,
    credit_to_apply,
    split_credit_memo,
)
from finsync.domain.tax import check_tax
from finsync.errors import DependencyNotReady
from finsync.ports.crossref import CrossReference
from finsync.ports.erp import CreditHolder, Erp, OpenItem, Posted

from .held_cash import DEFAULT_POLICY, CashPolicy, apply_earmarked, apply_unapplied
from .posting import AccountsOf, LineAccounts, credit_memo_posting, invoice_posting

SOURCE = "finsync.invoice-poster"


def post_invoice(
    invoice: InvoiceIssued,
    erp: Erp,
    accounts: CrossReference | None = None,
    policy: CashPolicy = DEFAULT_POLICY,
) -> list[InvoicePosted | PaymentApplied]:
    """`accounts`: the cross-reference that says whose hierarchy a prepayment's payer is in
    (None: only the invoice's own account's payments may pay it)."""
    journal, lines = invoice_posting(invoice, _mapped(invoice.legal_entity, erp))
    _check_tax(invoice, f"invoice {invoice.invoice_id}", invoice.legal_entity, erp, True)
    item = OpenItem(
        invoice_id=invoice.invoice_id,
        invoice_number=invoice.invoice_number,
        account_id=invoice.account_id,
        legal_entity=invoice.legal_entity,
        currency=invoice.currency,
        issued_on=invoice.issued_on,
        due_on=invoice.due_on,
        original_amount=invoice.total,
        open_amount=invoice.total,
    )
    posted = erp.post_invoice(item, journal, lines)
    event = _posted(invoice, DocumentType.INVOICE, invoice.invoice_id, posted, journal)
    # Cash paid in advance for this invoice first: it names it. Then, by the auto-apply
    # policy, credit the customer holds (from credit memos above an open amount), then its
    # unapplied cash on its open invoices.
    earmarked = apply_earmarked(invoice, item, erp, accounts, policy.tolerances)
    if not policy.auto_apply:
        return [event, *earmarked]
    left = invoice.total - sum(
        (a.applied_amount + (a.written_off_amount or 0) for a in earmarked), Decimal(0)
    )
    holder = CreditHolder.of(item)
    use = credit_to_apply(erp.credit_held(holder), left) if left > 0 else Decimal(0)
    if use:
        applied = erp.apply_credit(
            invoice.invoice_id,
            holder,
            use,
            credit_application_journal(
                invoice.invoice_id,
                invoice.invoice_number,
                invoice.legal_entity,
                invoice.currency,
                use,
                invoice.issued_on,
            ),
        )
        event = event.model_copy(
            update={"credit_applied": use, "credit_journal_entry_id": applied.journal_entry_id}
        )
    return [event, *earmarked, *apply_unapplied(invoice, item, erp)]


def post_credit_memo(memo: CreditMemoIssued, erp: Erp) -> list[InvoicePosted]:
    # Locked: its open amount decides what goes to the customer's credit balance.
    invoice = erp.open_item(memo.invoice_id, lock=True)
    if invoice is None:
        raise DependencyNotReady(
            f"credit memo {memo.credit_memo_id} refers to invoice {memo.invoice_id}, "
            "which is not posted (yet)"
        )
    # Locked until the batch commits: a recognition run cannot release what the memo takes.
    invoice_lines = erp.lines_to_credit(memo.invoice_id)
    split = split_credit_memo(memo.total, invoice.open_amount)
    journal, credits = credit_memo_posting(
        memo, invoice.currency, invoice.legal_entity, invoice_lines, split.credit
    )
    # A memo credits some of the invoice's lines: each line's tax is the share it was given.
    _check_tax(memo, f"credit memo {memo.credit_memo_id}", invoice.legal_entity, erp, False)
    posted = erp.post_credit_memo(
        memo.credit_memo_id, memo.invoice_id, memo.total, journal, credits, split.credit
    )
    return [_posted(memo, DocumentType.CREDIT_MEMO, memo.credit_memo_id, posted, journal)]


def _mapped(legal_entity: str, erp: Erp) -> AccountsOf:
    """A line's accounts by the ERP's GL mapping, which it reads once per unit of work."""
    return lambda line: LineAccounts(
        erp.revenue_accounts(legal_entity, line.sku), erp.tax_account(legal_entity, line.tax_rate)
    )


def _check_tax(
    doc: InvoiceIssued | CreditMemoIssued,
    what: str,
    legal_entity: str,
    erp: Erp,
    whole_document: bool,
) -> None:
    """Lines that carry their tax rate must be taxed as the ERP says the entity rounds tax."""
    if any(x.tax_rate is not None for x in doc.lines):
        rounding = erp.tax_rounding(legal_entity)
        check_tax(what, doc.lines, doc.currency, rounding, whole_document)


def _posted(
    doc: InvoiceIssued | CreditMemoIssued,
    kind: DocumentType,
    document_id: str,
    posted: Posted,
    journal: Journal,
) -> InvoicePosted:
    return doc.follow(
        InvoicePosted,
        source=SOURCE,
        invoice_id=doc.invoice_id,
        document_type=kind,
        document_id=document_id,
        erp_document_id=posted.document_id,
        journal_entry_id=posted.journal_entry_id,
        legal_entity=doc.legal_entity,
        currency=doc.currency,
        journal_lines=posted.booked(journal),  # with their functional amounts
        posted_at=posted.posted_at,
        accounting_date=posted.accounting_date,
        functional_currency=posted.functional_currency,
        due_on=doc.due_on if isinstance(doc, InvoiceIssued) else None,
    )
