"""Analytics: what the assistant did, from the event stream (docs/analytics.md)."""
