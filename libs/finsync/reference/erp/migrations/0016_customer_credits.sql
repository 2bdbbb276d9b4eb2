-- Customer credit balances: what a credit memo credits above its invoice's open amount is owed
-- to the customer (account 2400) until a later invoice of the same customer, legal entity and
-- currency uses it.
INSERT INTO erp.accounts (code, name, kind) VALUES
    ('2400', 'Customer credit balances', 'LIABILITY');

-- The ledger: one row per credit a memo created (positive) and per use on an invoice
-- (negative), each with the journal that moved 2400. A document creates or uses credit once.
CREATE TABLE erp.customer_credits (
    kind             text          NOT NULL CHECK (kind IN ('CREATED', 'USED')),
    document_id      text          NOT NULL,  -- the credit memo, or the invoice that used it
    account_id       text          NOT NULL,  -- the CRM account of the invoices, as in AR
    legal_entity     text          NOT NULL,
    currency         text          NOT NULL,
    amount           numeric(18,4) NOT NULL CHECK ((kind = 'CREATED') = (amount > 0) AND amount <> 0),
    invoice_id       text          NOT NULL REFERENCES erp.ar_open_items (invoice_id),  -- credited, or used on
    credit_memo_id   text          REFERENCES erp.ar_credits (credit_memo_id),
    journal_entry_id text          NOT NULL REFERENCES erp.journal_entries,
    created_at       timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, document_id),
    CHECK ((kind = 'CREATED') = (credit_memo_id IS NOT NULL))
);
CREATE INDEX customer_credits_holder ON erp.customer_credits (account_id, legal_entity, currency);
CREATE INDEX customer_credits_invoice ON erp.customer_credits (invoice_id);

-- What each holder has left: the row a posting locks (FOR UPDATE) before it uses credit, so
-- two postings never use the same credit. It never goes below zero.
CREATE TABLE erp.customer_credit_balances (
    account_id   text          NOT NULL,
    legal_entity text          NOT NULL,
    currency     text          NOT NULL,
    held         numeric(18,4) NOT NULL CHECK (held >= 0),
    PRIMARY KEY (account_id, legal_entity, currency)
);
-- Postings ask once per batch which holders have credit at all: this keeps that cheap.
CREATE INDEX customer_credit_balances_held ON erp.customer_credit_balances
    (account_id, legal_entity, currency) WHERE held > 0;
