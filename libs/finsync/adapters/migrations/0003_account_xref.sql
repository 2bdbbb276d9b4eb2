-- replaces: 0003_order_to_cash.sql
-- finsync's own map of one CRM account to its ERP customer and billing account. Duplicates
-- (same tax id, or same normalized name and country) share the customer and billing account
-- of the account they matched; `match_rule` and `matched_account_id` say so.
CREATE TABLE finsync.account_xref (
    account_id         text        PRIMARY KEY,  -- CRM account id
    erp_customer_id    text        NOT NULL,
    billing_account_id text        NOT NULL,
    version            bigint      NOT NULL,     -- last CRM version applied
    match_rule         text        CHECK (match_rule IN ('TAX_ID', 'NAME_COUNTRY')),
    matched_account_id text        REFERENCES finsync.account_xref,
    name               text        NOT NULL,
    normalized_name    text        NOT NULL,
    country            text        NOT NULL,
    currency           text        NOT NULL,
    legal_entity       text        NOT NULL,
    tax_id             text,
    email_domain       text,
    parent_account_id  text,
    synced_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_xref_tax_id ON finsync.account_xref (tax_id) WHERE tax_id IS NOT NULL;
CREATE INDEX account_xref_name_country ON finsync.account_xref (normalized_name, country);
