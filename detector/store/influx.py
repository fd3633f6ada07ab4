"""The store: InfluxDB over its v1-compatible HTTP API, in four parts.

- ``detector.store.transport``: the connection, retried gzip writes, the on-disk spool, queries;
- ``detector.store.samples``: raw frames (raw retention policy, default 30 days), per-frame
  envelopes and rollups, traces;
- ``detector.store.nights``: analyses, advice links, check-ins, reviews (kept);
- ``detector.store.scorings``: a second scorer's events on a night (an imported PSG scoring).

``InfluxStore`` is all four over one connection, which is what the services, the dashboard and
the tests use. Points are keyed so that writing the same night or frame again overwrites instead
of duplicating; every field has one type (detector.store.schema).
"""

from __future__ import annotations

from detector.store.nights import NightConflict
from detector.store.samples import RAW_SPAN_NS, ROLLUPS, SampleStore
from detector.store.scorings import ScoringStore
from detector.store.transport import SpoolFull, StoreError, StoreSettings, log

__all__ = ["RAW_SPAN_NS", "ROLLUPS", "InfluxStore", "NightConflict", "SpoolFull", "StoreError",
           "StoreSettings"]


class InfluxStore(ScoringStore, SampleStore):
    """Samples and nights of every wearer in one InfluxDB database."""

    def of(self, wearer: str) -> InfluxStore:
        """The store that keeps ``wearer`` (this one; detector.store.shards spreads wearers)."""
        return self

    def _night_stored(self, wearer: str, night: str, t0_ns: int, t1_ns: int) -> None:
        try:
            self.build_rollups(wearer, t0_ns, t1_ns)
        except StoreError as exc:  # traces still work from the per-frame envelope
            log.warning("envelope rollups of night %s of %s not built: %s", night, wearer, exc)
