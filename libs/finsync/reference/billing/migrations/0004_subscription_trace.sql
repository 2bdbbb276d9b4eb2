-- The trace of the opportunity that created a subscription, so its invoices join that trace
-- (opportunity -> subscription -> invoice -> posting -> payment).
ALTER TABLE billing.subscriptions ADD COLUMN traceparent text;
