"""Samples in the store: raw frames as transmitted (raw retention policy), their per-frame
envelopes and coarser rollups (kept), and the traces the viewer draws from them."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np

from detector.engine.dsp import residual_peak
from detector.store import lineproto
from detector.store.influxql import lit, point, regex_literal
from detector.store.transport import InfluxTransport, StoreError, StoreSettings

RAW_SPAN_NS = 180 * 10**9
ROLLUPS = (("env_1s", 10**9), ("env_10s", 10 * 10**9))  # (measurement, bucket ns), finer first
ROLLUP_CHUNK_NS = 1800 * 10**9  # 30 min of frames per SELECT … INTO (divisible by every level)


class SampleStore(InfluxTransport):
    """Frames in, traces and raw samples out (times in ns, values in µV or g)."""

    def __init__(self, settings: StoreSettings, client: httpx.Client | None = None) -> None:
        super().__init__(settings, client)
        self._keys: dict[tuple[str, str, str, str], tuple[str, str]] = {}
        self._frame_len: dict[tuple[str, str, str], int] = {}

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
                         f"FROM \"{src}\" WHERE \"wearer\" = '{lit(wearer)}' AND time >= {a} AND time < {b} "
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
                    self._q(f"DELETE FROM \"{level}\" WHERE \"wearer\" = '{lit(wearer)}' "
                            f"AND time >= {t0_ns - t0_ns % ROLLUPS[-1][1]} AND time < {t1_ns}", post=True)
                except StoreError:
                    pass  # the store is down: nothing of the partial rollups is read until it is back
            raise

    def sensor_status_line(self, wearer: str, sensor: str, status: dict, at_ns: int) -> str:
        """Line protocol for what a sensor said about itself (state, link, battery %), at ``at_ns``."""
        fields = {k: status.get(k) for k in ("state", "link", "battery_pct", "address")}
        return point("sensor", {"wearer": wearer, "sensor": sensor}, fields, at_ns)

    def sensors(self, wearer: str) -> list[dict]:
        """The last status heard from each of a wearer's sensors: sensor, state, link,
        battery_pct (None when the sensor does not say), address, at_ns."""
        out = []
        for series in self.query(f"SELECT * FROM \"sensor\" WHERE \"wearer\" = '{lit(wearer)}' "
                                 "GROUP BY \"sensor\" ORDER BY time DESC LIMIT 1"):
            for row in series.get("values", []):
                d = dict(zip(series["columns"], row, strict=True))
                out.append({"sensor": series["tags"]["sensor"], "state": d.get("state"),
                            "link": d.get("link"), "battery_pct": d.get("battery_pct"),
                            "address": d.get("address"), "at_ns": d["time"]})
        return sorted(out, key=lambda r: r["sensor"])

    def count_samples(self, wearer: str, stream: str) -> int:
        """Raw samples stored for a wearer's stream (all channels)."""
        rows = self._rows(f"SELECT SUM(\"n\") FROM \"{self.s.raw_rp}\".\"{stream}\" WHERE "
                          f"\"wearer\" = '{lit(wearer)}'")
        return int(rows[0][1]) if rows else 0

    def value_range(self, wearer: str, t0_ns: int, t1_ns: int) -> dict[str, tuple[float, float]]:
        """Smallest and largest sample (µV or g) of each channel in [t0, t1), from the frames'
        envelopes (one aggregate query, no raw samples read)."""
        q = (f"SELECT MIN(\"min\"), MAX(\"max\") FROM \"env\" WHERE \"wearer\" = '{lit(wearer)}' "
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
        """Raw samples of several channels of one stream in [t0, t1), in one query: label ->
        (times ns, values in µV or g)."""
        out = {}
        for c, f in self.raw_frames_of(wearer, channels, stream, t0_ns, t1_ns).items():
            t = f.times()
            keep = (t >= t0_ns) & (t < t1_ns)
            out[c] = (t[keep], f.values[keep])
        return out

    def raw_frames_of(self, wearer: str, channels: list[str], stream: str, t0_ns: int,
                      t1_ns: int) -> dict[str, Frames]:
        """The stored frames of several channels of one stream that hold samples of [t0, t1)
        (the first may start before t0), in one query: label -> Frames."""
        before = 2 * max(self._frame_ns(wearer, c, stream) for c in channels)  # the frame holding t0
        names = "|".join(map(regex_literal, channels))
        q = (f"SELECT \"data\", \"enc\", \"scale\", \"fs\" FROM \"{self.s.raw_rp}\".\"{stream}\" "
             f"WHERE \"wearer\" = '{lit(wearer)}' AND \"channel\" =~ /^({names})$/ "
             f"AND time >= {t0_ns - before} AND time < {t1_ns} GROUP BY \"channel\"")
        out = {c: Frames.decode([]) for c in channels}
        for series in self.query(q, compressed=False):
            out[series["tags"]["channel"]] = Frames.decode(series.get("values", []))
        return out

    def frame_format(self, wearer: str, channel: str, stream: str, t0_ns: int,
                     t1_ns: int) -> tuple[str, float, float] | None:
        """(encoding, scale, rate Hz) shared by every stored frame of a channel in [t0, t1), or
        None when they differ (or there are none). Two small aggregate queries: a reader that
        knows them can ask for the samples alone (:meth:`raw_frames_uniform`)."""
        where = (f"FROM \"{self.s.raw_rp}\".\"{stream}\" WHERE \"wearer\" = '{lit(wearer)}' AND "
                 f"\"channel\" = '{lit(channel)}' AND time >= {t0_ns} AND time < {t1_ns}")
        agg = self._rows(f"SELECT MIN(\"scale\"), MAX(\"scale\"), MIN(\"fs\"), MAX(\"fs\") {where}")
        encs = {row[1] for row in self._rows(f"SELECT DISTINCT(\"enc\") {where}")}
        if not agg or len(encs) != 1 or agg[0][1] != agg[0][2] or agg[0][3] != agg[0][4]:
            return None
        return str(encs.pop()), float(agg[0][1]), float(agg[0][3])

    def raw_frames_uniform(self, wearer: str, channel: str, stream: str, t0_ns: int, t1_ns: int,
                           fmt: tuple[str, float, float]) -> Frames:
        """The stored frames of one channel holding samples of [t0, t1) (the first may start
        before t0) whose :meth:`frame_format` is ``fmt``: the samples column alone is read, about
        half of InfluxDB's work for the four columns of :meth:`raw_frames_of`."""
        before = 2 * self._frame_ns(wearer, channel, stream)
        q = (f"SELECT \"data\" FROM \"{self.s.raw_rp}\".\"{stream}\" WHERE \"wearer\" = '{lit(wearer)}' "
             f"AND \"channel\" = '{lit(channel)}' AND time >= {t0_ns - before} AND time < {t1_ns}")
        rows = [row for series in self.query(q, compressed=False) for row in series.get("values", [])]
        return Frames.decode_uniform(rows, *fmt)

    def raw_frames(self, wearer: str, stream: str, t0_ns: int, t1_ns: int,
                   chunk_ns: int = 600 * 10**9):
        """The stored frames of a wearer's stream in [t0, t1), as transmitted, oldest first, read
        ``chunk_ns`` at a time: (sensor, first sample, time ns, rate Hz, labels, scales, raw
        (n, channels)). To analyse a stored night again (late frames reopen it)."""
        for a in range(t0_ns, t1_ns, chunk_ns):
            src = f"\"{self.s.raw_rp}\".\"{stream}\""
            q = (f"SELECT \"data\", \"enc\", \"first\", \"fs\", \"scale\" FROM {src} "
                 f"WHERE \"wearer\" = '{lit(wearer)}' AND time >= {a} AND time < {min(t1_ns, a + chunk_ns)} "
                 "GROUP BY \"sensor\", \"channel\"")
            frames: dict[tuple[str, int], dict] = {}
            for series in self.query(q, compressed=False):
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
                              f"\"wearer\" = '{lit(wearer)}' AND \"channel\" = '{lit(channel)}'")
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
        pool = self.read_pool()
        for part in pool.map(lambda g: self._env_traces(wearer, g[0], t0_ns, t1_ns, g[1]), groups):
            out |= part
        by_stream: dict[str, list[str]] = {}
        for c in channels:
            if c not in out:
                by_stream.setdefault(channels[c], []).append(c)
        pad = pad_ns if filters else 0
        for got in pool.map(lambda kv: self.raw_many(wearer, kv[1], kv[0], t0_ns - pad, t1_ns + pad),
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

    def _env_traces(self, wearer: str, chans: list[str], t0_ns: int, t1_ns: int, bucket: int) -> dict:
        """Envelope traces of some channels from the coarsest stored level that still resolves a
        bucket (far fewer points to scan); buckets start at t0, so the first is the first pixel."""
        who = f"\"wearer\" = '{lit(wearer)}' AND \"channel\" =~ /^({'|'.join(map(regex_literal, chans))})$/"
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


@dataclass(frozen=True)
class Frames:
    """Stored raw frames of one channel, oldest first: each frame's time (ns), sample count and
    rate (Hz), and all their samples in one array (µV or g)."""

    t_ns: np.ndarray  # int64, per frame
    n: np.ndarray  # int64, per frame
    fs: np.ndarray  # float64, per frame
    values: np.ndarray  # float32, per sample

    @classmethod
    def decode(cls, rows: list[list]) -> Frames:
        """From query rows of (time ns, data, enc, scale, fs).

        Decoded all at once rather than frame by frame: an 8-hour night is ~300,000 frames, and
        a Python loop over them cost more than InfluxDB's whole query."""
        if not rows:
            z = np.zeros(0, np.int64)
            return cls(z, z, np.zeros(0), np.zeros(0, np.float32))
        t0, data, enc, scale, fs = zip(*rows, strict=True)
        if len(set(enc)) == 1:  # the usual case: one encoding, decoded as one buffer
            blobs = [binascii.a2b_base64(d) for d in data]
            size = 2 if enc[0] == "i16" else 4
            n = np.fromiter((len(b) // size for b in blobs), np.int64, len(blobs))
            x = np.frombuffer(b"".join(blobs), "<i2" if size == 2 else "<f4").astype(np.float32)
        else:
            parts = [np.frombuffer(binascii.a2b_base64(d), "<i2" if e == "i16" else "<f4")
                     for d, e in zip(data, enc, strict=True)]
            n = np.fromiter((len(p) for p in parts), np.int64, len(parts))
            x = np.concatenate([p.astype(np.float32) for p in parts])
        sc = np.asarray(scale, np.float32)
        if (sc == sc[0]).all():
            x *= sc[0]
        else:
            x *= np.repeat(sc, n)
        return cls(np.asarray(t0, np.int64), n, np.asarray(fs, np.float64), x)

    @classmethod
    def decode_uniform(cls, rows: list[list], enc: str, scale: float, fs: float) -> Frames:
        """From query rows of (time ns, data) whose frames share ``enc``, ``scale`` and ``fs``."""
        if not rows:
            return cls.decode([])
        t0, data = zip(*rows, strict=True)
        blobs = [binascii.a2b_base64(d) for d in data]
        size = 2 if enc == "i16" else 4
        n = np.fromiter((len(b) // size for b in blobs), np.int64, len(blobs))
        x = np.frombuffer(b"".join(blobs), "<i2" if size == 2 else "<f4").astype(np.float32)
        x *= np.float32(scale)
        return cls(np.asarray(t0, np.int64), n, np.full(len(n), float(fs)), x)

    def within(self) -> np.ndarray:
        """Each sample's index within its frame (int64)."""
        return np.arange(len(self.values), dtype=np.int64) - np.repeat(np.cumsum(self.n) - self.n, self.n)

    def times(self) -> np.ndarray:
        """Each sample's time (ns): its frame's time plus its index over the frame's rate."""
        if not len(self.n):
            return np.zeros(0, np.int64)
        k = self.within()
        if (self.fs == self.fs[0]).all():
            off = np.round(k * (1e9 / self.fs[0])).astype(np.int64)
        else:
            off = np.round(k * np.repeat(1e9 / self.fs, self.n)).astype(np.int64)
        return np.repeat(self.t_ns, self.n) + off

    def positions(self, origin_ns: int, fs: float) -> np.ndarray:
        """Each sample's index on a grid of ``fs`` Hz starting at ``origin_ns`` (the frame's first
        sample placed by its time, the others following it): what a file export needs, without
        a time per sample."""
        p0 = np.round((self.t_ns - origin_ns) * (fs / 1e9)).astype(np.int64)
        # each frame's first position minus its first sample's index, plus the sample index
        first = np.cumsum(self.n) - self.n
        return np.repeat(p0 - first, self.n) + np.arange(len(self.values), dtype=np.int64)


def _raw_buckets(t: np.ndarray, v: np.ndarray, t0_ns: int, bucket: int) -> dict:
    """Min, max and mean absolute value of raw samples per bucket (empty buckets left out)."""
    idx = (t - t0_ns) // bucket
    uniq, start = np.unique(idx, return_index=True)
    mins = np.minimum.reduceat(v, start) if len(v) else v
    maxs = np.maximum.reduceat(v, start) if len(v) else v
    mav = np.add.reduceat(np.abs(v), start) / np.diff(np.r_[start, len(v)]) if len(v) else v
    return {"t_ns": (t0_ns + uniq * bucket).tolist(), "min": mins.tolist(), "max": maxs.tolist(),
            "mav": mav.tolist(), "pk": None, "bucket_ns": bucket, "source": "raw"}
