"""The embedded reference systems that stand in for someone else's ERP and billing platform,
each in its own PostgreSQL schema with its migrations beside its code.
"""
