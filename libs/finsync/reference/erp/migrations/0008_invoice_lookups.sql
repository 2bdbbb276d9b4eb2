-- Payments and credit memos are looked up by invoice: the AR reconciliation sums them per
-- invoice, and without these indexes that is quadratic (minutes at 30,000 invoices).
CREATE INDEX IF NOT EXISTS payments_invoice ON erp.payments (invoice_id);
CREATE INDEX IF NOT EXISTS ar_credits_invoice ON erp.ar_credits (invoice_id);
