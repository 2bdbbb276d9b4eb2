-- Accounting periods per legal entity: every journal has an accounting date (the document's
-- date); a closed month takes no new journals, so a document dated in one posts on the first
-- day of the next open month and keeps its own date and the reason beside it.

ALTER TABLE erp.journal_entries
    ADD COLUMN accounting_date date,
    ADD COLUMN original_date   date,  -- the document's date, when its period was closed
    ADD COLUMN date_reason     text,  -- why it moved, e.g. "period 2026-03 of ACME-DE is closed"
    ADD CONSTRAINT journal_moved_with_reason
        CHECK ((original_date IS NULL) = (date_reason IS NULL));

-- Journals posted before periods existed are dated the day they were posted. The append-only
-- trigger refuses any UPDATE, so it is off for this one statement, in this transaction only.
ALTER TABLE erp.journal_entries DISABLE TRIGGER journal_entries_append_only;
UPDATE erp.journal_entries SET accounting_date = (posted_at AT TIME ZONE 'UTC')::date;
ALTER TABLE erp.journal_entries ENABLE TRIGGER journal_entries_append_only;
-- What writes no date posts on the day it posts (UTC), as posted_at does.
ALTER TABLE erp.journal_entries
    ALTER COLUMN accounting_date SET NOT NULL,
    ALTER COLUMN accounting_date SET DEFAULT (now() AT TIME ZONE 'UTC')::date;

-- A period with no row is open. Closing and reopening change the row; the audit keeps each.
CREATE TABLE erp.periods (
    legal_entity text        NOT NULL,
    period       date        NOT NULL CHECK (extract(day FROM period) = 1),  -- month's first day
    status       text        NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
    changed_at   timestamptz NOT NULL DEFAULT now(),
    changed_by   text        NOT NULL,
    PRIMARY KEY (legal_entity, period)
);

CREATE TABLE erp.period_changes (
    change_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    legal_entity text        NOT NULL,
    period       date        NOT NULL,
    action       text        NOT NULL CHECK (action IN ('CLOSED', 'OPENED', 'CLOSE_REFUSED')),
    changed_at   timestamptz NOT NULL DEFAULT now(),
    changed_by   text        NOT NULL,
    detail       text        -- what blocked a refused close
);
CREATE INDEX period_changes_period ON erp.period_changes (legal_entity, period);

CREATE FUNCTION erp.forbid_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the period audit is append-only';
END $$;
CREATE TRIGGER period_changes_append_only BEFORE UPDATE OR DELETE ON erp.period_changes
    FOR EACH ROW EXECUTE FUNCTION erp.forbid_audit_change();

-- The last line of defence: whatever writes a journal, none lands in a closed period. (Posting
-- resolves dates under the entity's shared advisory lock, closing holds the exclusive one, so
-- finsync's own postings never get here.)
CREATE FUNCTION erp.refuse_closed_period() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM erp.periods
                WHERE legal_entity = NEW.legal_entity
                  AND period = date_trunc('month', NEW.accounting_date)::date
                  AND status = 'CLOSED') THEN
        RAISE EXCEPTION 'journal entry % is dated % in a closed period of %',
            NEW.entry_id, NEW.accounting_date, NEW.legal_entity
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER journal_entries_open_period BEFORE INSERT ON erp.journal_entries
    FOR EACH ROW EXECUTE FUNCTION erp.refuse_closed_period();
