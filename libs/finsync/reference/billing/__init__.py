"""The reference billing system (schema `billing`): accounts, subscriptions, invoice run, credit
memos, published through its own outbox."""
