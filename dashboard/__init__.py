"""nightcramp dashboard package."""
