"""Identifiers used in topics and storage: pseudonymous, lower-case, short."""

from __future__ import annotations

import re

ID_PATTERN = r"[a-z0-9-]{1,32}"
_ID = re.compile(rf"^{ID_PATTERN}$")


def is_id(value: str | None) -> bool:
    """Whether ``value`` is a valid wearer or sensor id (``[a-z0-9-]{1,32}``)."""
    return bool(_ID.match(value or ""))


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it is a valid id (``[a-z0-9-]{1,32}``), else raise ValueError."""
    if not is_id(value):
        raise ValueError(f"{what} id {value!r} must be 1-32 characters of a-z, 0-9 and '-' "
                         "(a pseudonym, never a name)")
    return value
