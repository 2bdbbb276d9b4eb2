-- replaces: 0003_order_to_cash.sql
-- Idempotency keys are unique constraints throughout.

-- The reference billing system: the billing platform of the embedded default.
CREATE SCHEMA IF NOT EXISTS billing;

-- The companies billing invoices for, with their sales tax / VAT rate and payment terms.
CREATE TABLE billing.legal_entities (
    legal_entity       text          PRIMARY KEY,
    name               text          NOT NULL,
    tax_rate           numeric(6,4)  NOT NULL CHECK (tax_rate >= 0),
    payment_terms_days integer       NOT NULL CHECK (payment_terms_days >= 0)
);
INSERT INTO billing.legal_entities (legal_entity, name, tax_rate, payment_terms_days) VALUES
    ('ACME-US', 'Acme Software Inc.', 0.0725, 30),
    ('ACME-DE', 'Acme Software GmbH', 0.19, 30),
    ('ACME-UK', 'Acme Software Ltd', 0.20, 30),
    ('ACME-JP', 'Acme Software KK', 0.10, 30);

CREATE SEQUENCE billing.account_number;
CREATE TABLE billing.accounts (
    billing_account_id        text        PRIMARY KEY,
    account_id                text        NOT NULL UNIQUE,  -- creating CRM account
    name                      text        NOT NULL,
    country                   text        NOT NULL,
    currency                  text        NOT NULL,
    legal_entity              text        NOT NULL REFERENCES billing.legal_entities,
    email_domain              text,
    parent_billing_account_id text        REFERENCES billing.accounts,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE billing.subscriptions (
    subscription_id    text        PRIMARY KEY,
    opportunity_id     text        NOT NULL UNIQUE,  -- created once per opportunity
    billing_account_id text        NOT NULL REFERENCES billing.accounts,
    account_id         text        NOT NULL,         -- CRM account that bought
    legal_entity       text        NOT NULL REFERENCES billing.legal_entities,
    currency           text        NOT NULL,
    correlation_id     text        NOT NULL,         -- carried onto every invoice
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE billing.subscription_phases (
    subscription_id text          NOT NULL REFERENCES billing.subscriptions,
    phase_no        integer       NOT NULL,
    line_id         text          NOT NULL,
    sku             text          NOT NULL,
    description     text          NOT NULL,
    quantity        numeric(18,4) NOT NULL CHECK (quantity > 0),
    unit_price      numeric(18,4) NOT NULL CHECK (unit_price >= 0),
    billing_period  text          NOT NULL
        CHECK (billing_period IN ('MONTHLY', 'QUARTERLY', 'ANNUAL', 'ONE_TIME')),
    start_date      date          NOT NULL,
    end_date        date          NOT NULL CHECK (end_date >= start_date),
    PRIMARY KEY (subscription_id, phase_no)
);

CREATE SEQUENCE billing.invoice_number;
-- One invoice per subscription and billing date: the invoice run cannot bill a period twice.
CREATE TABLE billing.invoices (
    invoice_id      text          PRIMARY KEY,
    invoice_number  text          NOT NULL UNIQUE,
    subscription_id text          NOT NULL REFERENCES billing.subscriptions,
    billing_date    date          NOT NULL,
    account_id      text          NOT NULL,
    legal_entity    text          NOT NULL,
    currency        text          NOT NULL,
    issued_on       date          NOT NULL,
    due_on          date          NOT NULL,
    subtotal        numeric(18,4) NOT NULL,
    tax_total       numeric(18,4) NOT NULL,
    total           numeric(18,4) NOT NULL,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (subscription_id, billing_date)
);

CREATE TABLE billing.invoice_lines (
    invoice_id     text          NOT NULL REFERENCES billing.invoices,
    line_id        text          NOT NULL,
    subscription_id text         NOT NULL,
    phase_no       integer       NOT NULL,
    period_start   date          NOT NULL,
    period_end     date,
    sku            text          NOT NULL,
    description    text          NOT NULL,
    amount         numeric(18,4) NOT NULL,
    tax_amount     numeric(18,4) NOT NULL,
    PRIMARY KEY (invoice_id, line_id),
    UNIQUE (subscription_id, phase_no, period_start),  -- each phase period billed once
    FOREIGN KEY (subscription_id, phase_no) REFERENCES billing.subscription_phases
);

CREATE TABLE billing.credit_memos (
    credit_memo_id text          PRIMARY KEY,
    invoice_id     text          NOT NULL REFERENCES billing.invoices,
    line_id        text          NOT NULL,
    issued_on      date          NOT NULL,
    reason         text          NOT NULL,
    total          numeric(18,4) NOT NULL,
    UNIQUE (invoice_id, line_id)  -- a line is credited once
);
