"""End to end with real servers: virtual sensors -> Mosquitto -> `nightcramp detect` -> InfluxDB.

The events stored from the live night equal `nightcramp analyze` of the same night as an EDF
file, every sample sent is stored once, real MQTT clients see the documented topics and
Debian's `influx` CLI can query the measurements.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from dashboard.services import free_port
from detector.engine.config import DetectorConfig
from detector.engine.cramp_evidence import decidable_after_s
from detector.service.settings import load_services
from detector.store.influx import InfluxStore
from tests.conftest import grafana_metrics
from tests.live_helpers import close_night_and_wait, start_detector, start_subscriber, wait_for_line

HOURS, SEED, FS_EMG, FS_ACC = 1.0, 41, 250, 25
NIGHT = ["--hours", str(HOURS), "--seed", str(SEED), "--fs-emg", str(FS_EMG), "--fs-acc", str(FS_ACC),
         "--cramps-per-night", "24"]


def _services_file(tmp: Path, mosquitto, influxd, silence: float = 3.0, metrics_port: int = 0) -> Path:
    p = tmp / "services.toml"
    p.write_text(f"[mqtt]\nport = {mosquitto.port}\nclient_id = \"det-{tmp.name}\"\n"
                 f"[store]\nurl = \"http://127.0.0.1:{influxd.port}\"\ndatabase = \"e2e_{tmp.name[-8:]}\"\n"
                 f"spool_dir = \"{tmp / 'spool'}\"\n"
                 f"[service]\nnight_close_silence_s = {silence}\ntick_s = 0.5\nreorder_s = 3600\n"
                 f"state_dir = \"{tmp / 'state'}\"\nmetrics_port = {metrics_port}\n")
    return p


@pytest.fixture(scope="module")
def live_night(tmp_path_factory, mosquitto, influxd, cli):
    tmp = tmp_path_factory.mktemp("live")
    mport = free_port()
    services = _services_file(tmp, mosquitto, influxd, silence=3600, metrics_port=mport)
    seen = start_subscriber(mosquitto.port, tmp / "seen.txt", "nightcramp/v1/+/events",
                            "nightcramp/v1/+/+/status")
    det = None
    store = InfluxStore(load_services(services).store)
    try:
        det = start_detector(cli, services, tmp / "detector.log")
        pub = subprocess.run([cli, "simulate", str(tmp / "truth"), "--live", *NIGHT, "--speed", "3600",
                              "--frame-s", "0.5", "--services", str(services)],
                             capture_output=True, text=True, timeout=600)
        assert pub.returncode == 0, pub.stderr
        sent = json.loads(pub.stdout.strip().splitlines()[-1])
        metrics = _scrape_until(mport, lambda m: m.get("nightcramp_detector_open_nights") == 1.0
                                and m.get("nightcramp_detector_frames_total", 0) > 0)
        close_night_and_wait(cli, services, store)
        # The last message the subscriber must see is the detector's night_closed event.
        wait_for_line(tmp / "seen.txt", '"kind": "night_closed"')
        det.send_signal(signal.SIGTERM)
        det.wait(timeout=60)
        det_err = (tmp / "detector.log").read_text()
    except BaseException:
        store.close()
        raise
    finally:
        for proc in (det, seen):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    seen_out = (tmp / "seen.txt").read_text()
    edf = tmp / "night.edf"
    r = subprocess.run([cli, "simulate", str(edf), *NIGHT], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    offline = json.loads(subprocess.run([cli, "analyze", str(edf), "--json"], capture_output=True,
                                        text=True, check=True).stdout)
    yield {"store": store, "sent": sent, "det_err": det_err, "seen": seen_out, "offline": offline,
           "services": services, "influxd": influxd, "metrics": metrics}
    store.close()


def _scrape_until(port: int, ok, timeout_s: float = 120.0) -> dict:
    """The detector's /metrics parsed (name{labels} -> value) once ``ok`` holds for them."""
    import time

    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    deadline, m = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            text = ""
        m = {}
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                lab = ",".join(f"{k}={v}" for k, v in sorted(smp.labels.items()))
                m[smp.name + (f"{{{lab}}}" if lab else "")] = smp.value
        if m and ok(m):
            return m
        time.sleep(0.2)
    raise AssertionError(f"metrics never matched: {m}")


