"""Fault injection for bench/faults.py: a wall clock that steps, as an NTP correction steps it.

Put this directory on PYTHONPATH and name a file in NIGHTCRAMP_CLOCK_STEP_FILE; the file holds an
offset in seconds (e.g. ``3600`` or ``-3600``) that ``time.time`` and ``time.time_ns`` add from the
moment it is written. ``time.monotonic`` is left alone, as a real step leaves CLOCK_MONOTONIC alone.
(Debian's libfaketime 0.9.10 cannot do this: with FAKETIME_DONT_FAKE_MONOTONIC every
``time.sleep`` fails with EINVAL.) Nothing in the product imports this module.
"""

import os
import time

_path = os.environ.get("NIGHTCRAMP_CLOCK_STEP_FILE")

if _path:
    _real_time, _real_time_ns, _real_monotonic = time.time, time.time_ns, time.monotonic
    _cache = {"at": -1.0, "offset_ns": 0}

    def _offset_ns() -> int:
        now = _real_monotonic()
        if now - _cache["at"] >= 0.05:  # the file is read at most 20 times a second
            _cache["at"] = now
            try:
                with open(_path) as fh:
                    _cache["offset_ns"] = int(float(fh.read().strip() or 0) * 1e9)
            except (OSError, ValueError):
                pass
        return _cache["offset_ns"]

    def _time() -> float:
        return _real_time() + _offset_ns() / 1e9

    def _time_ns() -> int:
        return _real_time_ns() + _offset_ns()

    time.time, time.time_ns = _time, _time_ns
