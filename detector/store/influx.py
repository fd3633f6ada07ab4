"""InfluxDB storage over the v1-compatible HTTP API (``POST /write``, ``GET/POST /query``).

Works with InfluxDB 1.x, 2.x (v1 compatibility, token or v1 auth) and 3.x. Raw samples go to
their own retention policy (default 30 days); envelopes, events, nights and advice links stay in
the default policy. Writes are gzip batches retried with backoff; while the server cannot be
reached they wait in a bounded on-disk spool and are sent when it is back. Points are keyed so
that writing the same night or frame again overwrites instead of duplicating.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detector.engine.dsp import residual_peak
from detector.store import lineproto
from detector.store import schema as store_schema

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


class StoreError(RuntimeError):
    """The server refused a request (bad data or query); the message includes its answer."""


class SpoolFull(StoreError):
    """InfluxDB is unreachable and the spool cannot take more (its disk is full): nothing of
    the batch was kept, the caller must hold on to it."""


class NightConflict(StoreError):
    """A night is stored with a longer recording than the one that would replace it."""


class InfluxStore:
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
        self._keys: dict[tuple[str, str, str, str], tuple[str, str]] = {}
        self._frame_len: dict[tuple[str, str, str], int] = {}
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

    # ------------------------------------------------------------------ basics
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
        elif _duration_ns(policies[rp]) != _duration_ns(self.s.raw_retention):
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

    # ------------------------------------------------------------------ spool
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

    # ------------------------------------------------------------------ queries
    def _q(self, q: str, *, post: bool = False, db: str | None = "", epoch: str | None = "ns") -> dict:
        params = {"q": q}
        if db is not None:
            params["db"] = db or self.s.database
        if epoch:
            params["epoch"] = epoch
        try:
            r = self.http.post("/query", data=params) if post else self.http.get("/query", params=params)
        except httpx.HTTPError as exc:
            raise StoreError(f"InfluxDB unreachable at {self.s.url}: {exc}") from None
        if r.status_code != 200:
            raise StoreError(f"query failed ({r.status_code}): {r.text.strip()} — {q}")
        out = r.json()
        for res in out.get("results", []):
            if "error" in res:
                raise StoreError(f"query failed: {res['error']} — {q}")
        return out

    def query(self, q: str) -> list[dict]:
        """Series of an InfluxQL query: [{"name", "tags", "columns", "values"}]."""
        res = self._q(q)["results"]
        return [s for r in res for s in r.get("series", [])]

    def _rows(self, q: str) -> list[list]:
        return [row for s in self.query(q) for row in s.get("values", [])]

    # ------------------------------------------------------------------ domain writes
    def frame_lines(self, wearer: str, sensor: str, stream: str, labels: list[str],
                    raw: np.ndarray, scale: tuple[float, ...] | list[float], rate_hz: float,
                    first_sample: int, first_time_ns: int) -> tuple[str, str]:
        """Line protocol for one frame: (raw points for the raw policy, envelope points to keep).

        Raw: one point per channel holding the frame's samples as transmitted (base64 of
        little-endian int16 or float32) with their scale, rate and sample counter, at the time of
        the first sample; a frame stored twice lands on the same key. Envelope: min, max and mean
        absolute value (µV or g) of the frame, for zoomed-out traces after raw data expires; for
        EMG also ``hfpk``, the frame's peak without wander and mains hum (µV,
        :func:`detector.engine.dsp.residual_peak`), which zoomed-out filtered views draw.
        """
        raw = np.asarray(raw)
        enc = "i16" if raw.dtype == np.int16 else "f32"
        cols = np.ascontiguousarray(raw, "<i2" if enc == "i16" else "<f4")
        n = len(cols)
        if n:
            # All channels at once: this runs for every frame of every sensor.
            phys = cols.astype(np.float32) * np.asarray(scale, np.float32)
            lo, hi, mav = phys.min(axis=0), phys.max(axis=0), np.abs(phys).mean(axis=0)
            # EMG: also the peak once wander and hum are out, for filtered zoomed-out views.
            pk = residual_peak(phys, fs=float(rate_hz)) if stream == "emg" else None
        fs_txt, first_txt = lineproto.field_text(float(rate_hz)), f"{int(first_sample)}i"
        raw_lines, env_lines = [], []
        for k, lab in enumerate(labels):
            raw_key, env_key = self._frame_keys(wearer, sensor, stream, lab)
            data = base64.b64encode(cols[:, k].tobytes()).decode()
            # Fields in sorted order, as lineproto.point writes them (base64 needs no escaping).
            raw_lines.append(f'{raw_key} data="{data}",enc="{enc}",first={first_txt},fs={fs_txt},n={n}i,'
                             f"scale={lineproto.field_text(float(scale[k]))} {first_time_ns}")
            if n:
                stats = ((("hfpk", pk[k]),) if pk is not None else ()) + (
                    ("mav", mav[k]), ("max", hi[k]), ("min", lo[k]))
                env = ",".join(f"{name}={lineproto.field_text(float(v))}"
                               for name, v in stats if np.isfinite(v))
                if env:  # float samples may be NaN; the reference leaves such fields out
                    env_lines.append(f"{env_key} {env} {first_time_ns}")
        return "\n".join(raw_lines), "\n".join(env_lines)

    def _frame_keys(self, wearer: str, sensor: str, stream: str, label: str) -> tuple[str, str]:
        k = (wearer, sensor, stream, label)
        keys = self._keys.get(k)
        if keys is None:
            tags = {"wearer": wearer, "sensor": sensor, "channel": label}
            keys = (lineproto.series_key(stream, tags),
                    lineproto.series_key("env", tags | {"stream": stream}))
            if len(self._keys) > 100_000:
                self._keys.clear()
            self._keys[k] = keys
        return keys

    def write_frame(self, wearer: str, sensor: str, stream: str, labels: list[str], raw: np.ndarray,
                    scale, rate_hz: float, first_sample: int, first_time_ns: int) -> bool:
        r, e = self.frame_lines(wearer, sensor, stream, labels, raw, scale, rate_hz, first_sample,
                                first_time_ns)
        ok = self.write(r, rp=self.s.raw_rp)
        return self.write(e) and ok

    def write_analysis(self, wearer: str, night: str, analysis_json: dict, *,
                       replace_longer: bool = False) -> bool:
        """Events and the night summary of one analysis; re-writing the night replaces it.

        The new points are written first, under a new version, and the night's summary point
        (written last) names the version readers use; only then are older versions removed. So a
        failed or refused write leaves the stored night as it was. A night stored with a longer
        recording is not replaced by a shorter one (a late fragment) unless ``replace_longer``:
        NightConflict. True when stored now, False when spooled for later.
        """
        start_ns = _iso_ns(analysis_json["recording"]["start"])
        duration = float(analysis_json["recording"]["duration_s"])
        if not replace_longer:
            old = next(iter(self.nights(wearer, night)), None)
            if old is not None and float(old["duration_s"] or 0.0) > duration + 1.0:
                raise NightConflict(
                    f"night {night} of {wearer} is stored with {old['duration_s']:.0f} s; a "
                    f"{duration:.0f}-s recording does not replace it")
        version = _new_version()
        lines = []
        for e in analysis_json["events"]:
            tags = {"wearer": wearer, "night": night, "kind": e["kind"], "side": e.get("side") or "none",
                    "channel": e.get("channel") or "", "v": version}
            fields = {"start_s": e["start_s"], "end_s": e["end_s"], "duration_s": e["duration_s"],
                      "confidence": e["confidence"], "subtype": e.get("subtype", ""),
                      "features": json.dumps(e.get("features", {}))}
            lines.append(_point("event", tags, fields, start_ns + round(e["start_s"] * 1e9)))
        lines += _advice_lines(wearer, night, start_ns, analysis_json.get("advice", []), version)
        s = analysis_json["summary"]
        fields = {k: s.get(k) for k in store_schema.SUMMARY_FIELDS}
        fields["json"] = json.dumps(s)
        rec = {k: v for k, v in analysis_json["recording"].items() if k != "annotations"}
        fields["recording"] = json.dumps(rec)
        fields["notes"] = json.dumps(analysis_json.get("notes", []))
        fields["duration_s"] = duration
        fields["version"] = version
        fields["advice_version"] = version
        if "hypnogram" in analysis_json:  # compact: one digit per epoch (1 wake)
            h = analysis_json["hypnogram"]
            fields["hypnogram"] = json.dumps({"epoch_s": h["epoch_s"], "wake": "".join(map(str, h["wake"]))})
        lines.append(_point("night", {"wearer": wearer, "night": night}, fields, start_ns))
        ok = self.write("\n".join(lines))
        if ok:
            self._prune(wearer, night, ("event", "advice"), keep=version)
            try:
                self.build_rollups(wearer, start_ns, start_ns + int(duration * 1e9) + 10**9)
            except StoreError as exc:  # traces still work from the per-frame envelope
                log.warning("envelope rollups of night %s of %s not built: %s", night, wearer, exc)
        return ok

    def _prune(self, wearer: str, night: str, measurements: tuple[str, ...], keep: str) -> None:
        """Remove a night's points of versions other than ``keep`` (after the new ones are
        stored). Failing here only leaves stale points that readers ignore; the next write of the
        night removes them."""
        who = f"\"wearer\" = '{_lit(wearer)}' AND \"night\" = '{_lit(night)}'"
        for m in measurements:
            try:
                stale = {r[1] for r in self._rows(f'SHOW TAG VALUES FROM "{m}" WITH KEY = "v" WHERE {who}')}
                stale.discard(keep)
                stale.add("")  # points from before versions existed carry no version
                for v in sorted(stale):
                    self._q(f"DELETE FROM \"{m}\" WHERE {who} AND \"v\" = '{_lit(v)}'", post=True)
            except StoreError as exc:
                log.warning("stale %s points of night %s of %s not removed yet: %s", m, night, wearer, exc)

    def _versions(self, wearer: str, night: str | None = None) -> dict[str, tuple[str, str]]:
        """night -> (events version, advice version) of a wearer's stored nights."""
        one = f" AND \"night\" = '{_lit(night)}'" if night else ""
        out = {}
        for s in self.query(f"SELECT \"version\", \"advice_version\", \"night\" FROM \"night\" "
                            f"WHERE \"wearer\" = '{_lit(wearer)}'{one}"):
            for _, v, av, n in s["values"]:
                out[n] = (v or "", av if av is not None else (v or ""))
        return out

    def write_advice(self, wearer: str, night: str, advice: list[dict]) -> bool:
        """Replace a night's advice links (night -> rule ids, with the facts that fired them):
        new points first, then the night names them, then the old ones go."""
        n = next(iter(self.nights(wearer, night)), None)
        if n is None:
            raise StoreError(f"no stored night {night} for {wearer}")
        version = _new_version()
        lines = _advice_lines(wearer, night, n["start_ns"], advice, version)
        # Same series and time as the night's point: InfluxDB merges the field into it.
        lines.append(_point("night", {"wearer": wearer, "night": night}, {"advice_version": version},
                            n["start_ns"]))
        ok = self.write("\n".join(lines))
        if ok:
            self._prune(wearer, night, ("advice",), keep=version)
        return ok

    def advice(self, wearer: str, night: str) -> list[dict]:
        """A night's stored advice items, see-a-clinician first (as evaluated)."""
        version = self._versions(wearer, night).get(night, ("", ""))[1]
        res = self.query(f"SELECT * FROM \"advice\" WHERE \"wearer\" = '{_lit(wearer)}' AND "
                         f"\"night\" = '{_lit(night)}' AND \"v\" = '{_lit(version)}'")
        out = []
        for s in res:
            for row in s["values"]:
                d = dict(zip(s["columns"], row, strict=True))
                item = {k: d[k] for k in _ADVICE_KEYS}
                out.append((d["order"], item | {"facts": json.loads(d["facts"] or "{}")}))
        return [a for _, a in sorted(out, key=lambda x: x[0])]

    def advice_links(self, wearer: str) -> dict[str, list[str]]:
        """Rule ids per night, for every stored night of the wearer."""
        versions = self._versions(wearer)
        out: dict[str, list[str]] = {}
        for s in self.query(f"SELECT \"order\", \"rule\", \"night\", \"v\" FROM \"advice\" "
                            f"WHERE \"wearer\" = '{_lit(wearer)}'"):
            for _, _, rule, night, v in sorted(s["values"], key=lambda r: r[1]):
                if night in versions and (v or "") == versions[night][1]:
                    out.setdefault(night, []).append(rule)
        return out

    def write_diary(self, wearer: str, night: str, part: str, answers: dict) -> bool:
        """Store one check-in (part ``evening`` or ``morning``) of a night, replacing the last one.

        Kept at midnight UTC of the night's date, so it can be written before the night exists.
        """
        if part not in ("evening", "morning"):
            raise ValueError(f"diary part must be evening or morning, not {part!r}")
        ts = _night_ns(night) + (0 if part == "evening" else 1)
        fields: dict[str, object] = {"json": json.dumps(answers)}
        for k, v in answers.items():
            if isinstance(v, bool | int | float | str):
                fields[k] = v
            elif isinstance(v, list):
                fields[k] = ",".join(map(str, v))
        # Same series and time as the last check-in of that part: the point is replaced field by
        # field, never deleted first (a failed write must not cost the last answers). ``json``
        # holds every answer and is what is read back.
        return self.write(_point("diary", {"wearer": wearer, "night": night, "part": part}, fields, ts))

    def diaries(self, wearer: str) -> dict[str, dict[str, dict]]:
        """Every stored check-in of a wearer: night -> part -> answers."""
        out: dict[str, dict[str, dict]] = {}
        for s in self.query(f"SELECT \"json\", \"night\", \"part\" FROM \"diary\" "
                            f"WHERE \"wearer\" = '{_lit(wearer)}'"):
            for _, js, night, part in s["values"]:
                out.setdefault(night, {})[part] = json.loads(js)
        return out

    # ------------------------------------------------------------------ domain reads
    def nights(self, wearer: str, night: str | None = None) -> list[dict]:
        """Stored nights (or the one ``night``): start, duration, summary, recording, notes."""
        one = f" AND \"night\" = '{_lit(night)}'" if night else ""
        rows = self.query(f"SELECT \"json\", \"duration_s\", \"night\", \"recording\", \"notes\" "
                          f"FROM \"night\" WHERE \"wearer\" = '{_lit(wearer)}'{one}")
        out = []
        for s in rows:
            for t, js, dur, night, rec, notes in s["values"]:
                out.append({"start_ns": t, "duration_s": dur, "night": night, "summary": json.loads(js),
                            "recording": json.loads(rec or "{}"), "notes": json.loads(notes or "[]")})
        return sorted(out, key=lambda n: n["night"])

    def build_rollups(self, wearer: str, t0_ns: int, t1_ns: int, *, chunk_ns: int | None = None,
                      tries: int = 3) -> None:
        """Coarser envelope levels (1 s, 10 s) of a wearer's time span, computed inside InfluxDB
        (SELECT … INTO): whole-night traces then scan thousands of points, not millions.

        Built a chunk of ``chunk_ns`` at a time, each tried ``tries`` times, so one request
        stays well inside the HTTP timeout on a long night and a busy server. If a chunk still
        fails, the span's rollups are deleted again and StoreError raised: readers then use the
        per-frame envelope for the whole night instead of drawing a trace with holes."""
        src, chunk_ns = "env", chunk_ns or ROLLUP_CHUNK_NS
        try:
            for level, step_ns in ROLLUPS:
                a0 = t0_ns - t0_ns % step_ns
                for a in range(a0, t1_ns, chunk_ns):
                    b = min(t1_ns, a + chunk_ns)
                    q = (f"SELECT MIN(\"min\") AS \"min\", MAX(\"max\") AS \"max\", "
                         f"MEAN(\"mav\") AS \"mav\", MAX(\"hfpk\") AS \"hfpk\" INTO \"{level}\" "
                         f"FROM \"{src}\" WHERE \"wearer\" = '{_lit(wearer)}' AND time >= {a} AND time < {b} "
                         f"GROUP BY time({step_ns}ns), *")
                    for k in range(tries):
                        try:
                            self._q(q, post=True)
                            break
                        except StoreError:
                            if k == tries - 1:
                                raise
                            time.sleep(0.5 * (k + 1))
                src = level
        except StoreError:
            for level, _ in ROLLUPS:
                try:
                    self._q(f"DELETE FROM \"{level}\" WHERE \"wearer\" = '{_lit(wearer)}' "
                            f"AND time >= {t0_ns - t0_ns % ROLLUPS[-1][1]} AND time < {t1_ns}", post=True)
                except StoreError:
                    pass  # the store is down: nothing of the partial rollups is read until it is back
            raise

    def recording(self, wearer: str, night: str) -> dict | None:
        """A stored night's recording description (start, duration, channels), or None."""
        rows = self._rows(f"SELECT \"recording\" FROM \"night\" WHERE \"wearer\" = '{_lit(wearer)}' "
                          f"AND \"night\" = '{_lit(night)}'")
        return json.loads(rows[0][1]) if rows and rows[0][1] else None

    def hypnogram(self, wearer: str, night: str) -> dict | None:
        """Per-epoch sleep/wake of a stored night: {"epoch_s", "wake": [0|1, …]} or None."""
        rows = self._rows(f"SELECT \"hypnogram\" FROM \"night\" WHERE \"wearer\" = '{_lit(wearer)}' "
                          f"AND \"night\" = '{_lit(night)}'")
        if not rows or not rows[0][1]:
            return None
        h = json.loads(rows[0][1])
        return {"epoch_s": h["epoch_s"], "wake": [int(c) for c in h["wake"]]}

    def write_review(self, wearer: str, night: str, review: dict) -> bool:
        """Append one review action (audit trail: who, when, what) for an event of a night."""
        tags = {"wearer": wearer, "night": night, "event": review["event"]}
        fields = {k: v for k, v in review.items() if k not in tags and v is not None}
        at = dt.datetime.fromisoformat(review["at"])
        return self.write(_point("review", tags, fields, int(at.timestamp() * 1e9)))

    def reviewed_nights(self, wearer: str) -> set[str]:
        """The nights of ``wearer`` that have at least one review action."""
        return {r[1] for r in self._rows(f'SHOW TAG VALUES FROM "review" WITH KEY = "night" '
                                         f"WHERE \"wearer\" = '{_lit(wearer)}'")}

    def reviews(self, wearer: str, night: str) -> list[dict]:
        """A night's review actions, oldest first."""
        out = []
        for s in self.query(f"SELECT * FROM \"review\" WHERE \"wearer\" = '{_lit(wearer)}' AND "
                            f"\"night\" = '{_lit(night)}'"):
            for row in s["values"]:
                d = {k: v for k, v in zip(s["columns"], row, strict=True) if v is not None}
                d.pop("time", None)
                out.append(store_schema.read_back("review", d))
        return sorted(out, key=lambda d: d["at"])

    def analysis(self, wearer: str, night: str) -> dict | None:
        """A stored night as an analysis object (recording, events, summary, notes)."""
        n = next(iter(self.nights(wearer, night)), None)
        if n is None:
            return None
        return {"schema": "nightcramp.analysis/1", "recording": n["recording"],
                "events": self.events(wearer, night), "summary": n["summary"], "notes": n["notes"],
                "advice": self.advice(wearer, night)}

    def events(self, wearer: str, night: str) -> list[dict]:
        """A stored night's events (the version its summary names), in time order."""
        version = self._versions(wearer, night).get(night, ("", ""))[0]
        res = self.query(f"SELECT * FROM \"event\" WHERE \"wearer\" = '{_lit(wearer)}' AND "
                         f"\"night\" = '{_lit(night)}' AND \"v\" = '{_lit(version)}'")
        out = []
        for s in res:
            cols = s["columns"]
            for row in s["values"]:
                d = dict(zip(cols, row, strict=True))
                d.pop("v", None)
                d["features"] = json.loads(d.get("features") or "{}")
                out.append(store_schema.read_back("event", d))
        return sorted(out, key=lambda d: (d["start_s"], d["kind"]))

    def count_samples(self, wearer: str, stream: str) -> int:
        """Raw samples stored for a wearer's stream (all channels)."""
        rows = self._rows(f"SELECT SUM(\"n\") FROM \"{self.s.raw_rp}\".\"{stream}\" WHERE "
                          f"\"wearer\" = '{_lit(wearer)}'")
        return int(rows[0][1]) if rows else 0

    def value_range(self, wearer: str, t0_ns: int, t1_ns: int) -> dict[str, tuple[float, float]]:
        """Smallest and largest sample (µV or g) of each channel in [t0, t1), from the frames'
        envelopes (one aggregate query, no raw samples read)."""
        q = (f"SELECT MIN(\"min\"), MAX(\"max\") FROM \"env\" WHERE \"wearer\" = '{_lit(wearer)}' "
             f"AND time >= {t0_ns} AND time < {t1_ns} GROUP BY \"channel\"")
        out = {}
        for series in self.query(q):
            for _, lo, hi in series.get("values", []):
                if lo is not None and hi is not None:
                    out[series["tags"]["channel"]] = (float(lo), float(hi))
        return out

    def raw(self, wearer: str, channel: str, stream: str, t0_ns: int,
            t1_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw samples of a channel in [t0, t1): (times ns, values in µV or g)."""
        return self.raw_many(wearer, [channel], stream, t0_ns, t1_ns)[channel]

    def raw_many(self, wearer: str, channels: list[str], stream: str, t0_ns: int,
                 t1_ns: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Raw samples of several channels of one stream in [t0, t1), in one query."""
        before = 2 * max(self._frame_ns(wearer, c, stream) for c in channels)  # the frame holding t0
        q = (f"SELECT \"data\", \"enc\", \"scale\", \"fs\" FROM \"{self.s.raw_rp}\".\"{stream}\" "
             f"WHERE \"wearer\" = '{_lit(wearer)}' AND \"channel\" =~ /^({'|'.join(map(_re, channels))})$/ "
             f"AND time >= {t0_ns - before} AND time < {t1_ns} GROUP BY \"channel\"")
        out = {c: (np.zeros(0, np.int64), np.zeros(0, np.float32)) for c in channels}
        for series in self.query(q):
            ts, vs = [], []
            for t, data, enc, scale, fs in series.get("values", []):
                x = np.frombuffer(base64.b64decode(data), "<i2" if enc == "i16" else "<f4")
                tt = t + np.round(np.arange(len(x)) * (1e9 / fs)).astype(np.int64)
                keep = (tt >= t0_ns) & (tt < t1_ns)
                ts.append(tt[keep])
                vs.append(x[keep].astype(np.float32) * np.float32(scale))
            if ts:
                out[series["tags"]["channel"]] = (np.concatenate(ts), np.concatenate(vs))
        return out

    def raw_frames(self, wearer: str, stream: str, t0_ns: int, t1_ns: int,
                   chunk_ns: int = 600 * 10**9):
        """The stored frames of a wearer's stream in [t0, t1), as transmitted, oldest first, read
        ``chunk_ns`` at a time: (sensor, first sample, time ns, rate Hz, labels, scales, raw
        (n, channels)). To analyse a stored night again (late frames reopen it)."""
        for a in range(t0_ns, t1_ns, chunk_ns):
            src = f"\"{self.s.raw_rp}\".\"{stream}\""
            q = (f"SELECT \"data\", \"enc\", \"first\", \"fs\", \"scale\" FROM {src} "
                 f"WHERE \"wearer\" = '{_lit(wearer)}' AND time >= {a} AND time < {min(t1_ns, a + chunk_ns)} "
                 "GROUP BY \"sensor\", \"channel\"")
            frames: dict[tuple[str, int], dict] = {}
            for series in self.query(q):
                sensor, label = series["tags"]["sensor"], series["tags"]["channel"]
                for t, data, enc, first, fs, scale in series.get("values", []):
                    x = np.frombuffer(base64.b64decode(data), "<i2" if enc == "i16" else "<f4")
                    f = frames.setdefault((sensor, int(first)), {"t": t, "fs": fs, "cols": {}})
                    f["cols"][label] = (x, scale)
            for (sensor, first), f in sorted(frames.items(), key=lambda kv: (kv[1]["t"], kv[0])):
                labels = sorted(f["cols"])
                n = min(len(f["cols"][lab][0]) for lab in labels)
                raw = np.stack([f["cols"][lab][0][:n] for lab in labels], axis=1)
                yield sensor, first, f["t"], f["fs"], labels, [f["cols"][lab][1] for lab in labels], raw

    def _frame_ns(self, wearer: str, channel: str, stream: str) -> int:
        """Duration of a channel's frames (ns), from its last stored raw frame; 1 s if unknown."""
        k = (wearer, channel, stream)
        if k not in self._frame_len:
            rows = self._rows(f"SELECT LAST(\"n\"), \"fs\" FROM \"{self.s.raw_rp}\".\"{stream}\" WHERE "
                              f"\"wearer\" = '{_lit(wearer)}' AND \"channel\" = '{_lit(channel)}'")
            n, fs = (rows[0][1], rows[0][2]) if rows and rows[0][1] and rows[0][2] else (1, 1.0)
            self._frame_len[k] = max(1, int(n / fs * 1e9))
        return self._frame_len[k]

    def trace(self, wearer: str, channel: str, stream: str, t0_ns: int, t1_ns: int,
              points: int) -> dict:
        """Min/max of a channel in ``points`` buckets over [t0, t1): at most 2 values per bucket.

        Buckets at least half a frame long come from the stored per-frame envelope (kept for ever;
        sensors send 0.1-s frames); shorter ones are computed from the raw frames (kept for the
        raw retention), which happens only for spans of a few minutes or less.
        """
        bucket = max(1, (t1_ns - t0_ns) // max(1, points))
        if self._use_envelope(wearer, channel, stream, bucket, t1_ns - t0_ns):
            return self._env_traces(wearer, [channel], t0_ns, t1_ns, bucket).get(channel) or {
                "t_ns": [], "min": [], "max": [], "mav": [], "pk": None, "bucket_ns": bucket,
                "source": "envelope", "level": "env"}
        t, v = self.raw(wearer, channel, stream, t0_ns, t1_ns)
        return _raw_buckets(t, v, t0_ns, bucket)

    def traces(self, wearer: str, channels: dict[str, str], t0_ns: int, t1_ns: int, points: int, *,
               filters: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] | None = None,
               pad_ns: int = 0) -> dict:
        """:meth:`trace` for several channels (label -> stream) of one view: envelope queries for
        groups of channels and raw reads for spans finer than a frame per bucket, run side by
        side. Returns label -> trace.

        ``filters`` (label -> f(times ns, values) -> values) are applied to raw samples read
        ``pad_ns`` beyond either edge of the view, so a filter has settled by the first pixel;
        envelope traces are returned as stored (their ``pk`` is the filtered peak of EMG)."""
        filters = filters or {}
        bucket = max(1, (t1_ns - t0_ns) // max(1, points))
        # The per-frame envelope serves down to half a frame per bucket (a frame then spans two
        # pixels); only shorter buckets, spans under a minute or so, need the raw frames.
        env_ch = [c for c, st in channels.items() if self._use_envelope(wearer, c, st, bucket, t1_ns - t0_ns)]
        # Accelerometers move slowly next to EMG: half the buckets (one value pair per 2 pixels)
        # halves their share of the rows InfluxDB has to return.
        acc = [c for c in env_ch if channels[c] == "acc"]
        env_ch = [c for c in env_ch if channels[c] != "acc"]
        # InfluxDB's time grows with the rows it returns, and it uses both cores for two queries:
        # one query per group of up to three channels, side by side.
        groups = [(env_ch[k:k + 3], bucket) for k in range(0, len(env_ch), 3)]
        groups += [(acc[k:k + 3], 2 * bucket) for k in range(0, len(acc), 3)]
        out: dict[str, dict] = {}
        for part in self._pool().map(lambda g: self._env_traces(wearer, g[0], t0_ns, t1_ns, g[1]), groups):
            out |= part
        by_stream: dict[str, list[str]] = {}
        for c in channels:
            if c not in out:
                by_stream.setdefault(channels[c], []).append(c)
        pad = pad_ns if filters else 0
        for got in self._pool().map(lambda kv: self.raw_many(wearer, kv[1], kv[0], t0_ns - pad, t1_ns + pad),
                                    by_stream.items()):
            for c, (t, v) in got.items():
                if c in filters and len(v):
                    v = np.asarray(filters[c](t, v), np.float32)
                keep = (t >= t0_ns) & (t < t1_ns)
                out[c] = _raw_buckets(t[keep], v[keep], t0_ns, bucket)
        return out

    def _use_envelope(self, wearer: str, channel: str, stream: str, bucket: int, span_ns: int) -> bool:
        """The per-frame envelope down to half a frame per bucket; raw frames below that, but
        never for more than RAW_SPAN_NS (long frames, as accelerated simulations send, would
        otherwise mean reading an hour of samples)."""
        return 2 * bucket >= self._frame_ns(wearer, channel, stream) or span_ns > RAW_SPAN_NS

    def _pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(4, thread_name_prefix="influx-read")
        return self._threads

    def _env_traces(self, wearer: str, chans: list[str], t0_ns: int, t1_ns: int, bucket: int) -> dict:
        """Envelope traces of some channels from the coarsest stored level that still resolves a
        bucket (far fewer points to scan); buckets start at t0, so the first is the first pixel."""
        who = f"\"wearer\" = '{_lit(wearer)}' AND \"channel\" =~ /^({'|'.join(map(_re, chans))})$/"
        out: dict[str, dict] = {}
        for level, step_ns in (*reversed(ROLLUPS), ("env", 0)):
            if bucket < step_ns:
                continue
            q = (f"SELECT MIN(\"min\"), MAX(\"max\"), MEAN(\"mav\"), MAX(\"hfpk\") FROM \"{level}\" "
                 f"WHERE {who} AND time >= {t0_ns} AND time < {t1_ns} "
                 f"GROUP BY time({bucket}ns, {t0_ns % bucket}ns), \"channel\" fill(none)")
            for series in self.query(q):
                cols = list(zip(*series.get("values", []), strict=True)) or [(), (), (), (), ()]
                t, lo, hi, mav, pk = (list(c) for c in cols)
                out[series["tags"]["channel"]] = {
                    "t_ns": t, "min": lo, "max": hi, "mav": mav, "bucket_ns": bucket,
                    "pk": pk if any(v is not None for v in pk) else None,
                    "source": "envelope", "level": level}
            if out or level == "env":  # a night still open has no rollups yet
                break
        return out


RAW_SPAN_NS = 180 * 10**9
ROLLUPS = (("env_1s", 10**9), ("env_10s", 10 * 10**9))  # (measurement, bucket ns), finer first
ROLLUP_CHUNK_NS = 1800 * 10**9  # 30 min of frames per SELECT … INTO (divisible by every level)
_ADVICE_KEYS = ("rule", "title", "text", "level", "evidence", "source", "clinician")


def _advice_lines(wearer: str, night: str, start_ns: int, advice: list[dict], version: str) -> list[str]:
    out = []
    for k, a in enumerate(advice):
        tags = {"wearer": wearer, "night": night, "rule": a["rule"], "level": a["level"], "v": version}
        fields = {"order": k, "title": a["title"], "text": a["text"], "evidence": a.get("evidence", ""),
                  "source": a["source"], "clinician": a.get("clinician", ""),
                  "facts": json.dumps(a.get("facts", {}))}
        out.append(_point("advice", tags, fields, start_ns))
    return out


def _point(measurement: str, tags: dict[str, str], fields: dict, ts_ns: int) -> str:
    """One line of a declared measurement, its fields in their stored types (store_schema)."""
    return lineproto.point(measurement, tags, store_schema.coerce(measurement, fields), ts_ns)


def _new_version() -> str:
    """A fresh version id for a night's points; readers take the one the night's summary names
    (never the "latest", which a wall clock that stepped back would get wrong)."""
    return f"{time.time_ns():x}{secrets.token_hex(2)}"


def _night_ns(night: str) -> int:
    d = dt.date.fromisoformat(night)
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def _raw_buckets(t: np.ndarray, v: np.ndarray, t0_ns: int, bucket: int) -> dict:
    """Min, max and mean absolute value of raw samples per bucket (empty buckets left out)."""
    idx = (t - t0_ns) // bucket
    uniq, start = np.unique(idx, return_index=True)
    mins = np.minimum.reduceat(v, start) if len(v) else v
    maxs = np.maximum.reduceat(v, start) if len(v) else v
    mav = np.add.reduceat(np.abs(v), start) / np.diff(np.r_[start, len(v)]) if len(v) else v
    return {"t_ns": (t0_ns + uniq * bucket).tolist(), "min": mins.tolist(), "max": maxs.tolist(),
            "mav": mav.tolist(), "pk": None, "bucket_ns": bucket, "source": "raw"}


def _re(label: str) -> str:
    """A channel label as a literal inside an InfluxQL /regex/."""
    return "".join("\\" + ch if ch in "\\.+*?()|[]{}^$/" else ch for ch in label)


def _duration_ns(text: str) -> int:
    """An InfluxQL duration (``30d``, ``720h0m0s``) in ns; 0 for infinite or unreadable."""
    units = {"ns": 1, "u": 10**3, "µ": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
             "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}
    total = 0
    for num, unit in re.findall(r"(\d+)(ns|ms|u|µ|s|m|h|d|w)", str(text)):
        total += int(num) * units[unit]
    return total


def _lit(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace("'", "\\'")


def _iso_ns(iso: str) -> int:
    import datetime as dt

    t = dt.datetime.fromisoformat(iso)
    return int(t.timestamp()) * 10**9 + t.microsecond * 1000
