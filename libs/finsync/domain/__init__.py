"""Money and calendar rules every service shares: currencies, journals, billing periods.

Pure: typed events and Decimals in, Decimals out; no Kafka, no SQL.
"""
