"""A durable outbox: frames wait in SQLite until they are safe.

The collector puts every frame here before publishing it. Safe means, end to end, that the
detector has stored it: the detector publishes per sensor and stream which sample ranges it has
stored (docs/mqtt-frames.md, ``…/ack``) and the covered frames are deleted then
(:meth:`Outbox.stored`). A frame the broker acknowledged (PUBACK) is only marked ``sent``: a
broker that dies before saving it loses nothing, because the collector sends every unconfirmed
frame again when it reconnects. Without a detector's acknowledgements (``end_to_end`` off in the
publisher) a frame is deleted on its PUBACK. A collector killed at any moment resumes by
sending what is left; the detector's storage keys make a frame sent twice harmless.
"""

from __future__ import annotations

import sqlite3
import threading
import time
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
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(outbox)")}
        for col, decl in (("sent", "INTEGER NOT NULL DEFAULT 0"), ("stream", "TEXT"), ("first", "INTEGER"),
                          ("n", "INTEGER"), ("sent_at", "REAL")):
            if col not in cols:  # an outbox from before end-to-end acknowledgements
                self._db.execute(f"ALTER TABLE outbox ADD COLUMN {col} {decl}")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_frames ON outbox (stream, first)")
        # The collector's per-stream counters, saved with each frame: a restarted collector
        # continues the sensor's sample counter instead of starting again at 0.
        self._db.execute("CREATE TABLE IF NOT EXISTS stream_state (stream TEXT PRIMARY KEY, "
                         "state TEXT NOT NULL)")
        self._lock = threading.Lock()

    def put(self, topic: str, payload: bytes, retain: bool = False, *,
            frame: tuple[str, int, int] | None = None, state: str | None = None) -> int:
        """Keep a message; ``frame`` = (stream, first sample counter, samples) for a frame, and
        ``state`` (JSON) the collector's state of that stream after it, saved in the same
        transaction (a crash keeps both or neither)."""
        stream, first, n = frame if frame else (None, None, None)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("INSERT INTO outbox (topic, payload, retain, stream, first, n) "
                                       "VALUES (?, ?, ?, ?, ?, ?)",
                                       (topic, payload, int(retain), stream, first, n)).lastrowid
                if state is not None and stream is not None:
                    self._db.execute("INSERT OR REPLACE INTO stream_state (stream, state) VALUES (?, ?)",
                                     (stream, state))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            assert row is not None  # an INSERT always has a row id
            return row

    def stream_states(self) -> dict[str, str]:
        """stream -> the JSON state saved with its last frame."""
        with self._lock:
            return dict(self._db.execute("SELECT stream, state FROM stream_state").fetchall())

    def pending(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str, bytes, bool]]:
        with self._lock:
            rows = self._db.execute("SELECT id, topic, payload, retain FROM outbox WHERE id > ? ORDER BY id "
                                    "LIMIT ?", (after, limit)).fetchall()
        return [(i, t, bytes(p), bool(r)) for i, t, p, r in rows]

    def done(self, row_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def sent(self, row_id: int, *, keep_frames: bool) -> None:
        """The broker has it: a frame waits for the detector's acknowledgement when
        ``keep_frames``; anything else (statuses) is done."""
        with self._lock:
            if keep_frames:
                self._db.execute("UPDATE outbox SET sent = 1, sent_at = ? WHERE id = ? AND "
                                 "stream IS NOT NULL", (time.time(), row_id))
                self._db.execute("DELETE FROM outbox WHERE id = ? AND stream IS NULL", (row_id,))
            else:
                self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def done_many(self, row_ids: list[int]) -> None:
        """Delete several messages in one transaction (one disk sync for a window of
        acknowledgements, not one per message)."""
        if not row_ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM outbox WHERE id = ?", [(r,) for r in row_ids])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def stored(self, stream: str, ranges: list[tuple[int, int]]) -> int:
        """Delete the frames of ``stream`` inside any of the stored sample ranges [a, b);
        returns how many went."""
        gone = 0
        with self._lock:
            for a, b in ranges:
                gone += self._db.execute("DELETE FROM outbox WHERE stream = ? AND first >= ? AND "
                                         "first + n <= ?", (stream, int(a), int(b))).rowcount
        return gone

    def unconfirmed_since(self, before: float, limit: int = 1000) -> list[tuple[int, str, bytes, bool]]:
        """Frames the broker acknowledged before ``before`` (UNIX s) and the detector has not
        confirmed: lost on the way (a broker restarted without them, a detector not subscribed).
        A frame sent "in the future" is due as well: the wall clock has stepped back since."""
        with self._lock:
            rows = self._db.execute("SELECT id, topic, payload, retain FROM outbox WHERE sent = 1 AND "
                                    "(sent_at < ? OR sent_at > ?) ORDER BY id LIMIT ?",
                                    (before, time.time() + 1.0, limit)).fetchall()
        return [(i, t, bytes(p), bool(r)) for i, t, p, r in rows]

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
