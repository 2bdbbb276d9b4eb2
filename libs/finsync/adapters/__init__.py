"""finsync's own adapters behind the ports: the store of CRM, ERP and billing cross-references."""