def test_the_detector_serves_prometheus_metrics(live_night):
    m = live_night["metrics"]
    assert m["nightcramp_detector_frames_total"] > 0
    assert m["nightcramp_detector_counts_total{what=frames}"] == m["nightcramp_detector_frames_total"]
    assert m["nightcramp_detector_open_nights"] == 1.0
    assert m["nightcramp_detector_spool_full"] == 0.0 and "nightcramp_detector_spool_files" in m
    assert any(k.startswith("nightcramp_detector_lag_seconds{wearer=") for k in m)
    # Every detector metric the Grafana dashboard in docs/ queries is served.
    names = {k.split("{")[0] for k in m}
    wanted = set(grafana_metrics("nightcramp_detector"))
    assert wanted and wanted <= names, wanted - names


def _key(e):
    return (e["kind"], round(e["start_s"], 3), round(e["end_s"], 3), e.get("side") or "none",
            e.get("subtype") or "")


def test_live_events_equal_the_offline_analysis(live_night):
    stored = live_night["store"].events("sim-1", "2026-11-24")
    offline = live_night["offline"]["events"]
    assert len(offline) > 20 and any(e["kind"] == "cramp" for e in offline)
    assert sorted(_key(e) for e in stored) == sorted(_key(e) for e in offline)
    night = live_night["store"].nights("sim-1")[0]["summary"]
    assert night["cramps"] == live_night["offline"]["summary"]["cramps"]
    assert night["awakenings"] == live_night["offline"]["summary"]["awakenings"]
    # Advice links: no history or diary yet, so the same rules as the file's analysis.
    stored_advice = [a["rule"] for a in live_night["store"].advice("sim-1", "2026-11-24")]
    assert stored_advice and stored_advice == [a["rule"] for a in live_night["offline"]["advice"]]


def test_every_sample_sent_is_stored_once(live_night):
    store = live_night["store"]
    stored = store.count_samples("sim-1", "emg") + store.count_samples("sim-1", "acc")
    assert stored == live_night["sent"]["samples"] == int(HOURS * 3600 * (2 * FS_EMG + 6 * FS_ACC))
    stats = json.loads(live_night["det_err"].strip().splitlines()[-1])["stats"]
    assert stats["frames"] == live_night["sent"]["frames"]
    assert not [k for k in stats if k.startswith("malformed")]


def test_real_mqtt_client_sees_documented_topics(live_night):
    lines = live_night["seen"].splitlines()
    status = [ln for ln in lines if ln.startswith("nightcramp/v1/sim-1/left-shank/status ")]
    assert status and json.loads(status[0].split(" ", 1)[1])["channels"]["emg"] == ["EMG L-Gastroc"]
    events = [json.loads(ln.split(" ", 1)[1]) for ln in lines if ln.startswith("nightcramp/v1/sim-1/events ")]
    cramps = [e for e in events if e.get("kind") == "cramp"]
    assert cramps and cramps[0]["wearer"] == "sim-1" and cramps[0]["night"] == "2026-11-24"
    assert any(e.get("kind") == "night_closed" for e in events)


def test_cramps_are_announced_within_2_s_of_meeting_the_criteria(live_night):
    """A suspected cramp goes out while it lasts; the final decision confirms or retracts it."""
    cfg = DetectorConfig()
    lines = live_night["seen"].splitlines()
    msgs = [json.loads(ln.split(" ", 1)[1]) for ln in lines if ln.startswith("nightcramp/v1/sim-1/events ")]
    finals = [m for m in msgs if m.get("kind") == "cramp" and not m.get("provisional")]
    alerts = [m for m in msgs if m.get("provisional")]
    assert finals  # per-cramp statistics over more nights: tests/test_cramp_alerts.py
    for c in finals:
        # Criteria met: onset plus the shortest duration the evidence seen so far allows.
        need = decidable_after_s(c["features"], cfg)
        mine = [a for a in alerts
                if a["channel"] == c["channel"] and c["start_s"] - 2 <= a["start_s"] <= c["end_s"]]
        if need is None:  # a cramp only for what the wearer did afterwards: no alert is due
            continue
        suspected = [a for a in mine if a["status"] == "suspected"]
        assert len(suspected) == 1, f"cramp at {c['start_s']} s: alerts {mine}"
        a = suspected[0]
        assert c["start_s"] + cfg.cramp.min_duration_s <= a["met_at_s"] <= c["start_s"] + need + 2.0
        assert a["decided_at_s"] == a["met_at_s"] and a["wearer"] == "sim-1" and a["night"] == "2026-11-24"
        assert msgs.index(a) < msgs.index(c)
        assert [x["status"] for x in mine] == ["suspected", "confirmed"]
    settled = [a for a in alerts if a["status"] != "suspected"]
    assert len(settled) == len([a for a in alerts if a["status"] == "suspected"])


