"""Data export: a user's or a room's data written to a directory (docs/export.md)."""
