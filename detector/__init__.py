"""nightcramp detector package."""
