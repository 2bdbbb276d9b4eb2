"""The ports services reach downstream systems through: Erp, Billing, CrossReference."""
