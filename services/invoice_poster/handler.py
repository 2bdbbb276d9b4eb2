"""invoice-poster: invoices and credit memos from billing become AR items and journals."""

from __future__ import annotations

from finsync.contract.events import (
    CreditMemoIssued,
    DocumentType,
    InvoiceIssued,
    InvoicePosted,
    JournalLine,
)
from finsync.errors import DependencyNotReady
from finsync.ports.erp import Erp, OpenItem, Posted

from .posting import credit_memo_journal, invoice_journal

SOURCE = "finsync.invoice-poster"


def post_invoice(invoice: InvoiceIssued, erp: Erp) -> list[InvoicePosted]:
    journal = invoice_journal(invoice)
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
    posted = erp.post_invoice(item, journal)
    return [_posted(invoice, DocumentType.INVOICE, invoice.invoice_id, posted, journal.lines)]


def post_credit_memo(memo: CreditMemoIssued, erp: Erp) -> list[InvoicePosted]:
    invoice = erp.open_item(memo.invoice_id)
    if invoice is None:
        raise DependencyNotReady(
            f"credit memo {memo.credit_memo_id} refers to invoice {memo.invoice_id}, "
            "which is not posted (yet)"
        )
    journal = credit_memo_journal(memo, invoice.currency, invoice.legal_entity)
    posted = erp.post_credit_memo(memo.credit_memo_id, memo.invoice_id, memo.total, journal)
    return [_posted(memo, DocumentType.CREDIT_MEMO, memo.credit_memo_id, posted, journal.lines)]


def _posted(
    doc: InvoiceIssued | CreditMemoIssued,
    kind: DocumentType,
    document_id: str,
    posted: Posted,
    lines: tuple[JournalLine, ...],
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
        journal_lines=list(lines),
        posted_at=posted.posted_at,
    )
