"""The HTTP side of the store: InfluxDB's v1-compatible API (``POST /write``, ``GET/POST /query``).

Works with InfluxDB 1.x, 2.x (v1 compatibility, token or v1 auth) and 3.x. Writes are gzip
batches retried with backoff; while the server cannot be reached they wait in a bounded on-disk
spool and are sent when it is back. What is written and read is the business of the parts built
on this (detector.store.samples, detector.store.nights).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from detector.store.influxql import duration_ns

log = logging.getLogger("nightcramp.store")


class StoreSettings(BaseModel):
    """Where and how to store (the ``[store]`` table of config/services.toml)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field("http://127.0.0.1:8086", description="InfluxDB base URL (v1-compatible API)")
    database: str = Field("nightcramp", description="database (bucket mapped to it on 2.x/3.x)")
    auth: Literal["none", "basic", "token"] = "none"
    username: str = ""
    password: str = Field("", description="better: password_file")
    password_file: Path | None = Field(None, description="file (mode 600) with the password for basic auth")
    credentials_dir: Path | None = Field(None, description="where the stack keeps each program's InfluxDB "
                                         "secret (influx-<user>.secret); with it, auth is on and each "
                                         "program logs in as its own user (docs/operations.md)")
    token: str = ""
    raw_rp: str = Field("raw", description="retention policy for raw samples")
    raw_retention: str = Field("30d", description="how long raw samples are kept (InfluxQL duration)")
    timeout_s: float = Field(10.0, gt=0, description="[s] per HTTP request")
    retries: int = Field(4, ge=0, description="[-] attempts after the first before spooling")
    backoff_s: float = Field(0.25, ge=0, description="[s] first retry delay, doubled each time")
    spool_dir: Path | None = Field(None, description="where unsent batches wait; None keeps none")
    spool_max_mb: float = Field(512.0, gt=0,
                                description="[MB] spool size above which the oldest batches are dropped")
    shards: dict[str, str] = Field(default_factory=dict, description="further InfluxDB instances, name = "
                                   "URL, beside the main one (url): wearers are spread over them, the map "
                                   "kept with the accounts (detector.store.shards, docs/scaling.md)")

    @field_validator("shards")
    @classmethod
    def _shard_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, url in v.items():
            if name == "main" or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", name):
                raise ValueError(f"shard name {name!r}: [a-z0-9-], not 'main' (the [store] url)")
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"shard {name}: {url!r} is not an http(s) URL")
        return v


class StoreError(RuntimeError):
    """The server refused a request (bad data or query); the message includes its answer."""


class SpoolFull(StoreError):
    """InfluxDB is unreachable and the spool cannot take more (its disk is full): nothing of
    the batch was kept, the caller must hold on to it."""



