"""Ferry's engine: journal, catalog, storage, transfers. Never imports Qt."""
