"""Identifiers used in topics and storage: pseudonymous, lower-case, short."""

from __future__ import annotations

import re

_ID = re.compile(r"^[a-z0-9-]{1,32}$")


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it is a valid id (``[a-z0-9-]{1,32}``), else raise ValueError."""
    if not _ID.match(value or ""):
        raise ValueError(f"{what} id {value!r} must be 1-32 characters of a-z, 0-9 and '-' "
                         "(a pseudonym, never a name)")
    return value
