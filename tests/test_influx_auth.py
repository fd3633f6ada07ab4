"""InfluxDB as the stack sets it up (a real influxd with authentication on): strangers can
neither read nor write, each program works with its own user, the reader cannot write, and
the backup port listens on loopback only."""

from __future__ import annotations

import json

import httpx
import pytest

from dashboard import influx_auth
from dashboard.services import start_influxd
from detector.store.accounts import ROLES, settings_for
from detector.store.influx import InfluxStore, StoreError, StoreSettings


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("influxauth")
    server = start_influxd(tmp / "influxdb", auth=True)
    url = f"http://127.0.0.1:{server.port}"
    cdir = tmp / "secrets"
    influx_auth.provision(url, cdir, "nightcramp", "raw", "30d")
    influx_auth.provision(url, cdir, "nightcramp", "raw", "30d")  # again: nothing changes, no error
    base = StoreSettings(url=url, database="nightcramp", credentials_dir=cdir, retries=0)
    yield server, base, tmp
    server.stop()


def test_strangers_can_neither_read_nor_write(secured):
    _, base, _ = secured
    url = base.url
    r = httpx.get(f"{url}/query", params={"q": "SHOW DATABASES"})
    assert r.status_code == 401
    r = httpx.post(f"{url}/write", params={"db": "nightcramp"}, content="event,wearer=x start_s=1 1")
    assert r.status_code == 401
    r = httpx.post(f"{url}/query", data={"q": "DROP DATABASE nightcramp"}, auth=("nc_detector", "guess"))
    assert r.status_code == 401
    anon = InfluxStore(base)  # the settings without a role: no user
    try:
        with pytest.raises(StoreError, match=r"401|authoriz"):
            anon.nights("sim-1")
    finally:
        anon.close()


def test_each_program_works_with_its_own_user_and_the_reader_only_reads(secured, night_analysis):
    _, base, _ = secured
    det = InfluxStore(settings_for(base, "detector"))
    dash = InfluxStore(settings_for(base, "dashboard"))
    reader = InfluxStore(settings_for(base, "reader"))
    try:
        assert det.s.username == ROLES["detector"][0] and det.s.password == ""  # read from its file
        det.setup()  # not an admin: finds the database and policy the stack made
        obj = json.loads(json.dumps(night_analysis.to_json()))
        assert det.write_analysis("sim-1", "2026-11-24", obj)
        assert dash.write_review("sim-1", "2026-11-24", {"event": "e", "action": "reject", "by": "dr",
                                                         "at": "2026-11-25T08:00:00+00:00"})
        assert len(reader.events("sim-1", "2026-11-24")) == len(obj["events"])
        assert len(reader.reviews("sim-1", "2026-11-24")) == 1
        with pytest.raises(StoreError, match=r"403|authoriz"):
            reader.write_review("sim-1", "2026-11-24", {"event": "e", "action": "accept", "by": "x",
                                                        "at": "2026-11-25T09:00:00+00:00"})
        with pytest.raises(StoreError):
            det._q('DROP DATABASE "nightcramp"', post=True, db=None)  # no admin rights
        assert reader.nights("sim-1")
    finally:
        for s in (det, dash, reader):
            s.close()


def test_secrets_are_private_and_the_backup_port_is_loopback_only(secured):
    _, base, tmp = secured
    for f in base.credentials_dir.glob("influx-*.secret"):
        assert f.stat().st_mode & 0o777 == 0o600
    conf = (tmp / "influxdb" / "influxdb.conf").read_text()
    rpc = conf.split("bind-address = ")[1].splitlines()[0].strip('"')
    assert rpc.startswith("127.0.0.1:")
    assert "auth-enabled = true" in conf
