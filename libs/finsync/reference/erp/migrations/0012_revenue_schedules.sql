-- Revenue recognition: each invoice line's monthly revenue schedule, the recognition runs that
-- release it, and what credit memos took of each invoice line.

-- One row per invoice line with a service period and calendar month it touches, earned
-- ratably by day. A recognition run releases a month (recognized_entry_id: its journal); a
-- credit memo cancels what it takes back of a month not released yet. Unreleased deferred
-- revenue = sum(amount - cancelled_amount) of the rows whose recognized_entry_id is NULL.
CREATE TABLE erp.revenue_schedules (
    invoice_id          text          NOT NULL,
    line_id             text          NOT NULL,
    period              date          NOT NULL CHECK (extract(day FROM period) = 1),
    legal_entity        text          NOT NULL,
    currency            text          NOT NULL,
    revenue_account     text          NOT NULL,
    deferred_account    text          NOT NULL,
    amount              numeric(18,4) NOT NULL CHECK (amount >= 0),
    recognized_entry_id text          NULL REFERENCES erp.journal_entries,
    cancelled_amount    numeric(18,4) NOT NULL DEFAULT 0
                        CHECK (cancelled_amount >= 0 AND cancelled_amount <= amount),
    PRIMARY KEY (invoice_id, line_id, period)
);
-- A recognition run reads one entity, currency and month at a time.
CREATE INDEX revenue_schedules_month ON erp.revenue_schedules (legal_entity, currency, period);

-- One row per entity, currency and month a recognition run has covered, also when it had
-- nothing to release, so a period close can see the run happened. entry_id is the month's
-- (latest) recognition journal, amount what the runs released for the month in all.
CREATE TABLE erp.recognition_runs (
    legal_entity text          NOT NULL,
    currency     text          NOT NULL,
    period       date          NOT NULL CHECK (extract(day FROM period) = 1),
    entry_id     text          NULL REFERENCES erp.journal_entries,
    amount       numeric(18,4) NOT NULL CHECK (amount >= 0),
    run_at       timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (legal_entity, currency, period)
);

-- Each posted invoice line: its amount, the accounts its revenue went to, and what credit
-- memos have taken of it, so a credit memo reverses what its line posted and never more than
-- is left. (A negative line, a discount, is credited down towards zero.)
CREATE TABLE erp.ar_invoice_lines (
    invoice_id       text          NOT NULL REFERENCES erp.ar_open_items (invoice_id),
    line_id          text          NOT NULL,
    amount           numeric(18,4) NOT NULL,
    revenue_account  text          NOT NULL,
    deferred_account text          NOT NULL,
    credited_amount  numeric(18,4) NOT NULL DEFAULT 0,
    CHECK (credited_amount * amount >= 0 AND abs(credited_amount) <= abs(amount)),
    PRIMARY KEY (invoice_id, line_id)
);
