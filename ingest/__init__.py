"""nightcramp ingest package."""
