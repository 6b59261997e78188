"""The record: orders and their append-only events, on PostgreSQL or SQLite."""
