-- Payouts: the gateway pays what it holds for us (1010 Gateway clearing) into the bank (1000),
-- item by item. Items that match a document in clearing clear it; what does not match
-- (an unknown amount, an adjustment, items that do not add up to the payout) goes to 1090
-- Payout differences, a suspense account, so the bank is right and clearing moves only for
-- known documents.
INSERT INTO erp.accounts (code, name, kind) VALUES
    ('1090', 'Payout differences', 'ASSET');

CREATE TABLE erp.payouts (
    payout_id         text          PRIMARY KEY,
    legal_entity      text          NOT NULL,
    currency          text          NOT NULL,
    amount            numeric(18,4) NOT NULL,  -- what reached the bank
    arrival_date      date          NOT NULL,
    status            text          NOT NULL CHECK (status IN ('MATCHED', 'MISMATCH')),
    matched_amount    numeric(18,4) NOT NULL,  -- taken out of clearing (1010): matched documents
    fee_amount        numeric(18,4) NOT NULL,  -- gateway fees withheld (6100)
    difference_amount numeric(18,4) NOT NULL,  -- credited to 1090
    journal_entry_id  text          NOT NULL REFERENCES erp.journal_entries,
    booked_at         timestamptz   NOT NULL DEFAULT now(),
    -- (A MISMATCH may still net to zero on 1090: an item unmatched, and the gap it makes.)
    CHECK (amount = matched_amount - fee_amount + difference_amount)
);
CREATE INDEX payouts_entity ON erp.payouts (legal_entity, currency);

-- The payout's items as reported, and the clearing document each one matched, if any:
-- PAYMENT (a payment booked to 1010), REFUND, DISPUTE_OPENED, DISPUTE_WON.
CREATE TABLE erp.payout_items (
    payout_id     text          NOT NULL REFERENCES erp.payouts,
    line_no       int           NOT NULL,
    type          text          NOT NULL
                  CHECK (type IN ('PAYMENT', 'REFUND', 'DISPUTE', 'FEE', 'ADJUSTMENT')),
    reference_id  text,
    gross         numeric(18,4) NOT NULL,
    fee           numeric(18,4) NOT NULL,
    net           numeric(18,4) NOT NULL,
    matched_kind  text CHECK (matched_kind IN ('PAYMENT', 'REFUND', 'DISPUTE_OPENED', 'DISPUTE_WON')),
    matched_id    text,
    PRIMARY KEY (payout_id, line_no),
    CHECK ((matched_kind IS NULL) = (matched_id IS NULL))
);
-- Each document in clearing is paid out once.
CREATE UNIQUE INDEX payout_items_matched_once ON erp.payout_items (matched_kind, matched_id)
    WHERE matched_id IS NOT NULL;

-- What did not match, as erp.payout-reconciled published it; `amount` is what it credited to
-- 1090 (the item's net, or the gap between the items and the payout).
CREATE TABLE erp.payout_differences (
    payout_id         text          NOT NULL REFERENCES erp.payouts,
    n                 int           NOT NULL,
    type              text          NOT NULL,  -- the item's type, or TOTAL for the shortfall
    reference_id      text,
    expected_net      numeric(18,4),
    reported_net      numeric(18,4) NOT NULL,
    amount            numeric(18,4) NOT NULL,
    reason            text          NOT NULL,
    PRIMARY KEY (payout_id, n)
);
