"""Database plumbing the journal and the catalog share: migrations, process locks, group commit."""
