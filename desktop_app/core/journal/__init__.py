"""The journal: Ferry's local, crash-safe memory of every transfer (SQLite)."""
