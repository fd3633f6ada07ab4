"""The dashboard as an attacker meets it (a real server, a real InfluxDB, Debian's Chromium):
security headers, a login that slows down guessing, hostile stored strings shown as text with
no script run, malformed requests answered 4xx (never 500), HTML error pages, and 503 while
InfluxDB is down."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.sample_night import store_simulated_night
from dashboard.services import free_port, start_dashboard
from dashboard.users import Users
from dashboard.web.security import LoginLimiter
from detector.service.settings import load_services
from detector.store.influx import InfluxStore
from ingest.simulate import NightOptions

PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<img src=x onerror="window.__xss=1">"><script>window.__xss=2</script>'


def _services(tmp: Path, influx_port: int, port: int, db: str) -> Path:
    p = tmp / "services.toml"
    p.write_text(f"[store]\nurl = \"http://127.0.0.1:{influx_port}\"\ndatabase = \"{db}\"\n"
                 f"spool_dir = \"{tmp / 'spool'}\"\nretries = 0\ntimeout_s = 2.0\n"
                 f"[dashboard]\nport = {port}\nusers_db = \"{tmp / 'users.sqlite'}\"\n"
                 "login_max_failures = 5\nlogin_lockout_s = 600\n")
    return p


@pytest.fixture(scope="module")
def site(tmp_path_factory, influxd):
    tmp = tmp_path_factory.mktemp("sec")
    port = free_port()
    services = _services(tmp, influxd.port, port, "dash_sec")
    sv = load_services(services)
    store = InfluxStore(sv.store)
    store.setup()
    night, obj = store_simulated_night(store, "sim-1", NightOptions(hours=0.5, seed=904, fs_emg=250.0,
                                                                     fs_acc=25.0, cramps_per_night=40.0))
    # The same night under another wearer, every stored string made hostile.
    evil = copy.deepcopy(obj)
    evil["recording"]["name"] = HOSTILE
    evil["notes"] = [HOSTILE]
    for e in evil["events"]:
        e["channel"] = HOSTILE
        e["features"] = {"why": {"for": [HOSTILE], "against": [HOSTILE]}, "reason": HOSTILE}
    for a in evil.get("advice", []):
        a.update(title=HOSTILE, text=HOSTILE, source=HOSTILE, evidence=HOSTILE)
    store.write_analysis("w-evil", night, evil)
    # A night key that is markup as well (keys come from the store: the nights page must cope).
    store.write_analysis("w-evil", '2026-11-20"</script><script>window.__xss=3</script>', evil)
    store.write_review("w-evil", night, {"event": "added:x", "action": "add", "kind": "cramp",
                                         "start_s": 10.0, "end_s": 40.0, "side": "left", "note": HOSTILE,
                                         "by": "dr-a", "at": "2026-11-25T08:00:00+00:00"})
    users = Users(sv.dashboard.users_db)
    for name, role, wearer in (("sim-1", "wearer", None), ("dr-a", "clinician", None),
                               ("victim", "clinician", None), ("evil", "wearer", "w-evil")):
        users.add(name, PASSWORD, role, wearer)
    users.assign("dr-a", "sim-1")
    users.assign("dr-a", "w-evil")
    server = start_dashboard(tmp, "127.0.0.1", port, services)
    yield {"base": f"http://127.0.0.1:{port}", "night": night, "store": store, "tmp": tmp}
    server.stop()
    store.close()


def _login(c: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    token = c.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
    return c.post("/login", data={"name": name, "password": password, "csrf": token})


@pytest.fixture(scope="module")
def clinician(site):
    with httpx.Client(base_url=site["base"]) as c:
        assert _login(c, "dr-a").status_code == 303
        csrf = c.get(f"/w/sim-1/{site['night']}/view").text.split('data-csrf="')[1].split('"')[0]
        yield c, csrf


def test_every_response_carries_the_security_headers(site, clinician):
    c, _ = clinician
    for path in ("/login", f"/w/sim-1/{site['night']}", f"/api/w/sim-1/{site['night']}/meta", "/nope"):
        r = c.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
    assert "max-age" in c.get("/static/app.css").headers["cache-control"]


def test_guessing_passwords_is_refused_for_the_account_even_with_the_right_one(influxd, tmp_path):
    """Its own server: the lockout also holds the test's address, which the other tests share."""
    port = free_port()
    services = _services(tmp_path, influxd.port, port, "dash_guess")
    users = Users(load_services(services).dashboard.users_db)
    users.add("victim", PASSWORD, "clinician")
    users.add("other", PASSWORD, "clinician")
    server = start_dashboard(tmp_path, "127.0.0.1", port, services)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            codes = [_login(c, "victim", f"wrong-{k}").status_code for k in range(8)]
            assert codes[:5] == [303] * 5 and set(codes[5:]) == {429}
            r = _login(c, "victim")  # the right password, during the lockout
            assert r.status_code == 429 and "try again in" in r.text
            assert int(r.headers["retry-after"]) > 0
            assert "nc_session" not in c.cookies
            # The address is locked as well: another account from it is refused too.
            assert _login(c, "other").status_code == 429
    finally:
        server.stop()


