-- The ERP's own record of the legal entities it keeps books for, and how each rounds tax:
-- LINE per line, INVOICE once per tax rate per invoice. An entity not listed rounds per LINE.
CREATE TABLE erp.legal_entities (
    legal_entity text PRIMARY KEY,
    name         text NOT NULL,
    tax_rounding text NOT NULL DEFAULT 'LINE' CHECK (tax_rounding IN ('LINE', 'INVOICE'))
);
INSERT INTO erp.legal_entities (legal_entity, name, tax_rounding) VALUES
    ('ACME-US', 'Acme Software Inc.', 'LINE'),
    ('ACME-DE', 'Acme Software GmbH', 'LINE'),
    ('ACME-UK', 'Acme Software Ltd', 'LINE'),
    ('ACME-JP', 'Acme Software KK', 'INVOICE');
