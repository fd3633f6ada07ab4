"""Where nightcramp finds its configuration files.

Each file is looked up by its name (``detector.toml``, ``sensors/<profile>.toml``, …); the first
place that has it wins:

1. ``$NIGHTCRAMP_CONFIG_DIR``;
2. the user's configuration directory (platformdirs; ``~/.config/nightcramp`` on Linux);
3. the defaults shipped with nightcramp: ``config/`` of the source tree, which the wheel carries
   as the package ``nightcramp_config``.

A path given on the command line (``--config``, ``--services``, ``--rules``) is used instead.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import platformdirs

SOURCE_CONFIG = Path(__file__).resolve().parent.parent / "config"


def defaults_dir() -> Path:
    """The shipped defaults: the installed package ``nightcramp_config``, else the source tree's."""
    try:
        found = resources.files("nightcramp_config")
    except ModuleNotFoundError:  # run from a source tree that was never installed
        return SOURCE_CONFIG
    return Path(str(found))


def search_dirs() -> list[Path]:
    """The configuration directories in the order they are searched."""
    dirs = []
    if env := os.environ.get("NIGHTCRAMP_CONFIG_DIR"):
        dirs.append(Path(env))
    dirs.append(platformdirs.user_config_path("nightcramp"))
    dirs.append(defaults_dir())
    return dirs


def config_file(name: str) -> Path:
    """The configuration file ``name`` from the first directory that has it; when none has it,
    the shipped default's path (so the error names where it was expected)."""
    dirs = search_dirs()
    for d in dirs:
        if (d / name).is_file():
            return d / name
    return dirs[-1] / name



class ConfigFileError(ValueError):
    """A configuration file that cannot be read; the message names the file and the problem."""


def read_toml(path: Path, what: str = "configuration file") -> dict:
    """The TOML document at ``path``: the one reader of every file in ``config/``.
    ConfigFileError says which file and why (missing, unreadable, not valid TOML: line and column)."""
    import tomllib

    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ConfigFileError(f"{path}: {what} unreadable: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"{path}: not valid TOML: not UTF-8 text") from None
