-- The reference ERP: chart of accounts, customers, journals, AR open items.
-- Idempotency keys are unique constraints; journals cannot be stored unbalanced or changed.
CREATE SCHEMA IF NOT EXISTS erp;

CREATE TABLE erp.accounts (
    code text PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('ASSET', 'LIABILITY', 'EQUITY', 'REVENUE', 'EXPENSE'))
);
INSERT INTO erp.accounts (code, name, kind) VALUES
    ('1000', 'Cash', 'ASSET'),
    ('1200', 'Accounts receivable', 'ASSET'),
    ('2100', 'Unapplied cash', 'LIABILITY'),
    ('2200', 'Tax payable', 'LIABILITY'),
    ('2300', 'Deferred revenue', 'LIABILITY'),
    ('4000', 'Revenue', 'REVENUE'),
    ('6100', 'Payment processing fees', 'EXPENSE'),
    ('6900', 'Write-offs', 'EXPENSE');

CREATE TABLE erp.customers (
    customer_id text PRIMARY KEY,
    account_id  text NOT NULL UNIQUE,  -- CRM account id
    name        text NOT NULL,
    country     text NOT NULL,
    currency    text NOT NULL,
    tax_id      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE erp.journal_entries (
    entry_id        text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    legal_entity    text NOT NULL,
    currency        text NOT NULL,
    description     text NOT NULL,
    posted_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE erp.journal_lines (
    entry_id     text          NOT NULL REFERENCES erp.journal_entries,
    line_no      integer       NOT NULL,
    account_code text          NOT NULL REFERENCES erp.accounts,
    debit        numeric(18,4) NOT NULL CHECK (debit >= 0),
    credit       numeric(18,4) NOT NULL CHECK (credit >= 0),
    CHECK ((debit = 0) <> (credit = 0)),
    PRIMARY KEY (entry_id, line_no)
);

-- Checked once per statement (lines of an entry are inserted in one statement), each entry
-- looked up by its primary key so the check stays cheap as the ledger grows.
CREATE FUNCTION erp.check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry text;
    difference numeric;
BEGIN
    FOR entry IN SELECT DISTINCT entry_id FROM new_lines LOOP
        SELECT sum(debit) - sum(credit) INTO difference
          FROM erp.journal_lines WHERE entry_id = entry;
        IF difference <> 0 THEN
            RAISE EXCEPTION 'journal entry % is not balanced (debits - credits = %)', entry, difference
                USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER journal_balanced AFTER INSERT ON erp.journal_lines
    REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION erp.check_balanced();

CREATE FUNCTION erp.forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'posted journals are append-only; post a reversing entry instead';
END $$;
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON erp.journal_lines
    FOR EACH ROW EXECUTE FUNCTION erp.forbid_change();
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON erp.journal_entries
    FOR EACH ROW EXECUTE FUNCTION erp.forbid_change();

CREATE TABLE erp.ar_open_items (
    document_id      text          PRIMARY KEY,
    invoice_id       text          NOT NULL UNIQUE,
    invoice_number   text          NOT NULL,
    account_id       text          NOT NULL,
    legal_entity     text          NOT NULL,
    currency         text          NOT NULL,
    issued_on        date          NOT NULL,
    due_on           date          NOT NULL,
    original_amount  numeric(18,4) NOT NULL CHECK (original_amount > 0),
    open_amount      numeric(18,4) NOT NULL CHECK (open_amount >= 0),
    journal_entry_id text          NOT NULL REFERENCES erp.journal_entries
);
CREATE INDEX ar_open_items_account ON erp.ar_open_items (account_id);

CREATE TABLE erp.ar_credits (
    credit_memo_id   text          PRIMARY KEY,
    invoice_id       text          NOT NULL REFERENCES erp.ar_open_items (invoice_id),
    amount           numeric(18,4) NOT NULL CHECK (amount > 0),
    journal_entry_id text          NOT NULL REFERENCES erp.journal_entries
);
