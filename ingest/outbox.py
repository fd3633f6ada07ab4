"""A durable outbox: frames wait in SQLite until the broker has acknowledged them (PUBACK).

The collector puts every frame here before publishing it; a frame is deleted only when its
PUBACK arrives, so a collector killed at any moment resumes by sending what is left (the
detector's storage keys make a frame sent twice harmless).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class Outbox:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a put survives a power cut
        self._db.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                         "topic TEXT NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL DEFAULT 0)")
        self._lock = threading.Lock()

    def put(self, topic: str, payload: bytes, retain: bool = False) -> int:
        with self._lock:
            return self._db.execute("INSERT INTO outbox (topic, payload, retain) VALUES (?, ?, ?)",
                                    (topic, payload, int(retain))).lastrowid

    def pending(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str, bytes, bool]]:
        with self._lock:
            rows = self._db.execute("SELECT id, topic, payload, retain FROM outbox WHERE id > ? ORDER BY id "
                                    "LIMIT ?", (after, limit)).fetchall()
        return [(i, t, bytes(p), bool(r)) for i, t, p, r in rows]

    def done(self, row_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
