"""Runs of equal values in per-frame or per-epoch flags (pure NumPy, no state)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def runs(flags: np.ndarray | Sequence[int] | Sequence[bool]) -> list[tuple[int, int, int]]:
    """``(start, end, value)`` of every run of equal values, ends exclusive, values as ints."""
    f = np.asarray(flags)
    if f.size == 0:
        return []
    change = np.flatnonzero(f[1:] != f[:-1]) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, f.size]
    return [(int(a), int(b), int(f[a])) for a, b in zip(starts, ends, strict=True)]


def longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True in ``flags``."""
    return max((b - a for a, b, v in runs(np.asarray(flags, bool)) if v), default=0)