def test_influx_cli_can_query_the_measurements(live_night):
    s = load_services(live_night["services"]).store
    out = subprocess.run(["influx", "-host", "127.0.0.1", "-port", str(live_night["influxd"].port),
                          "-database", s.database, "-format", "json", "-execute",
                          "SELECT count(\"start_s\") FROM \"event\" WHERE \"kind\" = 'cramp'"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    values = json.loads(out.stdout)["results"][0]["series"][0]["values"]
    assert values[0][1] == sum(1 for e in live_night["offline"]["events"] if e["kind"] == "cramp")
    out = subprocess.run(["influx", "-host", "127.0.0.1", "-port", str(live_night["influxd"].port),
                          "-database", s.database, "-execute", "SHOW MEASUREMENTS"],
                         capture_output=True, text=True, timeout=30)
    assert {"event", "night"} <= set(out.stdout.split())


def test_night_close_command_closes_the_night(tmp_path, mosquitto, influxd, cli):
    services = _services_file(tmp_path, mosquitto, influxd, silence=3600)
    det = start_detector(cli, services, tmp_path / "detector.log")
    store = InfluxStore(load_services(services).store)
    try:
        pub = subprocess.run([cli, "simulate", str(tmp_path / "truth"), "--live", "--hours", "0.1", "--seed",
                              "3", "--speed", "3600", "--fs-emg", "250", "--fs-acc", "25", "--services",
                              str(services)], capture_output=True, text=True, timeout=300)
        assert pub.returncode == 0, pub.stderr
        assert store.nights("sim-1") == [], "an hour of silence has not passed"
        close_night_and_wait(cli, services, store)
        assert store.nights("sim-1")[0]["summary"]["time_in_bed_s"] == pytest.approx(360.0, abs=1)
    finally:
        det.send_signal(signal.SIGTERM)
        det.wait(timeout=30)
        store.close()


def test_malformed_frames_are_counted_and_the_service_keeps_running(tmp_path, mosquitto, influxd, cli):
    import paho.mqtt.client as mqtt

    services = _services_file(tmp_path, mosquitto, influxd, silence=60)
    det = start_detector(cli, services, tmp_path / "detector.log")
    try:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.connect("127.0.0.1", mosquitto.port)
        c.loop_start()
        for payload in (b"garbage", b"NC\x09" + b"\x00" * 60, b""):
            c.publish("nightcramp/v1/w-x/s-1/emg", payload, qos=1).wait_for_publish(5)
        c.publish("nightcramp/v1/Bad Name/s-1/emg", b"x", qos=1).wait_for_publish(5)
        c.loop_stop()
        c.disconnect()
        # One publisher's messages arrive in order: once the last is logged, all were handled.
        wait_for_line(tmp_path / "detector.log", "topic 'nightcramp/v1/Bad Name/s-1/emg'", proc=det)
        assert det.poll() is None, "the service must survive malformed input"
    finally:
        det.send_signal(signal.SIGTERM)
        det.wait(timeout=30)
    err = (tmp_path / "detector.log").read_text()
    stats = json.loads(err.strip().splitlines()[-1])["stats"]
    assert "malformed frame on w-x/s-1/emg: truncated" in err
    assert stats.get("malformed: truncated", 0) >= 2
    assert stats.get("malformed: unknown frame version", 0) == 1  # keys without values: bounded
    assert stats.get("bad_id", 0) == 1


def test_each_sensors_last_status_is_stored_for_the_clinician(live_night):
    sensors = live_night["store"].sensors("sim-1")
    assert [s["sensor"] for s in sensors] == ["left-shank", "right-shank"]
    assert all(s["battery_pct"] == 100 and s["link"] == "simulated" and s["at_ns"] > 0 for s in sensors)
