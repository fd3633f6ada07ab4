"""Sensor clocks and counters: unwrap 16-bit sequences and 32-bit µs clocks, map to UTC.

The mapping keeps the lowest (arrival − sensor time) offset seen in a sliding window: the packet
that was delayed least is the best evidence of the true offset, and re-estimating it over time
follows the sensor crystal's drift.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class Unwrapper:
    """Turns a wrapping counter (``bits`` wide) into a monotonic one."""

    def __init__(self, bits: int) -> None:
        self.mod = 1 << bits
        self.last: int | None = None
        self.base = 0

    def __call__(self, value: int) -> int:
        if self.last is not None and value < self.last and self.last - value > self.mod // 2:
            self.base += self.mod
        elif self.last is not None and value > self.last and value - self.last > self.mod // 2:
            # A value from before the last wrap (a late or repeated packet): behind, not a
            # whole turn ahead. The position stays where it was.
            return self.base - self.mod + value
        self.last = value
        return self.base + value


class ClockMap:
    """Sensor µs → UTC ns, from (sensor time, arrival time) pairs, drift-tracking."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self._pairs: deque[tuple[int, int]] = deque()  # (arrival ns, offset ns)

    def observe(self, sensor_us: int, arrival_ns: int) -> None:
        self._pairs.append((arrival_ns, arrival_ns - sensor_us * 1000))
        while self._pairs and self._pairs[0][0] < arrival_ns - self.window_ns:
            self._pairs.popleft()

    @property
    def offset_ns(self) -> int:
        if not self._pairs:
            raise ValueError("no packet observed yet")
        return min(o for _, o in self._pairs)

    def utc_ns(self, sensor_us: int) -> int:
        return sensor_us * 1000 + self.offset_ns


class SteadyWall:
    """UTC ns that run on the monotonic clock from one reading of the wall clock.

    A step of the wall clock (an NTP correction, a clock set by hand, a laptop's suspend) does not
    move it, so the frames of a night keep one time base; ``step_ns()`` says how far the wall
    clock has moved away since the anchor. ``anchor()`` takes the wall clock again (a new night).
    """

    def __init__(self, wall_ns: Callable[[], int] = time.time_ns,
                 mono_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._wall, self._mono = wall_ns, mono_ns
        self.anchor()

    def anchor(self) -> None:
        self._w0, self._m0 = self._wall(), self._mono()

    def now_ns(self) -> int:
        return self._w0 + self._mono() - self._m0

    def step_ns(self) -> int:
        """Wall clock minus this clock (ns): 0 until the wall clock steps."""
        return self._wall() - self.now_ns()
