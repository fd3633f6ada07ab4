"""Where nightcramp finds its configuration directory."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    """The configuration directory: ``$NIGHTCRAMP_CONFIG_DIR`` or the repository's ``config/``."""
    env = os.environ.get("NIGHTCRAMP_CONFIG_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "config"
