-- Refunds and disputes. Both leave through the payment gateway, so both credit the gateway
-- clearing account (1010): a refund by its amount and fee, an opened dispute by its amount and
-- fee, and a won dispute debits it back by its amount (the fee stays with the gateway).
-- Funds a dispute withdrew are a claim on the gateway until it is decided: 1260.
INSERT INTO erp.accounts (code, name, kind) VALUES
    ('1260', 'Disputed receivables', 'ASSET');

-- One row per refund (its idempotency key), with what it was paid out of: the customer's credit
-- balance (2400, held by account_id + legal_entity + currency), unapplied cash (2100), and
-- invoices a named payment paid, reopened (1200). erp.payment_reversals says which payments
-- and invoices.
CREATE TABLE erp.refunds (
    refund_id         text          PRIMARY KEY,
    payment_id        text          REFERENCES erp.payments,  -- the payment refunded, if named
    account_id        text          NOT NULL,  -- CRM account of the payer
    legal_entity      text          NOT NULL,
    currency          text          NOT NULL,
    amount            numeric(18,4) NOT NULL CHECK (amount > 0),
    fee_amount        numeric(18,4) NOT NULL CHECK (fee_amount >= 0),
    from_credit       numeric(18,4) NOT NULL DEFAULT 0 CHECK (from_credit >= 0),
    from_unapplied    numeric(18,4) NOT NULL DEFAULT 0 CHECK (from_unapplied >= 0),
    from_invoices     numeric(18,4) NOT NULL DEFAULT 0 CHECK (from_invoices >= 0),
    journal_entry_id  text          NOT NULL REFERENCES erp.journal_entries,
    refunded_at       timestamptz   NOT NULL,
    gateway_reference text          NOT NULL,
    CHECK (from_credit + from_unapplied + from_invoices = amount)
);
CREATE INDEX refunds_payment ON erp.refunds (payment_id);
CREATE INDEX refunds_holder ON erp.refunds (account_id, legal_entity, currency)
    WHERE from_credit > 0;

-- One row per dispute, through its statuses: OPENED (funds withdrawn, opened_entry_id), then
-- WON (funds reinstated) or LOST (closed_entry_id; outcome_policy: how the loss was booked,
-- 'reopen' or 'write-off'). A lost dispute booked 'reopen' takes back what the payment
-- settled: lost_to_unapplied off its unapplied cash, lost_to_invoices by reopening invoices
-- it paid, and lost_written_off what neither had left (erp.payment_reversals says which).
CREATE TABLE erp.disputes (
    dispute_id        text          PRIMARY KEY,
    payment_id        text          NOT NULL REFERENCES erp.payments,
    account_id        text          NOT NULL,  -- CRM account of the payer
    legal_entity      text          NOT NULL,
    currency          text          NOT NULL,
    amount            numeric(18,4) NOT NULL CHECK (amount > 0),
    fee_amount        numeric(18,4) NOT NULL CHECK (fee_amount >= 0),
    status            text          NOT NULL CHECK (status IN ('OPENED', 'WON', 'LOST')),
    reason            text,
    opened_entry_id   text          NOT NULL REFERENCES erp.journal_entries,
    closed_entry_id   text          REFERENCES erp.journal_entries,
    opened_at         timestamptz   NOT NULL,
    closed_at         timestamptz,
    outcome_policy    text          CHECK (outcome_policy IN ('reopen', 'write-off')),
    lost_to_unapplied numeric(18,4) NOT NULL DEFAULT 0 CHECK (lost_to_unapplied >= 0),
    lost_to_invoices  numeric(18,4) NOT NULL DEFAULT 0 CHECK (lost_to_invoices >= 0),
    lost_written_off  numeric(18,4) NOT NULL DEFAULT 0 CHECK (lost_written_off >= 0),
    CHECK ((status = 'OPENED') = (closed_entry_id IS NULL AND closed_at IS NULL)),
    CHECK ((status = 'LOST') = (outcome_policy IS NOT NULL)),
    CHECK (status <> 'LOST' OR lost_to_unapplied + lost_to_invoices + lost_written_off = amount)
);
CREATE INDEX disputes_payment ON erp.disputes (payment_id);
CREATE INDEX disputes_open ON erp.disputes (legal_entity, currency) WHERE status = 'OPENED';

-- What a refund or a lost dispute took back from a payment's cash: unapplied cash it still
-- had (invoice_id NULL: its unapplied_open went down), or an invoice it paid, reopened (the
-- invoice's open_amount up, paid_amount down). One journal may take from several payments and
-- invoices, so the books tie each payment and invoice to these amounts, and each journal's
-- 2100 and 1200 lines to their sum.
CREATE TABLE erp.payment_reversals (
    document_kind    text          NOT NULL CHECK (document_kind IN ('REFUND', 'DISPUTE')),
    document_id      text          NOT NULL,  -- the refund_id or dispute_id
    payment_id       text          NOT NULL REFERENCES erp.payments,
    invoice_id       text          REFERENCES erp.ar_open_items (invoice_id),
    amount           numeric(18,4) NOT NULL CHECK (amount > 0),
    journal_entry_id text          NOT NULL REFERENCES erp.journal_entries,
    created_at       timestamptz   NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX payment_reversals_key
    ON erp.payment_reversals (document_kind, document_id, payment_id, COALESCE(invoice_id, ''));
CREATE INDEX payment_reversals_payment ON erp.payment_reversals (payment_id, invoice_id);
CREATE INDEX payment_reversals_invoice ON erp.payment_reversals (invoice_id)
    WHERE invoice_id IS NOT NULL;
