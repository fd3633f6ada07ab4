"""Wearers spread over two real InfluxDB instances, the map kept with the accounts: the detector
service writes each wearer's frames and night to that wearer's instance only, and the dashboard
reads each wearer's night back through the same map."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from dashboard.services import free_port, start_dashboard, start_influxd
from dashboard.users import Users
from detector.engine.config import DetectorConfig
from detector.service.live import DetectorService
from detector.service.settings import load_services
from detector.store.influx import InfluxStore, StoreSettings
from detector.store.shards import ShardedStore, WearerMap
from ingest.wire.topics import sensor_topic
from tests.live_helpers import virtual_night

pytestmark = pytest.mark.scale
PASSWORD = "shard password 1"


@pytest.fixture()
def second_influxd(tmp_path):
    server = start_influxd(tmp_path / "influxd-b")
    yield server
    server.stop()


def test_each_wearer_lives_on_its_shard_and_every_read_goes_through_the_map(tmp_path, influxd,
                                                                            second_influxd, cli):
    services = tmp_path / "services.toml"
    port = free_port()
    services.write_text(f'[store]\nurl = "http://127.0.0.1:{influxd.port}"\ndatabase = "shards"\n'
                        f'spool_dir = "{tmp_path / "spool"}"\n'
                        f'[store.shards]\nb = "http://127.0.0.1:{second_influxd.port}"\n'
                        f'[service]\nstate_dir = "{tmp_path / "state"}"\n'
                        f'[dashboard]\nport = {port}\nusers_db = "{tmp_path / "users.sqlite"}"\n')
    sv = load_services(services)
    svc = DetectorService(sv, DetectorConfig())
    assert isinstance(svc.store, ShardedStore)
    svc._lock_state_dir()
    svc.store.setup()
    sensors, frames = virtual_night(hours=0.1)
    try:
        # two wearers wearing the same night: the first seen goes to the main instance, the second
        # to the one with fewer wearers (b)
        for wearer in ("w-1", "w-2"):
            for vs in sensors:
                svc.handle(sensor_topic(wearer, vs.sensor, "status"), vs.status().payload())
        for sensor, stream, payload, _ in frames:
            for wearer in ("w-1", "w-2"):
                svc.handle(sensor_topic(wearer, sensor, stream), payload)
        assert svc.flush()
        for wearer in ("w-1", "w-2"):
            assert svc.close_night(wearer) is not None
    finally:
        svc._unlock_state_dir()
        svc.store.close()
    assert WearerMap(tmp_path / "users.sqlite", ["main", "b"]).all() == {"w-1": "main", "w-2": "b"}
    a = InfluxStore(StoreSettings(url=f"http://127.0.0.1:{influxd.port}", database="shards"))
    b = InfluxStore(StoreSettings(url=f"http://127.0.0.1:{second_influxd.port}", database="shards"))
    try:
        samples = 0.1 * 3600 * (2 * 250 + 6 * 25)
        assert a.count_samples("w-1", "emg") + a.count_samples("w-1", "acc") == samples
        assert b.count_samples("w-2", "emg") + b.count_samples("w-2", "acc") == samples
        assert a.count_samples("w-2", "emg") == 0 and b.count_samples("w-1", "emg") == 0
        assert [n["night"] for n in a.nights("w-1")] == ["2026-11-24"] and not a.nights("w-2")
        assert [n["night"] for n in b.nights("w-2")] == ["2026-11-24"] and not b.nights("w-1")
        kinds = Counter(e["kind"] for e in b.events("w-2", "2026-11-24"))
        assert kinds == Counter(e["kind"] for e in a.events("w-1", "2026-11-24")) and kinds
        assert b.sensors("w-2") and not a.sensors("w-2")  # statuses follow the wearer too
    finally:
        a.close()
        b.close()
    # an operator sees the map, puts a new wearer on a shard, and cannot move one with nights
    import subprocess

    def users(*a):
        return subprocess.run([cli, "users", "shard", *a, "--services", str(services)], capture_output=True,
                              text=True, timeout=60)

    assert "w-2: shard b (http://127.0.0.1:" in users("w-2").stdout
    assert "w-5: shard b" in users("w-5", "b").stdout and "w-5: shard b" in users("w-5").stdout
    moved = users("w-1", "b")
    assert moved.returncode != 0 and "already has nights on shard main" in moved.stderr
    # the dashboard reads both wearers' nights, each from its instance
    users = Users(sv.dashboard.users_db)
    users.add("dr-s", PASSWORD, "admin")
    server = start_dashboard(tmp_path, "127.0.0.1", port, services)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            token = c.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
            r = c.post("/login", data={"name": "dr-s", "password": PASSWORD, "csrf": token})
            assert r.status_code == 303
            for wearer in ("w-1", "w-2"):
                page = c.get(f"/w/{wearer}/2026-11-24")
                assert page.status_code == 200 and "2026-11-24" in page.text, (wearer, page.status_code)
            assert c.get("/healthz").json() == {"ok": True, "influxdb": True}
    finally:
        server.stop()


def test_a_shard_the_configuration_no_longer_names_is_an_error_naming_it(tmp_path):
    m = WearerMap(tmp_path / "users.sqlite", ["main", "b"])
    assert m.shard_of("w-1") == "main" and m.shard_of("w-2") == "b" and m.shard_of("w-3") == "main"
    m.assign("w-9", "b")
    with pytest.raises(ValueError, match="no shard 'c'"):
        m.assign("w-9", "c")
    later = WearerMap(tmp_path / "users.sqlite", ["main"])
    with pytest.raises(ValueError, match="w-2 is kept on shard 'b'"):
        later.shard_of("w-2")
    with pytest.raises(ValueError, match="shard name 'main'"):
        StoreSettings(shards={"main": "http://x"})
