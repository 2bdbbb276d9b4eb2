-- Tax rounding per legal entity: LINE rounds each line's tax; INVOICE rounds once per tax rate
-- per invoice, as Japan's qualified invoices require. Lines keep the rate they were taxed at,
-- so their credit memos can carry it (NULL on lines billed before).
ALTER TABLE billing.legal_entities
    ADD COLUMN tax_rounding text NOT NULL DEFAULT 'LINE'
        CHECK (tax_rounding IN ('LINE', 'INVOICE'));
UPDATE billing.legal_entities SET tax_rounding = 'INVOICE' WHERE legal_entity = 'ACME-JP';

ALTER TABLE billing.invoice_lines ADD COLUMN tax_rate numeric(6,4) CHECK (tax_rate >= 0);
