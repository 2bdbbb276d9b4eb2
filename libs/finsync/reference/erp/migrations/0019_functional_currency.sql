-- Functional currency: each legal entity keeps its books in one currency; a journal in another
-- currency is converted at the day's FX rate, and every line keeps its transaction amount, its
-- functional amount and the rate between them. Journals balance in both.

INSERT INTO erp.accounts (code, name, kind) VALUES
    ('7100', 'Realised FX gain', 'REVENUE'),
    ('7200', 'Realised FX loss', 'EXPENSE');

-- cross_rate_application: the entity applies a payment in another currency than its invoice
-- at the day's cross rate (ACME-UK does); stored now, used by cash application later.
ALTER TABLE erp.legal_entities
    ADD COLUMN functional_currency    text,
    ADD COLUMN cross_rate_application boolean NOT NULL DEFAULT false;
UPDATE erp.legal_entities SET functional_currency = CASE legal_entity
    WHEN 'ACME-US' THEN 'USD' WHEN 'ACME-DE' THEN 'EUR' WHEN 'ACME-UK' THEN 'GBP'
    WHEN 'ACME-JP' THEN 'JPY' END;
UPDATE erp.legal_entities SET cross_rate_application = true WHERE legal_entity = 'ACME-UK';
UPDATE erp.legal_entities SET functional_currency = 'USD' WHERE functional_currency IS NULL;
ALTER TABLE erp.legal_entities
    ALTER COLUMN functional_currency SET NOT NULL,
    ADD CONSTRAINT legal_entities_functional_currency CHECK (functional_currency ~ '^[A-Z]{3}$');

-- One unit of from_currency is `rate` units of to_currency from rate_date on. A rate a posted
-- journal used (journal_entries.rate_from, rate_to, rate_date) never changes: the loader
-- refuses it.
CREATE TABLE erp.fx_rates (
    rate_date     date           NOT NULL,
    from_currency text           NOT NULL CHECK (from_currency ~ '^[A-Z]{3}$'),
    to_currency   text           NOT NULL CHECK (to_currency ~ '^[A-Z]{3}$'),
    rate          numeric(24,10) NOT NULL CHECK (rate > 0),
    loaded_at     timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (from_currency, to_currency, rate_date),
    CHECK (from_currency <> to_currency)
);

-- Journals before this migration are all in their entity's own currency: functional currency
-- = transaction currency, rate 1. An entity erp.legal_entities does not list books the same way.
ALTER TABLE erp.journal_entries
    ADD COLUMN functional_currency text,
    -- The erp.fx_rates row the journal's rate came from (used as is, or inverted); NULL when
    -- the journal is in its functional currency.
    ADD COLUMN rate_from text,
    ADD COLUMN rate_to   text,
    ADD COLUMN rate_date date,
    ADD CONSTRAINT journal_entries_rate_source
        CHECK ((rate_from IS NULL) = (rate_to IS NULL) AND (rate_from IS NULL) = (rate_date IS NULL));
CREATE INDEX journal_entries_rate_source ON erp.journal_entries (rate_from, rate_to, rate_date)
    WHERE rate_from IS NOT NULL;
ALTER TABLE erp.journal_lines
    ADD COLUMN functional_debit  numeric(18,4),
    ADD COLUMN functional_credit numeric(18,4),
    ADD COLUMN rate              numeric(24,10);

-- The backfill is the one change ever made to posted journals: the append-only triggers
-- refuse any UPDATE, so they are off for these statements, in this transaction only.
ALTER TABLE erp.journal_entries DISABLE TRIGGER journal_entries_append_only;
ALTER TABLE erp.journal_lines DISABLE TRIGGER journal_lines_append_only;
UPDATE erp.journal_entries SET functional_currency = currency;
UPDATE erp.journal_lines SET functional_debit = debit, functional_credit = credit, rate = 1;
ALTER TABLE erp.journal_entries ENABLE TRIGGER journal_entries_append_only;
ALTER TABLE erp.journal_lines ENABLE TRIGGER journal_lines_append_only;

ALTER TABLE erp.journal_entries ALTER COLUMN functional_currency SET NOT NULL;
ALTER TABLE erp.journal_lines
    ALTER COLUMN functional_debit SET NOT NULL,
    ALTER COLUMN functional_credit SET NOT NULL,
    ADD CONSTRAINT journal_lines_functional_debit CHECK (functional_debit >= 0),
    ADD CONSTRAINT journal_lines_functional_credit CHECK (functional_credit >= 0),
    -- A line has a transaction amount (and its rate), or only a functional one (a realised FX
    -- difference: no rate); either way one side, not both.
    ADD CONSTRAINT journal_lines_rate CHECK ((rate IS NULL) = (debit = 0 AND credit = 0)),
    ADD CONSTRAINT journal_lines_rate_positive CHECK (rate > 0),
    ADD CONSTRAINT journal_lines_functional_one_side
        CHECK ((functional_debit = 0 OR functional_credit = 0)
               AND (debit = 0 OR credit = 0)
               AND (debit <> 0 OR credit <> 0 OR functional_debit <> 0 OR functional_credit <> 0));
-- 0002's CHECK ((debit = 0) <> (credit = 0)) forbade a line with no transaction amount.
ALTER TABLE erp.journal_lines DROP CONSTRAINT journal_lines_check;

-- What writes a journal without functional amounts (not finsync's ERP adapter, which always
-- converts) gets them only when the journal is in the entity's functional currency (rate 1);
-- a journal in another currency must bring its own.
CREATE FUNCTION erp.default_functional_currency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.functional_currency IS NULL THEN
        NEW.functional_currency := COALESCE(
            (SELECT functional_currency FROM erp.legal_entities
              WHERE legal_entity = NEW.legal_entity),
            NEW.currency);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER journal_entries_functional_currency BEFORE INSERT ON erp.journal_entries
    FOR EACH ROW EXECUTE FUNCTION erp.default_functional_currency();

CREATE FUNCTION erp.default_functional_amounts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    same boolean;
BEGIN
    IF NEW.functional_debit IS NULL AND NEW.functional_credit IS NULL AND NEW.rate IS NULL THEN
        SELECT e.currency = e.functional_currency INTO same
          FROM erp.journal_entries e WHERE e.entry_id = NEW.entry_id;
        IF same THEN
            NEW.functional_debit := NEW.debit;
            NEW.functional_credit := NEW.credit;
            NEW.rate := 1;
        ELSE
            RAISE EXCEPTION 'journal entry % is not in its functional currency: each line needs '
                'its functional amounts and rate', NEW.entry_id USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER journal_lines_functional_amounts BEFORE INSERT ON erp.journal_lines
    FOR EACH ROW EXECUTE FUNCTION erp.default_functional_amounts();

-- 0002's balance check, now in functional terms as well.
CREATE OR REPLACE FUNCTION erp.check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry text;
    difference numeric;
    functional_difference numeric;
BEGIN
    FOR entry IN SELECT DISTINCT entry_id FROM new_lines LOOP
        SELECT sum(debit) - sum(credit), sum(functional_debit) - sum(functional_credit)
          INTO difference, functional_difference
          FROM erp.journal_lines WHERE entry_id = entry;
        IF difference <> 0 THEN
            RAISE EXCEPTION 'journal entry % is not balanced (debits - credits = %)', entry, difference
                USING ERRCODE = 'check_violation';
        END IF;
        IF functional_difference <> 0 THEN
            RAISE EXCEPTION 'journal entry % is not balanced in its functional currency '
                '(debits - credits = %)', entry, functional_difference
                USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
