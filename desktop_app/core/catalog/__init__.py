"""The catalog: the shared record of every file Ferry put into a bucket (SQLite or PostgreSQL)."""
