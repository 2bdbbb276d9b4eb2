"""finance-analytics: bookings, billings, collections, AR aging, DSO and dead letters per legal
entity, currency and day, counted once from finsync's streams (a faust-streaming app)."""
