"""The reference ERP (schema `erp`): customers, chart of accounts, journals, AR and cash."""
