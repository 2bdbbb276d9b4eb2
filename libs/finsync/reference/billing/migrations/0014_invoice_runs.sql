-- Every invoice run: the date it billed through, when it read the subscriptions and when it
-- finished. The reconciliation expects each period due by a finished run's date to be billed
-- for every subscription that run saw.
CREATE TABLE billing.invoice_runs (
    run_id      bigserial   PRIMARY KEY,
    as_of       date        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz
);
