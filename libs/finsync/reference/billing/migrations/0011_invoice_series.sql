-- Invoice numbers: one series per legal entity and year, `{entity}-{year}-{n:06d}` with n from
-- 1. The invoice run takes the next number by updating the series row in the transaction that
-- issues the invoice: the row lock orders two runs, and a rollback gives the number back, so a
-- series has no gaps. (The sequence it replaces was shared by all entities and never rolled
-- back: every entity's series had gaps.)
CREATE TABLE billing.invoice_series (
    legal_entity text    NOT NULL,
    year         integer NOT NULL,
    last_number  bigint  NOT NULL CHECK (last_number > 0),
    PRIMARY KEY (legal_entity, year)
);

-- Seeded with the highest number each entity issued each year, so no number is issued twice.
INSERT INTO billing.invoice_series (legal_entity, year, last_number)
SELECT i.legal_entity, m[2]::integer, max(m[3]::bigint)
  FROM billing.invoices i
 CROSS JOIN LATERAL regexp_match(i.invoice_number, '^(.*)-([0-9]{4})-([0-9]{1,18})$') AS m
 WHERE m[1] = i.legal_entity
 GROUP BY i.legal_entity, m[2];

DROP SEQUENCE billing.invoice_number;

-- account-sync asks billing what a CRM account has bought before its currency or legal entity
-- may change.
CREATE INDEX subscriptions_account ON billing.subscriptions (account_id);
