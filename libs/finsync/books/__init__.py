"""The books across the systems: what CRM, billing, payments and the ERP must agree on — the
reconciliation a controller signs, and what a period close waits for."""