def test_the_lockout_doubles_and_ends(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("dashboard.web.security.time.monotonic", lambda: now[0])
    lim = LoginLimiter(max_failures=3, lockout_s=10.0, max_lockout_s=100.0)
    for _ in range(3):
        lim.failed("a", "1.2.3.4")
    assert lim.retry_after("a", "9.9.9.9") == pytest.approx(10.0)
    lim.failed("a", "1.2.3.4")
    assert lim.retry_after("a", "9.9.9.9") == pytest.approx(20.0)
    for _ in range(10):
        lim.failed("a", "1.2.3.4")
    assert lim.retry_after("a", "1.2.3.4") == pytest.approx(100.0)
    now[0] += 100.5
    assert lim.retry_after("a", "1.2.3.4") == 0.0
    lim.succeeded("a", "1.2.3.4")
    assert lim.retry_after("a", "1.2.3.4") == 0.0


def test_hostile_stored_strings_are_shown_as_text_and_run_no_script(site):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run 'make install' (installs the Debian chromium package)")
    night = site["night"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{site['base']}/login")
            page.fill("input[name=name]", "dr-a")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            for path in (f"/w/w-evil/{night}", f"/w/w-evil/{night}/view", f"/w/w-evil/{night}/report",
                         "/wearers", "/w/w-evil"):
                page.goto(site["base"] + path)
                page.wait_for_load_state("networkidle")
                assert page.evaluate("window.__xss === undefined"), path
                assert page.locator("script:not([src]):not([type='application/json'])").count() == 0, path
            page.goto(f"{site['base']}/w/w-evil/{night}/view")
            try:
                page.wait_for_selector("#events tbody tr", state="attached", timeout=60_000)
            except Exception:
                pytest.fail(f"viewer state {page.get_attribute('#viewer', 'data-state')}: {console} "
                            f"{page.inner_text('main')[:500]}")
            assert not [m for m in console if "Content Security Policy" in m], console
            assert page.evaluate("window.__xss === undefined")
            assert not dialogs
        finally:
            browser.close()
    # The viewer's data carries the strings literally (they were shown as text, not markup).
    with httpx.Client(base_url=site["base"]) as c:
        _login(c, "dr-a")
        meta = c.get(f"/api/w/w-evil/{night}/meta").json()
        assert any(e.get("channel") == HOSTILE for e in meta["events"])


def test_error_pages_are_html_for_browsers_and_json_for_the_api(site, clinician):
    c, _ = clinician
    r = c.get("/w/sim-1/2001-01-01", headers={"accept": "text/html"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "Not found" in r.text and "no stored night" in r.text
    r = c.get("/w/nobody/2001-01-01", headers={"accept": "text/html"})
    assert r.status_code == 403 and "<h1>Not allowed</h1>" in r.text
    r = c.get(f"/api/w/sim-1/{site['night']}/trace",
              params={"channel": "EMG L-Gastroc", "t0": 0, "t1": "inf"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")


_NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                    st.sampled_from(["inf", "-inf", "nan", "1e300", "", "abc", "0x10"]))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(t0=_NUMBER, t1=_NUMBER, px=st.one_of(st.integers(-5, 10**6), st.just("many")),
       channel=st.one_of(st.sampled_from(["EMG L-Gastroc", "ACC L-Shank X", "activity L", ""]),
                         st.text(max_size=300)))
def test_malformed_trace_requests_are_never_500(site, clinician, t0, t1, px, channel):
    c, _ = clinician
    for path, key in (("trace", "channel"), ("traces", "channels")):
        r = c.get(f"/api/w/sim-1/{site['night']}/{path}", params={key: channel, "t0": t0, "t1": t1, "px": px})
        assert r.status_code < 500, (path, t0, t1, px, channel, r.text[:200])
        if r.status_code == 200:
            body = r.json()
            assert all(math.isfinite(x) for x in (body.get("t0", 0), body.get("t1", 0)))


_LEAF = st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=50)
_JSON = st.recursive(_LEAF,
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids,
                                                                               max_size=4), max_leaves=10)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(_JSON, st.fixed_dictionaries(
    {"action": st.sampled_from(["accept", "reject", "relabel", "add", "x"])},
    optional={"event": _JSON, "kind": _JSON, "start_s": _JSON, "end_s": _JSON, "side": _JSON,
              "note": _JSON})))
def test_malformed_reviews_are_never_500(site, clinician, body):
    c, csrf = clinician
    r = c.post(f"/api/w/sim-1/{site['night']}/review", content=json.dumps(body),
               headers={"x-csrf-token": csrf, "content-type": "application/json"})
    assert r.status_code < 500, (body, r.text[:200])


def test_503_page_while_influxdb_is_unreachable(site, tmp_path):
    port = free_port()
    services = _services(tmp_path, free_port(), port, "nowhere")  # nothing listens there
    users = Users(load_services(services).dashboard.users_db)
    users.add("sim-1", PASSWORD, "wearer")
    server = start_dashboard(tmp_path, "127.0.0.1", port, services)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert _login(c, "sim-1").status_code == 303
            r = c.get("/", headers={"accept": "text/html"})
            assert r.status_code == 503 and "cannot be reached" in r.text
            assert r.headers["content-type"].startswith("text/html") and r.headers["retry-after"] == "30"
            r = c.get("/api/w/sim-1/2026-11-24/meta")
            assert r.status_code == 503 and "cannot be reached" in r.json()["detail"]
    finally:
        server.stop()
