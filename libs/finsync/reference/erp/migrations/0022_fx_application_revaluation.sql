-- Cross-currency application and revaluation of open AR.

-- A payment in another currency than its invoices, applied at the day's cross rate (where the
-- entity allows it: legal_entities.cross_rate_application), is booked in the invoices'
-- currency: `currency`, `amount` and `fee_amount` are the converted figures, and these columns
-- what the payer sent and the rate (one unit of original_currency in `currency`). NULL: the
-- payment was in its invoices' currency.
ALTER TABLE erp.payments
    ADD COLUMN original_currency   text,
    ADD COLUMN original_amount     numeric(18,4),
    ADD COLUMN original_fee_amount numeric(18,4),
    ADD COLUMN cross_rate          numeric(24,10),
    ADD CONSTRAINT payments_cross_currency CHECK (
        (original_currency IS NULL) = (original_amount IS NULL)
        AND (original_currency IS NULL) = (original_fee_amount IS NULL)
        AND (original_currency IS NULL) = (cross_rate IS NULL)
        AND (original_currency IS NULL OR (original_currency <> currency AND cross_rate > 0)));

-- `finsync erp revalue`: open foreign AR at the period-end rate. 1200 stays what its invoices
-- were booked at (gl-ar ties it per invoice); the revaluation sits on 1210 against 7300, and is
-- reversed on the first day of the next period.
INSERT INTO erp.accounts (code, name, kind) VALUES
    ('1210', 'AR revaluation', 'ASSET'),
    ('7300', 'Unrealised FX gain/loss', 'REVENUE');
