-- Cash as it arrives. Card and ACH money reaches the bank only with the gateway's payout, so
-- those payments debit the gateway clearing account (1010), not cash at bank (1000). Unapplied
-- cash is a deposit on the payer that later applications and refunds use up; every use of a
-- payment's cash on an invoice is a row of its own.
INSERT INTO erp.accounts (code, name, kind) VALUES
    ('1010', 'Gateway clearing', 'ASSET');

ALTER TABLE erp.payments
    -- The account the money was booked to: 1000 Bank, or 1010 Gateway clearing.
    ADD COLUMN cash_account   text REFERENCES erp.accounts NOT NULL DEFAULT '1000',
    -- Unapplied cash still on the payer: unapplied_amount less later applications and refunds.
    ADD COLUMN unapplied_open numeric(18,4),
    -- Set when the payment named an invoice its payer may not pay (another customer's, outside
    -- the payer's account hierarchy): its cash stays unapplied until someone reviews it.
    ADD COLUMN review_reason  text;
UPDATE erp.payments SET unapplied_open = unapplied_amount;
ALTER TABLE erp.payments
    ALTER COLUMN unapplied_open SET NOT NULL,
    ADD CONSTRAINT payments_unapplied_open CHECK (unapplied_open BETWEEN 0 AND unapplied_amount);
-- Applying held cash to a new invoice looks for the payer's payments with cash left.
CREATE INDEX payments_unapplied_open ON erp.payments (account_id, legal_entity, currency)
    WHERE unapplied_open > 0;

-- Each use of a payment's cash on an invoice: at settlement (SETTLEMENT, one row per invoice a
-- remittance names), when the invoice a prepayment named posts (EARMARKED), or by the
-- auto-apply policy on a new invoice (AUTO). One row per payment and invoice.
CREATE TABLE erp.payment_applications (
    payment_id         text          NOT NULL REFERENCES erp.payments,
    invoice_id         text          NOT NULL REFERENCES erp.ar_open_items (invoice_id),
    kind               text          NOT NULL CHECK (kind IN ('SETTLEMENT', 'EARMARKED', 'AUTO')),
    applied_amount     numeric(18,4) NOT NULL CHECK (applied_amount >= 0),
    written_off_amount numeric(18,4) NOT NULL DEFAULT 0 CHECK (written_off_amount >= 0),
    journal_entry_id   text          NOT NULL REFERENCES erp.journal_entries,
    applied_at         timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_id, invoice_id),
    CHECK (applied_amount + written_off_amount > 0)
);
CREATE INDEX payment_applications_invoice ON erp.payment_applications (invoice_id);

-- Payments made before their invoice posted: the invoice (not in AR yet, so no foreign key)
-- and how much of the payment's unapplied cash is meant for it. Applied when it posts.
CREATE TABLE erp.payment_earmarks (
    payment_id text          NOT NULL REFERENCES erp.payments,
    invoice_id text          NOT NULL,
    amount     numeric(18,4) NOT NULL CHECK (amount > 0),
    applied    boolean       NOT NULL DEFAULT false,
    PRIMARY KEY (payment_id, invoice_id)
);
CREATE INDEX payment_earmarks_waiting ON erp.payment_earmarks (invoice_id) WHERE NOT applied;

-- Payments applied before this migration: their one application, at settlement.
INSERT INTO erp.payment_applications
    (payment_id, invoice_id, kind, applied_amount, written_off_amount, journal_entry_id, applied_at)
SELECT payment_id, invoice_id, 'SETTLEMENT', applied_amount, written_off_amount,
       journal_entry_id, settled_at
  FROM erp.payments
 WHERE invoice_id IS NOT NULL AND applied_amount + written_off_amount > 0;
