"""The InfluxDB store against a real InfluxDB (started by the fixture on a free port)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from dashboard.services import free_port
from detector.store.influx import InfluxStore, StoreError, StoreSettings


@pytest.fixture()
def store(make_store):
    return make_store("t")


def test_setup_is_idempotent_and_creates_the_raw_policy(store):
    store.setup()
    rps = {r[0]: r[1] for s in store.query(f'SHOW RETENTION POLICIES ON "{store.s.database}"')
           for r in s["values"]}
    assert rps["raw"] == "720h0m0s"


def test_analysis_rows_and_no_duplicates_on_rewrite(store, night_analysis):
    obj = json.loads(json.dumps(night_analysis.to_json()))
    assert store.write_analysis("w-1", "2026-11-24", obj)
    assert store.write_analysis("w-1", "2026-11-24", obj)  # analysed again: replaced, not doubled
    events = store.events("w-1", "2026-11-24")
    assert len(events) == len(obj["events"])
    cramps = [e for e in events if e["kind"] == "cramp"]
    assert len(cramps) == night_analysis.summary.cramps
    assert cramps[0]["features"]["median_ratio"] > 1.5
    nights = store.nights("w-1")
    assert len(nights) == 1 and nights[0]["summary"]["cramps"] == night_analysis.summary.cramps
    assert store.events("w-2", "2026-11-24") == []


def _write_frames(store, t0, seconds=600, fs=1000, frame_s=1.0, wearer="w-1"):
    per = int(fs * frame_s)
    for k in range(int(seconds / frame_s)):
        i = np.arange(k * per, (k + 1) * per)
        raw = np.stack([np.round(np.sin(i / 50.0) * 1000), i % 7], axis=1).astype(np.int16)
        assert store.write_frame(wearer, "left-shank", "emg", ["EMG L-Gastroc", "EMG L-TibAnt"], raw,
                                 (0.1, 1.0), float(fs), k * per, t0 + k * per * 1_000_000)


def test_traces_use_the_envelope_down_to_the_frame_length(store):
    t0 = (time.time_ns() // 10**9 - 7200) * 10**9
    _write_frames(store, t0, seconds=60, frame_s=0.1, wearer="w-5")  # sensors send 0.1-s frames
    env = store.trace("w-5", "EMG L-Gastroc", "emg", t0, t0 + 60 * 10**9, points=300)  # 0.2-s buckets
    raw = store.trace("w-5", "EMG L-Gastroc", "emg", t0, t0 + 10 * 10**9, points=300)  # 33 ms buckets
    assert env["source"] == "envelope" and 250 <= len(env["t_ns"]) <= 300
    assert raw["source"] == "raw" and len(raw["t_ns"]) <= 300


def test_raw_frames_overwrite_themselves_and_downsample(store):
    t0 = (time.time_ns() // 10**9 - 3600) * 10**9
    _write_frames(store, t0)
    _write_frames(store, t0)  # redelivered: the same keys, nothing doubled
    assert store.count_samples("w-1", "emg") == 2 * 600 * 1000
    t, v = store.raw("w-1", "EMG L-Gastroc", "emg", t0 + 10**9, t0 + 2 * 10**9)
    assert len(t) == 1000 and t[0] == t0 + 10**9
    np.testing.assert_allclose(v, np.round(np.sin(np.arange(1000, 2000) / 50.0) * 1000) * np.float32(0.1),
                               rtol=1e-6)
    whole = store.trace("w-1", "EMG L-Gastroc", "emg", t0, t0 + 600 * 10**9, points=300)
    zoom = store.trace("w-1", "EMG L-Gastroc", "emg", t0, t0 + 2 * 10**9, points=400)
    assert whole["source"] == "envelope" and zoom["source"] == "raw"
    assert len(whole["t_ns"]) <= 300 and len(zoom["t_ns"]) <= 400
    assert max(whole["max"]) == pytest.approx(100.0) and min(whole["min"]) == pytest.approx(-100.0)
    assert max(zoom["max"]) == pytest.approx(100.0, abs=0.2)
    # coarser levels, built inside InfluxDB, give the same extremes from far fewer points
    assert whole["level"] == "env"
    store.build_rollups("w-1", t0, t0 + 600 * 10**9)
    for points, level in ((30, "env_10s"), (300, "env_1s")):
        tr = store.trace("w-1", "EMG L-Gastroc", "emg", t0, t0 + 600 * 10**9, points=points)
        assert tr["level"] == level and len(tr["t_ns"]) == points
        assert max(tr["max"]) == pytest.approx(100.0) and min(tr["min"]) == pytest.approx(-100.0)
    assert store.count_samples("w-1", "emg") == 2 * 600 * 1000  # raw untouched
    # EMG frames also keep their peak without wander and hum: a slow 3-Hz sine leaves little
    tr = store.trace("w-1", "EMG L-Gastroc", "emg", t0, t0 + 600 * 10**9, points=30)
    assert tr["pk"] is not None and 0 < max(tr["pk"]) < 0.2 * max(tr["max"])


def test_rollups_are_built_in_chunks_and_a_failed_chunk_leaves_none(store, monkeypatch):
    t0 = (time.time_ns() // 10**9 - 7200) * 10**9
    _write_frames(store, t0)
    store.build_rollups("w-1", t0, t0 + 600 * 10**9, chunk_ns=120 * 10**9)
    tr = store.trace("w-1", "EMG L-Gastroc", "emg", t0, t0 + 600 * 10**9, points=300)
    assert tr["level"] == "env_1s" and len(tr["t_ns"]) == 300  # no hole at a chunk's edge
    calls = []
    real = store._q

    def flaky(q, **kw):  # the third chunk of the 1-s level times out every time
        if " INTO " in q:
            calls.append(q)
            if len(calls) >= 3:
                raise StoreError("InfluxDB unreachable: timed out")
        return real(q, **kw)

    monkeypatch.setattr(store, "_q", flaky)
    t1 = t0 - 3600 * 10**9
    _write_frames(store, t1)
    with pytest.raises(StoreError, match="timed out"):
        store.build_rollups("w-1", t1, t1 + 600 * 10**9, chunk_ns=120 * 10**9, tries=2)
    assert len(calls) == 2 + 2  # two chunks done, the third tried twice
    monkeypatch.undo()
    # what was built is taken away again: the whole span is drawn from the per-frame envelope
    tr = store.trace("w-1", "EMG L-Gastroc", "emg", t1, t1 + 600 * 10**9, points=300)
    assert tr["level"] == "env" and len(tr["t_ns"]) == 300


def test_unreachable_server_spools_and_flushes_later(influxd, tmp_path):
    spool = tmp_path / "spool"
    down = InfluxStore(StoreSettings(url=f"http://127.0.0.1:{free_port()}", database="t_spool",
                                     spool_dir=spool, retries=1, backoff_s=0.01))
    raw = np.ones((5, 1), np.int16)
    assert down.write_frame("w-9", "s", "acc", ["ACC L-Shank X"], raw, (0.001,), 50.0, 0,
                            time.time_ns() - 10**9) is False
    assert down.spooled() == 2
    up = InfluxStore(StoreSettings(url=f"http://127.0.0.1:{influxd.port}", database="t_spool",
                                   spool_dir=spool))
    up.setup()
    assert up.flush_spool() == 2 and up.spooled() == 0
    assert up.count_samples("w-9", "acc") == 5
    down.close()
    up.close()


def test_samples_older_than_retention_are_dropped_not_an_error(store):
    old = 1_500_000_000 * 10**9
    assert store.write_frame("w-3", "s", "emg", ["EMG L-Gastroc"], np.ones((3, 1), np.int16), (1.0,),
                             100.0, 0, old)
    assert store.count_samples("w-3", "emg") == 0 and store.spooled() == 0


def test_bad_data_is_refused_with_the_servers_reason(store):
    with pytest.raises(StoreError, match="refused the write"):
        store.write("not line protocol at all")
    assert store.spooled() == 0


def test_basic_auth_against_an_auth_enabled_influxdb(tmp_path):
    import httpx

    from dashboard.services import start_influxd

    server = start_influxd(tmp_path / "influx-auth", auth=True)
    try:
        url = f"http://127.0.0.1:{server.port}"
        # With no user yet, InfluxDB 1.x accepts creating the first admin.
        create = "CREATE USER nc WITH PASSWORD 'night-s3cret' WITH ALL PRIVILEGES"
        r = httpx.post(f"{url}/query", data={"q": create})
        assert r.status_code == 200, r.text
        anon = InfluxStore(StoreSettings(url=url, database="t_auth", retries=0))
        with pytest.raises(StoreError, match=r"401|authorization"):
            anon.setup()
        anon.close()
        ok = InfluxStore(StoreSettings(url=url, database="t_auth", auth="basic", username="nc",
                                       password="night-s3cret"))
        ok.setup()
        ts = time.time_ns() - 10**9
        assert ok.write_frame("w-1", "s", "acc", ["ACC L-Shank X"], np.ones((5, 1), np.int16), (0.001,),
                              50.0, 0, ts)
        assert ok.count_samples("w-1", "acc") == 5
        ok.close()
    finally:
        server.stop()


def test_a_channel_of_one_frame_format_is_read_as_its_samples_alone_and_a_mixed_one_is_not(store):
    """The EDF+ export reads a channel whose frames share encoding, scale and rate through the
    samples column only; the samples must be exactly those of the full read, and a channel whose
    scale changes mid-night (a sensor re-configured) must be read with every frame's own scale."""
    t0 = (time.time_ns() // 10**9 - 5400) * 10**9
    _write_frames(store, t0, seconds=20, frame_s=0.1, wearer="w-7")
    for k in range(20):  # 2 s of 0.1-s frames; the scale doubles half-way, then float samples
        raw = np.full((100, 1), k + 1, np.int16 if k < 15 else np.float32)
        assert store.write_frame("w-7", "right-shank", "emg", ["EMG R-Gastroc"], raw,
                                 (0.5 if k < 10 else 1.0,), 1000.0, k * 100, t0 + k * 100 * 1_000_000)
    t1 = t0 + 20 * 10**9
    fmt = store.frame_format("w-7", "EMG L-Gastroc", "emg", t0, t1)
    assert fmt == ("i16", pytest.approx(0.1), 1000.0)
    alone = store.raw_frames_uniform("w-7", "EMG L-Gastroc", "emg", t0 + 5 * 10**9, t1, fmt)
    full = store.raw_frames_of("w-7", ["EMG L-Gastroc"], "emg", t0 + 5 * 10**9, t1)["EMG L-Gastroc"]
    assert len(alone.values) == len(full.values) >= 15_000
    assert np.array_equal(alone.values, full.values) and np.array_equal(alone.t_ns, full.t_ns)
    assert store.frame_format("w-7", "EMG R-Gastroc", "emg", t0, t1) is None  # two scales, two encodings
    mixed = store.raw_frames_of("w-7", ["EMG R-Gastroc"], "emg", t0, t1)["EMG R-Gastroc"]
    assert mixed.values[0] == 0.5 and mixed.values[1000] == 11.0 and mixed.values[1500] == 16.0
