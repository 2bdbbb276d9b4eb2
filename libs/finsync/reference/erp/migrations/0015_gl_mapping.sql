-- GL mapping: which revenue, deferred revenue and tax accounts an invoice line posts to
-- (`finsync erp mapping load`), and which rule each posting used.

-- REVENUE rules match a SKU, or a family `PLAT-*` (a SKU prefix); TAX rules a legal entity and
-- a tax rate. A rule postings used is never deleted (the references below refuse it), only
-- deactivated; only active rules match, and no two active rules match the same.
CREATE TABLE erp.gl_mapping_rules (
    rule_id          text        PRIMARY KEY,
    kind             text        NOT NULL CHECK (kind IN ('REVENUE', 'TAX')),
    sku              text        NULL,
    revenue_account  text        NULL REFERENCES erp.accounts,
    deferred_account text        NULL REFERENCES erp.accounts,
    legal_entity     text        NULL,
    tax_rate         numeric(5,4) NULL CHECK (tax_rate >= 0 AND tax_rate < 1),
    tax_account      text        NULL REFERENCES erp.accounts,
    active           boolean     NOT NULL DEFAULT true,
    description      text        NOT NULL DEFAULT '',
    changed_at       timestamptz NOT NULL DEFAULT now(),
    changed_by       text        NOT NULL,
    CHECK (CASE kind
        WHEN 'REVENUE' THEN sku IS NOT NULL AND revenue_account IS NOT NULL
            AND deferred_account IS NOT NULL AND legal_entity IS NULL AND tax_rate IS NULL
            AND tax_account IS NULL
        ELSE legal_entity IS NOT NULL AND tax_rate IS NOT NULL AND tax_account IS NOT NULL
            AND sku IS NULL AND revenue_account IS NULL AND deferred_account IS NULL
    END),
    -- Checked at commit, so a load may move a match from one rule to another.
    EXCLUDE USING btree (sku WITH =) WHERE (active AND kind = 'REVENUE')
        DEFERRABLE INITIALLY DEFERRED,
    EXCLUDE USING btree (legal_entity WITH =, tax_rate WITH =) WHERE (active AND kind = 'TAX')
        DEFERRABLE INITIALLY DEFERRED
);

-- The rule that chose a journal line's account (NULL: none did — a default or fixed account).
ALTER TABLE erp.journal_lines ADD COLUMN mapping_rule text NULL REFERENCES erp.gl_mapping_rules;
CREATE INDEX journal_lines_mapping_rule ON erp.journal_lines (mapping_rule)
    WHERE mapping_rule IS NOT NULL;

-- Per posted invoice line: the rule that chose its revenue accounts, and where its tax went
-- and by which rule, so a credit memo takes the tax back from there. Lines posted before
-- the mapping existed had their tax on 2200.
ALTER TABLE erp.ar_invoice_lines
    ADD COLUMN mapping_rule text NULL REFERENCES erp.gl_mapping_rules,
    ADD COLUMN tax_account  text NOT NULL DEFAULT '2200' REFERENCES erp.accounts,
    ADD COLUMN tax_rule     text NULL REFERENCES erp.gl_mapping_rules;
CREATE INDEX ar_invoice_lines_mapping_rule ON erp.ar_invoice_lines (mapping_rule)
    WHERE mapping_rule IS NOT NULL;
CREATE INDEX ar_invoice_lines_tax_rule ON erp.ar_invoice_lines (tax_rule)
    WHERE tax_rule IS NOT NULL;
