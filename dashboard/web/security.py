"""What every response of the dashboard carries, and how wrong passwords are slowed down.

Security headers: a Content-Security-Policy that allows scripts from this site only (no inline
script, no eval), no framing, no MIME sniffing, no referrer, and no caching of pages (health data
must not stay in a shared browser cache). Login attempts: after ``max_failures`` wrong passwords
for one account or from one address, further attempts are refused (429) for a time that doubles
with every further failure, up to ``max_lockout_s`` — even with the right password.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def security_headers(path: str) -> dict[str, str]:
    """Headers for a response to ``path``: vendored assets may be cached, nothing else."""
    cache = "public, max-age=3600" if path.startswith("/static/") else "no-store"
    return HEADERS | {"Cache-Control": cache}


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


@dataclass
class LoginLimiter:
    """Failed logins per account and per client address (monotonic seconds)."""

    max_failures: int = 5
    lockout_s: float = 30.0
    max_lockout_s: float = 900.0
    forget_s: float = 3600.0  # failures older than this are forgiven
    _by_key: dict[str, _Failures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, name: str, address: str) -> float:
        """Seconds until the next attempt for this account or address is allowed (0: now)."""
        now = time.monotonic()
        with self._lock:
            return max(0.0, *(self._by_key.get(k, _Failures()).locked_until - now
                              for k in self._keys(name, address)))

    def failed(self, name: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._by_key) > 100_000:  # bounded: forget the stale ones
                self._by_key = {k: v for k, v in self._by_key.items() if now - v.last < self.forget_s}
            for k in self._keys(name, address):
                f = self._by_key.setdefault(k, _Failures())
                if now - f.last > self.forget_s:
                    f.count = 0
                f.count += 1
                f.last = now
                if f.count >= self.max_failures:
                    wait = min(self.max_lockout_s, self.lockout_s * 2 ** (f.count - self.max_failures))
                    f.locked_until = now + wait

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            for k in self._keys(name, address):
                self._by_key.pop(k, None)

    @staticmethod
    def _keys(name: str, address: str) -> tuple[str, str]:
        return f"user:{name.lower()[:64]}", f"addr:{address}"
