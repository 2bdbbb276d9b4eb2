-- replaces: 0003_order_to_cash.sql
-- The reference ERP: customer details from the CRM, and cash application.

-- ERP customers: `account_id` is the CRM account that created the customer (its idempotency
-- key); other CRM accounts may point at the same customer through the cross-reference.
ALTER TABLE erp.customers
    ADD COLUMN legal_entity       text,
    ADD COLUMN email_domain       text,
    ADD COLUMN parent_customer_id text REFERENCES erp.customers,
    ADD COLUMN updated_at         timestamptz NOT NULL DEFAULT now();

-- Cash application on AR items. The status follows from the amounts, so it cannot disagree.
ALTER TABLE erp.ar_open_items
    ADD COLUMN paid_amount        numeric(18,4) NOT NULL DEFAULT 0 CHECK (paid_amount >= 0),
    ADD COLUMN written_off_amount numeric(18,4) NOT NULL DEFAULT 0 CHECK (written_off_amount >= 0),
    ADD COLUMN status text GENERATED ALWAYS AS (
        CASE
            WHEN open_amount = 0 AND paid_amount = 0 AND written_off_amount = 0 THEN 'CREDITED'
            WHEN open_amount = 0 THEN 'PAID'
            WHEN paid_amount > 0 THEN 'PARTIALLY_PAID'
            ELSE 'OPEN'
        END) STORED;

-- One row per settled payment (its idempotency key): what was applied to which invoice, what
-- was written off, and what stays on the customer as unapplied cash.
CREATE TABLE erp.payments (
    payment_id         text          PRIMARY KEY,
    account_id         text          NOT NULL,  -- CRM account of the payer
    customer_id        text          NOT NULL REFERENCES erp.customers,
    invoice_id         text          REFERENCES erp.ar_open_items (invoice_id),
    legal_entity       text          NOT NULL,
    currency           text          NOT NULL,
    amount             numeric(18,4) NOT NULL CHECK (amount > 0),
    fee_amount         numeric(18,4) NOT NULL CHECK (fee_amount >= 0),
    applied_amount     numeric(18,4) NOT NULL CHECK (applied_amount >= 0),
    written_off_amount numeric(18,4) NOT NULL CHECK (written_off_amount >= 0),
    unapplied_amount   numeric(18,4) NOT NULL CHECK (unapplied_amount >= 0),
    status             text          NOT NULL CHECK (status IN ('PAID', 'PARTIALLY_PAID', 'UNAPPLIED')),
    journal_entry_id   text          NOT NULL REFERENCES erp.journal_entries,
    settled_at         timestamptz   NOT NULL,
    method             text          NOT NULL,
    gateway_reference  text          NOT NULL,
    CHECK (applied_amount + unapplied_amount = amount)
);
CREATE INDEX payments_customer ON erp.payments (customer_id);