class InfluxTransport:
    """One connection to InfluxDB: authenticated HTTP, retried writes, the spool, queries."""

    def __init__(self, settings: StoreSettings, client: httpx.Client | None = None) -> None:
        self.s = settings
        headers = {"Authorization": f"Token {settings.token}"} if settings.auth == "token" else {}
        password = settings.password
        if settings.auth == "basic" and settings.password_file and not password:
            from ingest.wire.mqtt_client import read_secret  # the same rules for every secret file

            password = read_secret(Path(settings.password_file))
        auth = (settings.username, password) if settings.auth == "basic" else None
        self.http = client or httpx.Client(base_url=settings.url, timeout=settings.timeout_s,
                                           headers=headers, auth=auth)
        self.spooled_dropped = 0
        self._spool_seq: int | None = None  # the name (ns) of the newest spooled batch
        self._threads: ThreadPoolExecutor | None = None
        if settings.spool_dir:
            Path(settings.spool_dir).mkdir(parents=True, exist_ok=True)
            for tmp in Path(settings.spool_dir).glob("*.tmp"):  # left by a crash or a full disk
                tmp.unlink(missing_ok=True)

    def close(self) -> None:
        # Queries still running in the pool must finish first: a connection handed back to a
        # closed client is never closed (an unclosed socket, found by the test suite).
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
        self.http.close()

    def setup(self) -> None:
        """Create the database and the raw-sample retention policy (idempotent). A user without
        admin rights (the stack's service accounts) finds them made by the stack and changes
        nothing."""
        db, rp = self.s.database, self.s.raw_rp
        try:
            policies = {r[0]: r[1] for r in self._rows(f'SHOW RETENTION POLICIES ON "{db}"')}
        except StoreError:
            policies = None  # no such database yet
        if policies is None:
            self._q(f'CREATE DATABASE "{db}"', post=True, db=None)
            policies = {}
        if rp not in policies:
            self._q(f'CREATE RETENTION POLICY "{rp}" ON "{db}" DURATION {self.s.raw_retention} '
                    "REPLICATION 1", post=True, db=None)
        elif duration_ns(policies[rp]) != duration_ns(self.s.raw_retention):
            try:
                self._q(f'ALTER RETENTION POLICY "{rp}" ON "{db}" DURATION {self.s.raw_retention}',
                        post=True, db=None)
            except StoreError as exc:  # not an admin: the stack's setting stays
                log.warning("raw retention stays %s (%s)", policies[rp], exc)

    def ping(self) -> bool:
        try:
            return self.http.get("/ping").status_code == 204
        except httpx.HTTPError:
            return False

    def write(self, lines: str, *, rp: str | None = None) -> bool:
        """Write line-protocol text; True when stored now, False when spooled for later.

        Raises StoreError when the server rejects the data itself (HTTP 400): retrying the same
        bytes cannot help and they are not spooled. Raises SpoolFull when the server is
        unreachable and the spool's disk is full: the caller still holds the only copy.
        """
        if not lines:
            return True
        body = gzip.compress(lines.encode(), compresslevel=1)
        if self._post_write(body, rp):
            self.flush_spool()
            return True
        self._spool(body, rp)
        return False

    def _post_write(self, body: bytes, rp: str | None) -> bool:
        params = {"db": self.s.database, "precision": "ns"}
        if rp:
            params["rp"] = rp
        delay = self.s.backoff_s
        for attempt in range(self.s.retries + 1):
            try:
                r = self.http.post("/write", params=params, content=body,
                                   headers={"Content-Encoding": "gzip"})
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code == 204:
                    return True
                if r.status_code == 400 and "beyond retention policy" in r.text:
                    # Samples older than their retention policy are dropped by design.
                    log.warning("InfluxDB dropped points older than the retention policy: %s",
                                r.text.strip())
                    return True
                if r.status_code == 400 or r.status_code in (401, 403, 404, 413):
                    raise StoreError(f"InfluxDB refused the write ({r.status_code}): {r.text.strip()}")
                why = f"HTTP {r.status_code}"
            if attempt < self.s.retries:
                log.warning("write failed (%s), retrying in %.2f s", why, delay)
                time.sleep(delay)
                delay *= 2
        return False

    def _spool(self, body: bytes, rp: str | None) -> None:
        if not self.s.spool_dir:
            log.error("InfluxDB unreachable and no spool configured: %d bytes not stored", len(body))
            self.spooled_dropped += 1
            return
        d = Path(self.s.spool_dir)
        # Named in write order even if the wall clock steps back: batches are replayed in name order.
        if self._spool_seq is None:
            self._spool_seq = max((int(f.name.split("-", 1)[0]) for f in d.glob("*.lp.gz")
                                   if f.name.split("-", 1)[0].isdigit()), default=0)
        self._spool_seq = max(self._spool_seq + 1, time.time_ns())
        name = f"{self._spool_seq:020d}-{rp or 'default'}.lp.gz"
        tmp = d / (name + ".tmp")
        try:
            with tmp.open("wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.rename(d / name)  # atomic: a half-written batch is never sent
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SpoolFull(f"InfluxDB unreachable and the spool {d} cannot take "
                            f"{len(body)} bytes: {exc}") from None
        files = sorted(d.glob("*.lp.gz"))
        total = sum(f.stat().st_size for f in files)
        while files and total > self.s.spool_max_mb * 2**20:
            oldest = files.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink()
            self.spooled_dropped += 1
            log.error("spool over %.0f MB: dropped %s", self.s.spool_max_mb, oldest.name)

    def spooled(self) -> int:
        return len(list(Path(self.s.spool_dir).glob("*.lp.gz"))) if self.s.spool_dir else 0

    def flush_spool(self) -> int:
        """Send spooled batches oldest first; stops at the first failure. Returns how many went."""
        if not self.s.spool_dir:
            return 0
        sent = 0
        for f in sorted(Path(self.s.spool_dir).glob("*.lp.gz")):
            rp = f.name.split("-", 1)[1].removesuffix(".lp.gz")
            if not self._post_write(f.read_bytes(), None if rp == "default" else rp):
                break
            f.unlink()
            sent += 1
        return sent

    def _q(self, q: str, *, post: bool = False, db: str | None = "", epoch: str | None = "ns",
           compressed: bool = True) -> dict:
        params = {"q": q}
        # Raw frames are base64 of noisy samples: gzip shrinks them little and cost InfluxDB a
        # third of the time of reading a night, so those reads ask for them as they are.
        hdr = None if compressed else {"Accept-Encoding": "identity"}
        if db is not None:
            params["db"] = db or self.s.database
        if epoch:
            params["epoch"] = epoch
        try:
            r = (self.http.post("/query", data=params, headers=hdr) if post
                 else self.http.get("/query", params=params, headers=hdr))
        except httpx.HTTPError as exc:
            raise StoreError(f"InfluxDB unreachable at {self.s.url}: {exc}") from None
        if r.status_code != 200:
            raise StoreError(f"query failed ({r.status_code}): {r.text.strip()} — {q}")
        out = r.json()
        for res in out.get("results", []):
            if "error" in res:
                raise StoreError(f"query failed: {res['error']} — {q}")
        return out

    def query(self, q: str, *, compressed: bool = True) -> list[dict]:
        """Series of an InfluxQL query: [{"name", "tags", "columns", "values"}]. ``compressed``
        False asks for the response without gzip (for large, barely compressible results)."""
        res = self._q(q, compressed=compressed)["results"]
        return [s for r in res for s in r.get("series", [])]

    def _rows(self, q: str) -> list[list]:
        return [row for s in self.query(q) for row in s.get("values", [])]

    def read_pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(4, thread_name_prefix="influx-read")
        return self._threads
