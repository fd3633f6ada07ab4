"""Wearers spread over several InfluxDB instances (docs/scaling.md, "Storage across machines").

``[store] shards`` in config/services.toml names further instances (``name = "url"``) beside the
main one (``[store] url``, shard ``main``); every other store setting is shared. Which shard holds
a wearer is kept with the accounts — the table ``wearer_stores`` in the users database
(``[dashboard] users_db``) — and decided once, the first time the wearer is seen (the shard with
the fewest wearers), so adding a shard later never moves a wearer's nights. Every read and write
of a wearer goes through :meth:`ShardedStore.of`.
"""

from __future__ import annotations

import inspect
import sqlite3
import threading
from pathlib import Path
from typing import Any

from detector.store.influx import InfluxStore, StoreSettings

MAIN = "main"
_SCHEMA = "CREATE TABLE IF NOT EXISTS wearer_stores (wearer TEXT PRIMARY KEY, shard TEXT NOT NULL)"


class WearerMap:
    """wearer -> shard name, in the accounts database (SQLite; safe across processes)."""

    def __init__(self, path: str | Path, shards: list[str]) -> None:
        self.path, self.shards = Path(path), shards
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._cache: dict[str, str] = {}
        with self._db() as db:
            db.execute(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    def shard_of(self, wearer: str) -> str:
        """The wearer's shard; a new wearer gets the shard with the fewest wearers (ties: the
        first in the configuration), recorded in the same transaction that counts."""
        got = self._cache.get(wearer)
        if got is not None:
            return got
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                row = db.execute("SELECT shard FROM wearer_stores WHERE wearer = ?", (wearer,)).fetchone()
                if row is None:
                    counts = dict(db.execute("SELECT shard, COUNT(*) FROM wearer_stores GROUP BY shard"))
                    shard = min(self.shards, key=lambda s: (counts.get(s, 0), self.shards.index(s)))
                    db.execute("INSERT INTO wearer_stores (wearer, shard) VALUES (?, ?)", (wearer, shard))
                else:
                    shard = row[0]
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            finally:
                db.close()
        if shard not in self.shards:
            raise ValueError(f"wearer {wearer} is kept on shard {shard!r}, which [store] shards no longer "
                             f"names ({', '.join(self.shards)})")
        self._cache[wearer] = shard
        return shard

    def assign(self, wearer: str, shard: str) -> None:
        """Put a wearer on a shard (before its first night: its stored nights do not move)."""
        if shard not in self.shards:
            raise ValueError(f"no shard {shard!r} (configured: {', '.join(self.shards)})")
        db = self._db()
        try:
            db.execute("INSERT OR REPLACE INTO wearer_stores (wearer, shard) VALUES (?, ?)", (wearer, shard))
        finally:
            db.close()
        self._cache[wearer] = shard

    def all(self) -> dict[str, str]:
        db = self._db()
        try:
            return dict(db.execute("SELECT wearer, shard FROM wearer_stores ORDER BY wearer"))
        finally:
            db.close()


def _wearer_first(fn) -> bool:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] == "wearer"


class ShardedStore:
    """The store's interface over several InfluxDB instances: a method whose first argument is
    the wearer goes to that wearer's shard; set-up, spool and health go to all of them."""

    def __init__(self, stores: dict[str, InfluxStore], wearers: WearerMap) -> None:
        self.stores, self.map = stores, wearers
        self.s: StoreSettings = stores[MAIN].s

    def of(self, wearer: str) -> InfluxStore:
        return self.stores[self.map.shard_of(wearer)]

    def __getattr__(self, name: str) -> Any:
        main = getattr(self.stores[MAIN], name)
        if not callable(main) or not _wearer_first(main):
            raise AttributeError(f"{name!r} is not routed by wearer; call it on store.of(wearer) or on "
                                 "every store in store.stores")

        def routed(wearer: str, *args, **kw):
            return getattr(self.of(wearer), name)(wearer, *args, **kw)

        return routed

    def write(self, lines: str, rp: str | None = None) -> bool:
        raise TypeError("a sharded store writes a wearer's lines through store.of(wearer).write")

    def setup(self) -> None:
        for st in self.stores.values():
            st.setup()

    def close(self) -> None:
        for st in self.stores.values():
            st.close()

    def flush_spool(self) -> None:
        for st in self.stores.values():
            st.flush_spool()

    def spooled(self) -> int:
        return sum(st.spooled() for st in self.stores.values())

    def ping(self) -> bool:
        return all(st.ping() for st in self.stores.values())

    def read_pool(self):
        return self.stores[MAIN].read_pool()


Store = InfluxStore | ShardedStore  # what the services and the dashboard are given


def open_store(settings: StoreSettings, users_db: str | Path | None = None) -> Store:
    """The store for these settings: one InfluxStore, or a ShardedStore when ``shards`` names
    more instances (each with its own spool directory under ``spool_dir``)."""
    if not settings.shards:
        return InfluxStore(settings)
    if users_db is None:
        raise ValueError("[store] shards needs the accounts database ([dashboard] users_db) that keeps "
                         "which wearer is on which shard")
    names = [MAIN, *settings.shards]
    stores = {}
    for name in names:
        url = settings.url if name == MAIN else settings.shards[name]
        spool = str(Path(settings.spool_dir) / name) if settings.spool_dir else settings.spool_dir
        stores[name] = InfluxStore(settings.model_copy(update={"url": url, "spool_dir": spool, "shards": {}}))
    return ShardedStore(stores, WearerMap(users_db, names))
