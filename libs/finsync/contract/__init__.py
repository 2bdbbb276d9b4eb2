"""The event contract publishers rely on: one typed event per topic, and the topic names."""
