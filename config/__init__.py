"""nightcramp's default configuration files, shipped in the wheel as the package
``nightcramp_config`` and found with importlib.resources (ingest/paths.py). Edit the TOML files
here in a source checkout, or put overrides in ``$NIGHTCRAMP_CONFIG_DIR`` or
``~/.config/nightcramp/``."""
