"""The dashboard in a real browser (Debian's chromium through Playwright) against a real
InfluxDB holding a simulated night with raw samples: what the wearer and the clinician see,
zooming, review that sticks, EDF+ export read back with pyEDFlib, and access control.
Screenshots of every page go to test-artifacts/screenshots/."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from dashboard.sample_night import store_simulated_night
from dashboard.services import free_port, start_dashboard
from dashboard.users import Users
from detector.service.settings import load_services
from detector.store.influx import InfluxStore
from ingest.simulate import NightOptions
from tests.conftest import grafana_metrics

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def site(tmp_path_factory, influxd):
    tmp = tmp_path_factory.mktemp("dash")
    services = tmp / "services.toml"
    port = free_port()
    services.write_text(f"[store]\nurl = \"http://127.0.0.1:{influxd.port}\"\ndatabase = \"dash\"\n"
                        f"spool_dir = \"{tmp / 'spool'}\"\n[dashboard]\nport = {port}\n"
                        f"users_db = \"{tmp / 'users.sqlite'}\"\n")
    sv = load_services(services)
    store = InfluxStore(sv.store)
    store.setup()
    opts = NightOptions(hours=1.0, seed=903, fs_emg=250.0, fs_acc=25.0, cramps_per_night=40.0)
    night, obj = store_simulated_night(store, "sim-1", opts)
    other = NightOptions(hours=0.5, seed=5, fs_emg=250.0, fs_acc=25.0)
    other_night, _ = store_simulated_night(store, "w-other", other)
    heard = 1_795_000_000 * 10**9  # 2026-11-18 UTC: what each sensor last said about itself
    left = {"state": "online", "link": "ble", "battery_pct": 14}
    right = {"state": "offline", "link": "ble", "battery_pct": 81}
    store.write(store.sensor_status_line("sim-1", "left-shank", left, heard) + "\n"
                + store.sensor_status_line("sim-1", "right-shank", right, heard))
    users = Users(sv.dashboard.users_db)
    users.add("sim-1", PASSWORD, "wearer")
    users.add("other", PASSWORD, "wearer", "w-other")
    users.add("dr-a", PASSWORD, "clinician")
    users.assign("dr-a", "sim-1")
    users.add("dr-b", PASSWORD, "clinician")  # changes the montage it keeps: other tests use dr-a
    users.assign("dr-b", "sim-1")
    server = start_dashboard(tmp, "127.0.0.1", port, services)  # as `nightcramp stack up` does
    base = f"http://127.0.0.1:{port}"
    yield {"base": base, "night": night, "analysis": obj, "other_night": other_night, "store": store,
           "users": users, "services": str(services)}
    server.stop()
    store.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run 'make install' (installs the Debian chromium package)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def login(browser, site, name: str, *, width: int = 1280):
    # bypass_csp: Playwright evaluates wait_for_function predicates with eval, which the CSP forbids
    # (tests/test_dashboard_security.py runs the pages under the CSP).
    ctx = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True,
                              bypass_csp=True)
    page = ctx.new_page()
    page.goto(f"{site['base']}/login")
    shot(page, f"login-{width}px")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return ctx, page


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_wearer_sees_the_morning_summary_with_its_cramps(browser, site):
    ctx, page = login(browser, site, "sim-1", width=390)  # phone-sized first
    shot(page, "wearer-summary-phone")
    assert page.url.endswith(f"/w/sim-1/{site['night']}")
    cramps = [e for e in site["analysis"]["events"] if e["kind"] == "cramp"]
    assert cramps
    assert page.locator("svg.timeline rect.cramp").count() == len(cramps)
    assert page.locator("svg.timeline rect.sleep").count() >= 1
    n = len(cramps)
    assert f"{n} cramp{'s' if n != 1 else ''}" in page.inner_text("#cramp-count")
    assert page.locator("li.cramp-item").count() == n
    assert page.locator("#advice article.advice").count() == len(site["analysis"]["advice"])
    page.click("#advice article.advice >> nth=0 >> summary")
    assert "Source:" in page.inner_text("#advice article.advice >> nth=0")
    assert "not a medical device" in page.inner_text("footer.disclaimer")
    # the diary form stores the morning check-in, and a red flag becomes advice at once
    page.check("input[name=calf_warm_red][value=yes]")
    page.click("form.diary >> nth=0 >> button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "your morning answers are saved" in page.inner_text("#diary-saved")  # the wearer is told
    advice = page.inner_text("#advice")
    assert "A calf is warm, red or tender" in advice
    assert site["store"].diaries("sim-1")[site["night"]]["morning"]["calf_warm_red"] is True
    # with a possible clot nothing on the page asks to stretch, rub or stand on the leg
    for item in page.locator("#advice article.advice:not(.see-a-clinician) > p").all_inner_texts():
        assert not re.search(r"stretch|weight on|stand up|massag", item, re.I), item
    for why in page.locator("#advice p.why").all_text_contents():
        assert why.startswith("Because ") and " = " not in why and "_" not in why, why
    assert not re.search(r"\.md\b|docs/|Seed:", advice)
    assert page.locator("text=not a medical device").count() == 1  # the disclaimer once
    shot(page, "wearer-summary-after-diary")
    wide = "document.documentElement.scrollWidth <= window.innerWidth"  # no sideways scrolling
    assert page.evaluate(wide), "the summary page scrolls sideways on a phone"
    page.goto(f"{site['base']}/w/sim-1")
    assert page.locator("#nights tbody tr").count() == 1
    assert page.locator(".chart .uplot").count() == 4
    # One night sits in the middle of a one-day axis (uPlot alone made it 1000 days).
    import datetime as dt

    day = dt.datetime.fromisoformat(site["night"] + "T00:00:00+00:00").timestamp()
    spans = page.evaluate("window.ncTrends.map(u => [u.scales.x.min, u.scales.x.max])")
    assert spans == [[day - 43200, day + 43200]] * 4, spans
    assert page.evaluate(wide), "the nights page scrolls sideways on a phone"
    shot(page, "wearer-nights")
    ctx.close()


def test_the_wearer_page_shows_battery_and_the_clinician_signal_quality(browser, site):
    ctx, page = login(browser, site, "dr-a")
    page.goto(f"{site['base']}/w/sim-1")
    rows = page.locator("#sensors tbody tr")
    assert rows.count() == 2
    left = rows.nth(0).inner_text()
    assert "left-shank" in left and "14%" in left and "low: charge it" in left
    assert rows.nth(0).get_attribute("class") == "attention"
    assert "offline" in rows.nth(1).inner_text() and "81%" in rows.nth(1).inner_text()
    q = page.locator("#quality tbody tr").all_inner_texts()
    emg = [r for r in q if r.startswith("EMG ")]
    assert len(emg) == 2, q
    assert all("µV" in r and ("50 Hz" in r or "60 Hz" in r or "none found" in r) for r in emg), q
    assert any(r.startswith("Accelerometer") for r in q)
    shot(page, "clinician-wearer-sensors")
    ctx.close()
    ctx, page = login(browser, site, "sim-1")
    page.goto(f"{site['base']}/w/sim-1")
    assert page.locator("#sensors tbody tr").count() == 2
    assert page.locator("#quality").count() == 0  # channel figures are for the clinician
    ctx.close()


def test_times_are_shown_in_the_browsers_time_zone_and_can_be_changed(browser, site):
    """The login keeps the browser's time zone; every clock time on the summary follows it, and
    Settings changes it."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    site["users"].add("anna-tz", PASSWORD, "wearer", "sim-1")
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Zurich")
    page = ctx.new_page()
    page.goto(f"{site['base']}/login")
    page.fill("input[name=name]", "anna-tz")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert site["users"].get("anna-tz").tz == "Europe/Zurich"
    start = dt.datetime.fromisoformat(site["analysis"]["recording"]["start"])
    first = min(e["start_s"] for e in site["analysis"]["events"] if e["kind"] == "cramp")
    for zone in ("Europe/Zurich", "America/New_York"):
        local = start.astimezone(ZoneInfo(zone))
        assert page.url.endswith(f"/w/sim-1/{site['night']}"), page.url + page.content()[:3000]
        sub = page.inner_text("p.sub")
        assert f"{local:%H:%M %Z}" in sub, (zone, sub)
        assert f"at {local + dt.timedelta(seconds=first):%H:%M}" in page.inner_text("li.cramp-item >> nth=0")
        page.goto(f"{site['base']}/settings")
        page.fill("input[name=tz]", "America/New_York")
        page.click("form[action='/settings'] button[type=submit]")
        page.wait_for_load_state("networkidle")
        page.goto(f"{site['base']}/w/sim-1/{site['night']}")
    r = page.request.post(f"{site['base']}/settings", form={"csrf": "x", "tz": "Mars/Olympus"})
    assert r.status == 403  # the CSRF token is checked before anything else
    ctx.close()


def test_a_wearer_cannot_open_another_wearers_night(browser, site):
    ctx, page = login(browser, site, "sim-1")
    r = page.goto(f"{site['base']}/w/w-other/{site['other_night']}")
    assert r.status == 403
    api = f"{site['base']}/api/w/w-other/{site['other_night']}"
    r = page.request.get(f"{api}/trace?channel=EMG%20L-Gastroc&t0=0&t1=60")
    assert r.status == 403
    r = page.goto(f"{site['base']}/w/sim-1/{site['night']}/view")
    assert r.status == 403  # the viewer is for clinicians
    shot(page, "forbidden")
    ctx.close()
    ctx, page = login(browser, site, "dr-a")  # a clinician sees only assigned wearers
    assert page.goto(f"{site['base']}/w/w-other/{site['other_night']}/view").status == 403
    assert page.goto(f"{site['base']}/w/w-other").status == 403
    assert "w-other" not in page.goto(f"{site['base']}/wearers").text()
    ctx.close()
    anon = browser.new_context()
    r = anon.new_page().goto(f"{site['base']}/w/sim-1/{site['night']}")
    assert r.url.endswith(f"/login?next=/w/sim-1/{site['night']}")
    anon.close()


def test_forms_without_the_csrf_token_are_refused(site):
    with httpx.Client(base_url=site["base"]) as c:
        login_page = c.get("/login")
        token = login_page.text.split('name="csrf" value="')[1].split('"')[0]
        r = c.post("/login", data={"name": "dr-a", "password": PASSWORD, "csrf": token})
        assert r.status_code == 303 and "nc_session" in c.cookies
        r = c.post(f"/api/w/sim-1/{site['night']}/review", json={"action": "reject", "event": "x"})
        assert r.status_code == 403 and "CSRF" in r.text
        r = c.post(f"/w/sim-1/{site['night']}/diary", data={"part": "morning", "soreness": "yes"})
        assert r.status_code == 403
    with httpx.Client(base_url=site["base"]) as c:
        r = c.post("/login", data={"name": "dr-a", "password": PASSWORD, "csrf": "forged"})
        assert r.status_code == 403


def test_malformed_reviews_get_422_naming_the_field_and_numbers_are_stored_as_floats(site):
    """Review payloads are checked by a model: each bad field is named (422), nothing is stored;
    a start of 0 (what ``parseFloat("0.0")`` sends) and a later 12.3 are both accepted."""
    night = site["night"]
    with httpx.Client(base_url=site["base"]) as c:
        token = c.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
        assert c.post("/login", data={"name": "dr-a", "password": PASSWORD, "csrf": token}).status_code == 303
        csrf = c.get(f"/w/sim-1/{night}/view").text.split('data-csrf="')[1].split('"')[0]
        url, h = f"/api/w/sim-1/{night}/review", {"x-csrf-token": csrf}
        before = len(site["store"].reviews("sim-1", night))
        for body, field in (({"action": "add", "kind": "cramp", "start_s": True, "end_s": 20}, "start_s"),
                            ({"action": "add", "kind": "cramp", "start_s": "1", "end_s": 20}, "start_s"),
                            ({"action": "explode", "event": "x"}, "action"),
                            ({"action": "add", "kind": "unicorn", "start_s": 1, "end_s": 2}, "kind"),
                            ({"action": "reject", "event": "x", "colour": "red"}, "colour"),
                            ({"action": "reject", "event": "k" * 70_000}, "event"),
                            ([1, 2, 3], "JSON object")):
            r = c.post(url, json=body, headers=h)
            assert r.status_code == 422 and field in r.text, (body, r.status_code, r.text[:200])
        r = c.post(url, content=b"{not json", headers=h | {"content-type": "application/json"})
        assert r.status_code == 400
        assert len(site["store"].reviews("sim-1", night)) == before
        for start in (0, 12.3):
            r = c.post(url, json={"action": "add", "kind": "artifact", "start_s": start, "end_s": start + 5,
                                  "note": "electrode checked"}, headers=h)
            assert r.status_code == 200, r.text
        stored = site["store"].reviews("sim-1", night)[before:]
        assert [x["start_s"] for x in stored] == [0.0, 12.3]
        assert all(isinstance(x["start_s"], float) for x in stored)
        for x in stored:  # leave the night as the other tests expect it
            r = c.post(url, json={"action": "reject", "event": x["event"]}, headers=h)
            assert r.status_code == 200


def test_clinician_zooms_and_the_request_asks_for_a_smaller_interval(browser, site):
    ctx, page = login(browser, site, "dr-a", width=1400)
    assert page.url.endswith("/wearers")
    shot(page, "clinician-wearers")
    page.click("text=sim-1")
    page.wait_for_load_state("networkidle")
    for key in ("cramps", "plm_index", "awakenings", "signal"):  # the nights table sorts by these
        assert page.locator(f"#nights th a[href*='sort={key}']").count() == 1
    page.click("#nights th a[href*='sort=cramps']")
    page.wait_for_load_state("networkidle")
    assert "sort=cramps" in page.url and page.get_attribute("#nights th a[href*='sort=cramps']", "aria-sort")
    shot(page, "clinician-nights")
    page.click(f"a[href='/w/sim-1/{site['night']}/view'] >> nth=0")
    page.wait_for_selector("#viewer[data-state=ready]")
    shot(page, "viewer-whole-night")
    first = page.evaluate("window.ncViewer.requests.slice()")
    assert first and all(r["t0"] == 0 for r in first)
    whole = first[0]["t1"] - first[0]["t0"]
    points = int(page.get_attribute(".chan[data-channel='EMG L-Gastroc']", "data-points"))
    assert 0 < points <= 2 * first[0]["px"]  # never more than about two points per pixel
    n_before = len(page.evaluate("window.ncViewer.requests"))
    page.click("#zoom-in")
    page.wait_for_function(f"window.ncViewer.requests.length > {n_before} && "
                           "document.querySelector('#viewer').dataset.state === 'ready'")
    last = page.evaluate("window.ncViewer.requests.at(-1)")
    assert last["t1"] - last["t0"] < whole / 2
    # down to 2 s: raw samples
    for _ in range(12):  # halving 900 s reaches the 2-s floor
        page.keyboard.press("+")
        page.wait_for_function("document.querySelector('#viewer').dataset.state === 'ready'")
    last = page.evaluate("window.ncViewer.requests.at(-1)")
    assert last["t1"] - last["t0"] == pytest.approx(2.0, abs=0.01)
    assert page.get_attribute(".chan[data-channel='EMG L-Gastroc']", "data-source") == "raw"
    shot(page, "viewer-2s")
    page.keyboard.press("Home")
    page.wait_for_function("document.querySelector('#viewer').dataset.state === 'ready'")
    page.keyboard.press("n")  # jump to the first event
    page.wait_for_function("document.querySelector('#viewer').dataset.state === 'ready'")
    view = page.evaluate("window.ncViewer.view")
    assert view[1] - view[0] < whole
    ctx.close()


def test_a_rejected_event_stays_rejected_and_the_export_carries_it(browser, site, tmp_path):
    import pyedflib

    ctx, page = login(browser, site, "dr-a", width=1400)
    page.goto(f"{site['base']}/w/sim-1/{site['night']}/view")
    page.wait_for_selector("#viewer[data-state=ready]")
    page.select_option("#f-kind", "cramp")
    row = page.locator("#events tr[data-kind=cramp][data-status=detected]").first
    key = row.get_attribute("data-key")
    row.locator("button.reject").click()
    page.wait_for_selector(f"#events tr[data-key='{key}'][data-status=rejected]")
    page.reload()
    page.wait_for_selector("#viewer[data-state=ready]")
    page.select_option("#f-kind", "cramp")
    assert page.get_attribute(f"#events tr[data-key='{key}']", "data-status") == "rejected"
    assert "dr-a" in page.inner_text(f"#events tr[data-key='{key}'] td.status")
    audit = site["store"].reviews("sim-1", site["night"])
    assert audit[-1]["event"] == key and audit[-1]["by"] == "dr-a" and audit[-1]["action"] == "reject"
    shot(page, "viewer-after-reject")
    # the summary counts and advice follow the review
    page.goto(f"{site['base']}/w/sim-1/{site['night']}")
    n = sum(1 for e in site["analysis"]["events"] if e["kind"] == "cramp") - 1
    assert page.locator("svg.timeline rect.cramp").count() == n
    assert "reviewed by a clinician" in page.inner_text("main")
    # ... and so do the nights table, its trend and the clinician's wearer list
    page.goto(f"{site['base']}/w/sim-1")
    row = page.locator("table tbody tr", has_text=site["night"]).first
    assert row.locator("td").nth(1).inner_text().strip() == str(n)
    assert page.evaluate("JSON.parse(document.getElementById('trend-data').textContent).cramps") == [n]
    # a red-flag check-in shows in the clinician's wearer list, with the nights waiting for review
    from dashboard.review import refresh_advice
    from detector.advice.diary import save_checkin

    save_checkin(site["store"], "sim-1", site["night"], "morning", {"calf_warm_red": True})
    refresh_advice(site["store"], "sim-1", site["night"])
    page.goto(f"{site['base']}/wearers")
    row = page.locator("#wearers tbody tr[data-wearer=sim-1]")
    assert row.locator("td").nth(3).inner_text().strip() == str(n)
    assert f"A calf is warm, red or tender ({site['night']})" in row.locator("td.red-flags").inner_text()
    assert row.get_attribute("class") == "attention"
    assert row.locator("td.waiting").inner_text().strip() == "none"  # this night was reviewed above
    shot(page, "wearers-attention")
    # EDF+ export, read back with pyEDFlib
    with page.expect_download() as dl:
        page.goto(f"{site['base']}/w/sim-1/{site['night']}/view")
        page.click("text=Export EDF+")
    path = tmp_path / "night.edf"
    dl.value.save_as(path)
    with pyedflib.EdfReader(str(path)) as f:
        labels = f.getSignalLabels()
        assert "EMG L-Gastroc" in labels and "ACC R-Shank Z" in labels
        i = labels.index("EMG L-Gastroc")
        assert f.getSampleFrequency(i) == 250.0
        assert f.getNSamples()[i] == 3600 * 250
        texts = f.readAnnotations()[2]
        assert f.getPatientCode() == "sim-1"  # the pseudonymous id, nothing else about the person
        assert f.getPrefilter(i).startswith("none") and f.getTransducer(i) == "surface EMG electrodes"
        # no channel clipped: the header's range (8 characters) holds every stored sample, and the
        # largest and smallest samples read back are the stored ones, to one digital step
        t0 = int(dt.datetime.fromisoformat(site["analysis"]["recording"]["start"]).timestamp() * 1e9)
        stored = site["store"].value_range("sim-1", t0, t0 + 3600 * 10**9)
        for k, label in enumerate(labels):
            lo, hi = stored[label]
            step = (f.getPhysicalMaximum(k) - f.getPhysicalMinimum(k)) / 65535
            x = f.readSignal(k)
            assert f.getPhysicalMinimum(k) <= lo and f.getPhysicalMaximum(k) >= hi, label
            assert abs(x.max() - hi) <= step if hi > 0 else x.max() <= step, label
            assert abs(x.min() - lo) <= step if lo < 0 else x.min() >= -step, label
    assert any(t.startswith("cramp") and "[rejected by dr-a]" in t for t in texts)
    assert sum(1 for t in texts if t.startswith("cramp")) == n + 1
    opens_in_edfbrowser(path)
    # CSV and the printable report
    csv_text = page.request.get(f"{site['base']}/w/sim-1/{site['night']}/export.csv").text()
    assert "rejected,dr-a" in csv_text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert rows and all(r["start"].startswith(site["analysis"]["recording"]["start"][:10]) for r in rows)
    page.goto(f"{site['base']}/w/sim-1/{site['night']}/report")
    assert "rejected (dr-a)" in page.inner_text("main")
    shot(page, "report")
    pdf = page.request.get(f"{site['base']}/w/sim-1/{site['night']}/report.pdf")
    body = pdf.body()
    assert pdf.ok and body[:5] == b"%PDF-"
    ctx.close()
    check_pdf_pages(body, tmp_path, wearer="sim-1", night=site["night"], cramps_drawn=n > 0)


OPEN_IN_EDFBROWSER = r"""
edfbrowser "$1" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
name=$(basename "$1")
for i in $(seq 1 240); do  # up to 2 minutes: the file's window and its signal list, or an error
  w=$(xwininfo -root -tree 2>/dev/null)
  if grep -q "\"$name - EDFbrowser\"" <<<"$w" && grep -q '"Add signals"' <<<"$w"; then break; fi
  if grep -q '"Error"' <<<"$w"; then break; fi
  sleep 0.5
done
echo "$w"
import -window root "$2"
"""


def opens_in_edfbrowser(path: Path) -> None:
    """The EDF+ file loads in EDFbrowser (Debian's edfbrowser) under Xvfb, as a clinician would
    open it: its window names the file and lists the signals, no error box; a screenshot is kept."""
    import shutil

    for tool in ("edfbrowser", "xvfb-run", "xwininfo", "import"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} missing: run 'make install' (edfbrowser, xvfb, x11-utils, imagemagick)")
    script = path.with_suffix(".sh")
    script.write_text(OPEN_IN_EDFBROWSER)
    r = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", "bash", str(script), str(path),
                        str(SHOTS / "edfbrowser-export.png")], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"Error"' not in r.stdout, r.stdout
    assert f'"{path.name} - EDFbrowser"' in r.stdout and '"Add signals"' in r.stdout, r.stdout


def check_pdf_pages(body: bytes, tmp: Path, *, wearer: str, night: str, cramps_drawn: bool) -> None:
    """Render the PDF report as a reader would (poppler's pdftoppm and pdftotext): every page
    names the wearer and the night and says which page of how many; page 1 draws the timeline
    (the sleep band's blue, and the cramps' red only for cramps not rejected in review)."""
    path = tmp / "report.pdf"
    path.write_bytes(body)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    pages = [p for p in text.split("\f") if p.strip()]
    assert pages
    for k, p in enumerate(pages, 1):
        assert f"page {k} of {len(pages)}" in p and wearer in p and night in p, p[-300:]
    subprocess.run(["pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png", str(path), str(tmp / "page")],
                   check=True)
    png = next(tmp.glob("page*.png"))
    (SHOTS / "report-pdf-page1.png").write_bytes(png.read_bytes())
    subprocess.run(["pdftoppm", "-r", "40", "-f", "1", "-l", "1", str(path), str(tmp / "raw")], check=True)
    ppm = next(tmp.glob("raw*.ppm")).read_bytes()
    header, pixels = ppm.split(b"\n", 3)[:3], ppm.split(b"\n", 3)[3]
    assert header[0] == b"P6"
    rgb = [tuple(pixels[i:i + 3]) for i in range(0, len(pixels), 3)]
    red = sum(1 for r, g, b in rgb if r > 150 and g < 70 and b < 70)
    blue = sum(1 for r, g, b in rgb if 160 < r < 190 and 185 < g < 205 and b > 210)
    assert (red > 0) == cramps_drawn and blue > 50, (red, blue)


def test_users_command(tmp_path, cli):
    sv = tmp_path / "services.toml"
    sv.write_text(f"[dashboard]\nusers_db = \"{tmp_path / 'u.sqlite'}\"\n")
    def users(*args, stdin=None):
        return subprocess.run([cli, "users", *args, "--services", str(sv)], input=stdin, capture_output=True,
                              text=True)

    r = users("add", "dr-b", "--role", "clinician", "--password-stdin", stdin="long enough pw\n")
    assert r.returncode == 0, r.stderr
    r = users("add", "x", "--role", "wearer", "--password-stdin", stdin="long enough pw\n")
    assert r.returncode == 2 and "user name" in r.stderr
    r = users("add", "dr-c", "--role", "clinician", "--password-stdin", stdin="short\n")
    assert r.returncode == 2 and "at least 10 characters" in r.stderr
    r = users("assign", "dr-b", "w-7")  # no such wearer (no account, no stored night): a typo?
    assert r.returncode == 2 and "unknown wearer 'w-7'" in r.stderr and "--create" in r.stderr, r.stderr
    assert users("assign", "dr-b", "w-7", "--create").returncode == 0
    assert users("passwd", "dr-b", "--password-stdin", stdin="another long one\n").returncode == 0
    out = users("list").stdout
    assert "dr-b" in out and "sees w-7" in out
    u = Users(tmp_path / "u.sqlite")
    assert u.login("dr-b", "another long one") and not u.login("dr-b", "long enough pw")
    row = json.dumps(u.all()[0].__dict__)
    assert "argon2" not in row  # hashes never leave the users table


def ready(page) -> None:
    page.wait_for_function("document.querySelector('#viewer').dataset.state === 'ready'")


def _amplitude(drawn: dict, a: float, b: float) -> float:
    """Median drawn height (max - min per pixel) of a trace between a and b s."""
    import numpy as np

    t = np.asarray(drawn["t"], float)
    lo = np.asarray([np.nan if v is None else v for v in drawn["min"]], float)
    hi = np.asarray([np.nan if v is None else v for v in drawn["max"]], float)
    keep = (t >= a) & (t < b) & np.isfinite(lo) & np.isfinite(hi)
    return float(np.median(hi[keep] - lo[keep]))


def test_a_cramp_stands_out_in_the_filtered_emg_and_gain_and_montage_stick(browser, site):
    ctx, page = login(browser, site, "dr-b", width=1400)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.on("pageerror", lambda exc: console.append(f"error: {exc}"))
    page.goto(f"{site['base']}/w/sim-1/{site['night']}/view")
    try:
        page.wait_for_selector("#viewer[data-state=ready]")
    except Exception:
        pytest.fail(f"viewer {page.get_attribute('#viewer', 'data-state')}: {console}")
    assert page.input_value("#filter") == "hp10"  # the default display filter
    assert "50 Hz" in page.inner_text("#notch")
    cramps = [e for e in site["analysis"]["events"] if e["kind"] == "cramp" and e["start_s"] > 90
              and e["end_s"] - e["start_s"] < 100]
    e = cramps[0]
    label = f"EMG {'L' if e['side'] == 'left' else 'R'}-Gastroc"
    ratios = {}
    for filt in ("hp10", "off"):
        page.select_option("#filter", filt)
        page.evaluate(f"window.ncViewer.setView({e['start_s'] - 60}, {e['end_s']})")
        ready(page)
        d = page.evaluate(f"window.ncViewer.drawn({label!r})")
        assert d["filter"] == filt and d["source"] == "raw"
        inside = _amplitude(d, e["start_s"], e["end_s"])
        ratios[filt] = inside / _amplitude(d, e["start_s"] - 60, e["start_s"])
    print(f"displayed EMG amplitude, cramp / minute before: {ratios}")
    assert ratios["hp10"] >= 2.0, ratios
    assert page.evaluate("window.ncViewer.requests.at(-1).filter") == "off"
    shot(page, "viewer-cramp-unfiltered")
    page.select_option("#filter", "hp10")
    ready(page)
    shot(page, "viewer-cramp-filtered")
    # zoomed out, filtered EMG is the stored per-frame peak without wander and hum
    page.keyboard.press("Home")
    ready(page)
    whole = page.evaluate(f"window.ncViewer.drawn({label!r})")
    assert whole["source"] == "envelope" and whole["filter"] == "hp10"
    assert all(lo is None or lo <= 0 for lo in whole["min"])
    # gain in µV per division: 8 divisions centred on zero for filtered EMG; ↑ halves it
    chan = f".chan[data-channel='{label}']"
    page.select_option(f"{chan} select.gain", "20")
    ready(page)
    page.click(f"{chan} .chan-name")
    page.keyboard.press("ArrowUp")
    ready(page)
    assert page.input_value(f"{chan} select.gain") == "10"
    # the montage: hide a channel and move another up; it is kept for this clinician
    page.click("#montage summary")
    page.uncheck("#montage-list li[data-channel='ACC R-Shank Z'] input")
    page.click("#montage-list li[data-channel='activity L'] button.up")
    page.wait_for_function("window.ncViewer.montage.hidden.includes('ACC R-Shank Z')")
    page.wait_for_function("document.querySelector('#viewer').dataset.montageSaved === 'yes'")
    shot(page, "viewer-montage")
    page.reload()
    page.wait_for_selector("#viewer[data-state=ready]")
    assert page.locator(".chan[data-channel='ACC R-Shank Z']").is_hidden()
    sent = page.evaluate("window.ncViewer.requests.at(-1)")
    assert sent["channels"] == len(page.eval_on_selector_all(".chan:not([hidden])", "els => els")) - 1
    order = page.eval_on_selector_all(".chan", "els => els.map(e => e.dataset.channel)")
    before = page.evaluate("window.ncViewer.montage.order")
    assert order == before and order.index("activity L") == before.index("activity L")
    assert page.input_value(f"{chan} select.gain") == "10"
    assert not [m for m in console if "rror" in m], console
    ctx.close()


def test_the_viewer_pages_like_a_psg_viewer(browser, site):
    ctx, page = login(browser, site, "dr-b", width=1400)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{site['base']}/w/sim-1/{site['night']}/view")
    page.wait_for_selector("#viewer[data-state=ready]")
    page.select_option("#window", "night")
    ready(page)
    dur = site["analysis"]["recording"]["duration_s"]
    assert page.evaluate("window.ncViewer.view") == [0, dur]
    # n from the whole night goes to the night's first event, not to one after its middle
    evs = sorted(site["analysis"]["events"], key=lambda e: e["start_s"])
    page.keyboard.press("n")
    ready(page)
    v = page.evaluate("window.ncViewer.view")
    assert v[0] <= evs[0]["start_s"] <= v[1] and v[1] - v[0] < 120
    page.keyboard.press("Home")
    ready(page)
    page.keyboard.press("c")  # the first cramp
    ready(page)
    live = page.evaluate("window.ncViewer.events")  # another test may have rejected one
    cramps = [e for e in live if e["kind"] == "cramp" and e["status"] != "rejected"]
    if cramps:
        assert page.evaluate("window.ncViewer.selected") == cramps[0]["key"], errors
    else:  # says so rather than jumping somewhere else
        assert page.inner_text("#review-status").startswith("No cramp after"), errors
    # 30-s epochs: the window keeps its length and stays on the epoch grid
    page.select_option("#window", "30")
    ready(page)
    a, b = page.evaluate("window.ncViewer.view")
    assert b - a == 30 and a % 30 == 0
    assert "epoch" in page.inner_text("#range")
    page.keyboard.press("PageDown")
    ready(page)
    assert page.evaluate("window.ncViewer.view") == [a + 30, a + 60]
    page.keyboard.press("PageUp")
    ready(page)
    assert page.evaluate("window.ncViewer.view") == [a, a + 30]
    # ticks at round clock steps of the clinician's zone
    tk = page.evaluate("window.ncViewer.ticks")
    assert tk["incr"] in (1, 2, 5, 10, 15) and len(tk["ticks"]) >= 3
    steps = [(t + tk["base"]) / tk["incr"] for t in tk["ticks"]]
    assert all(abs(k - round(k)) < 1e-6 for k in steps)
    # the overview strip shows the window; a click there goes to that part of the night
    assert page.get_attribute("#overview", "data-window") == f"{a:.1f},{a + 30:.1f}"
    box = page.locator("#overview").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    ready(page)
    v = page.evaluate("window.ncViewer.view")
    assert v[1] - v[0] == 30 and abs(v[0] - 0.75 * dur) <= 30
    # the cursor readout: time and values of every channel at the pointer
    plot = page.locator(".chan[data-channel='EMG L-Gastroc'] .u-over").bounding_box()
    page.mouse.move(plot["x"] + plot["width"] / 2, plot["y"] + plot["height"] / 2)
    page.wait_for_function("document.getElementById('readout').textContent.includes('µV')")
    text = page.inner_text("#readout")
    assert re.search(r"\d\d:\d\d:\d\d", text) and "EMG L-Gastroc" in text and " g" in text
    page.click("#montage summary")
    assert page.locator("#legend li").count() >= 10  # every overlay kind and each trace
    shot(page, "viewer-epoch-30s")
    ctx.close()


def test_the_event_list_is_a_work_queue(browser, site):
    ctx, page = login(browser, site, "dr-b", width=1400)
    page.goto(f"{site['base']}/w/sim-1/{site['night']}/view")
    page.wait_for_selector("#viewer[data-state=ready]")
    events = page.evaluate("window.ncViewer.events")  # with what other tests added
    moves = sum(e["kind"] == "limb_movement" for e in events)
    assert moves > 50
    # every event is listed (leg movements too), and only the rows in sight are drawn
    assert page.inner_text("#event-count").endswith(f"of {len(events)} events")
    assert page.locator("#events tbody tr:not(.spacer)").count() < min(len(events), 60)
    page.select_option("#f-kind", "limb_movement")
    assert page.inner_text("#event-count").startswith(f"{moves} of")
    page.select_option("#f-kind", "cramp")
    page.select_option("#f-side", "left")
    left = [e for e in events if e["kind"] == "cramp" and e["side"] == "left"]
    assert page.locator("#events tbody tr:not(.spacer)").count() == len(left)
    page.select_option("#f-side", "")
    page.select_option("#f-kind", "limb_movement")  # plenty not yet reviewed, whatever other tests did
    page.select_option("#f-status", "todo")
    # keyboard review: n selects the next listed event, a comment goes with r (reject), u undoes
    page.keyboard.press("Home")
    ready(page)
    page.keyboard.press("n")
    ready(page)
    key = page.evaluate("window.ncViewer.selected")
    page.fill("#review-note", "electrode moved, not a cramp")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("r")
    page.wait_for_function(f"window.ncViewer.events.find(e => e.key === {key!r}).status === 'rejected'")
    assert page.locator(f"#events tr[data-key='{key}']").count() == 0  # gone from the to-do list
    page.select_option("#f-status", "rejected")
    assert "electrode moved" in page.inner_text(f"#events tr[data-key='{key}'] td.note")
    page.keyboard.press("u")
    page.wait_for_function(f"window.ncViewer.events.find(e => e.key === {key!r}).status === 'detected'")
    audit = [r["action"] for r in site["store"].reviews("sim-1", site["night"]) if r["event"] == key]
    assert audit[-2:] == ["reject", "undo"]  # both kept in the audit trail
    # shift-drag on a chart proposes an event over that span; adding it lists it
    page.select_option("#f-status", "")
    page.select_option("#f-kind", "")
    plot = page.locator(".chan[data-channel='EMG R-Gastroc'] .u-over").bounding_box()
    y = plot["y"] + plot["height"] / 2
    page.keyboard.down("Shift")
    page.mouse.move(plot["x"] + plot["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(plot["x"] + plot["width"] * 0.4, y, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    a0 = float(page.input_value("#add-event input[name=start_s]"))
    a1 = float(page.input_value("#add-event input[name=end_s]"))
    v = page.evaluate("window.ncViewer.view")
    assert v[0] < a0 < a1 < v[1] and page.input_value("#add-event select[name=side]") == "right"
    assert re.search(r"\d\d:\d\d:\d\d", page.inner_text("#add-clock"))
    page.select_option("#add-event select[name=kind]", "artifact")
    page.click("#add-event button[type=submit]")
    page.wait_for_function("window.ncViewer.events.some(e => e.status === 'added' && e.kind === 'artifact')")
    page.select_option("#f-status", "added")
    assert page.locator("#events tbody tr[data-status=added]").count() >= 1
    shot(page, "viewer-work-queue")
    ctx.close()


SMALL_TEXT = """() => {
  const bad = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const n = walker.currentNode, el = n.parentElement;
    const skip = '[hidden], script, style, title, option, details:not([open]) > :not(summary)';
    if (!n.textContent.trim() || !el || el.closest(skip)) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    let px = parseFloat(getComputedStyle(el).fontSize);
    const svg = el.closest('svg');  // SVG text is scaled with its picture
    const vb = svg && svg.viewBox.baseVal;
    if (vb && vb.width) px *= svg.getBoundingClientRect().width / vb.width;
    if (px < 11.95) bad.push(`${el.tagName} "${n.textContent.trim().slice(0, 30)}" ${px.toFixed(1)} px`);
  }
  return bad;
}"""


def test_every_wearer_page_fits_a_phone_with_readable_text(browser, site):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True, is_mobile=True,
                              has_touch=True, device_scale_factor=3)
    page = ctx.new_page()
    night = site["night"]
    pages = {"login": "/login"}
    page.goto(site["base"] + "/login")
    page.fill("input[name=name]", "sim-1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    pages |= {"summary": f"/w/sim-1/{night}", "nights": "/w/sim-1", "settings": "/settings",
              "report": f"/w/sim-1/{night}/report", "not-found": f"/w/sim-1/{night}x", "home": "/"}
    checked = 0
    for name, path in pages.items():
        if name == "login":
            c2 = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
            p2 = c2.new_page()
            p2.goto(site["base"] + path)
            target = p2
        else:
            page.goto(site["base"] + path)
            page.wait_for_load_state("networkidle")
            target = page
        for d in target.locator("details").all():  # open every fold: its text must fit too
            d.evaluate("el => el.open = true")
        assert target.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
            f"{name} ({path}) scrolls sideways at 390 px"
        small = target.evaluate(SMALL_TEXT)
        assert not small, f"{name} ({path}) has text under 12 px: {small[:8]}"
        target.screenshot(path=str(SHOTS / f"phone-{name}.png"), full_page=True)
        checked += 1
        if name == "login":
            c2.close()
    assert checked == len(pages)
    ctx.close()


def test_the_dashboard_serves_prometheus_metrics_to_this_machine_only(browser, site):
    from dashboard.web.metrics import is_loopback

    ctx, _ = login(browser, site, "sim-1", width=390)
    ctx.close()
    text = httpx.get(f"{site['base']}/metrics", timeout=30).text
    ok = re.search(r'^nightcramp_dashboard_logins_total\{result="ok"\} (\S+)$', text, re.M)
    assert ok and float(ok.group(1)) >= 1
    assert re.search(r"^nightcramp_dashboard_store_up 1\.0$", text, re.M)
    assert re.search(r'^nightcramp_dashboard_requests_total\{status="2xx"\} [1-9]', text, re.M)
    served = set(re.findall(r"^(nightcramp_\w+)", text, re.M))
    wanted = set(grafana_metrics("nightcramp_dashboard"))
    assert wanted and wanted <= served, wanted - served  # the Grafana dashboard in docs/ queries them
    for host, local in (("127.0.0.1", True), ("::1", True), ("10.0.0.5", False), ("testclient", False),
                        ("", False)):
        assert is_loopback(host) is local, host


def test_a_labs_scoring_is_imported_as_a_second_scorer_with_its_agreement(browser, site, tmp_path):
    """A clinician imports a PSG lab's scoring of the night (Noxturnal CSV, UTF-16, French labels)
    on the viewer; the page then shows the agreement per kind and Cohen's kappa for sleep/wake.
    A file that is not a scoring is refused with its reason and keeps the stored one; a wearer and
    a form without the CSRF token are refused."""
    a, night = site["analysis"], site["night"]
    start = dt.datetime.fromisoformat(a["recording"]["start"]).replace(tzinfo=None)

    def clock(s: float) -> str:
        return (start + dt.timedelta(seconds=s)).strftime("%d/%m/%Y %H:%M:%S")

    # the lab scored the same leg movements and the same wake epochs as nightcramp did
    hyp = site["store"].hypnogram("sim-1", night)
    rows = ["Heure de début,Heure de fin,Événement,Durée", "[],[],[],[s]"]
    rows += [f"{clock(k * hyp['epoch_s'])},{clock((k + 1) * hyp['epoch_s'])},{'Éveil' if w else 'N2'},30"
             for k, w in enumerate(hyp["wake"])]
    moves = [e for e in a["events"] if e["kind"] == "limb_movement"]
    rows += [f"{clock(e['start_s'])},{clock(e['end_s'])},MJ,{e['duration_s']:.1f}" for e in moves]
    lab = tmp_path / "lab.csv"
    lab.write_bytes("\r\n".join(rows).encode("utf-16"))
    ctx, page = login(browser, site, "dr-a", width=1400)
    page.goto(f"{site['base']}/w/sim-1/{night}/view")
    page.set_input_files("#scoring input[type=file]", str(lab))
    page.click("#scoring button[type=submit]")
    page.wait_for_selector("#agreement")
    row = page.locator("#agreement tr[data-kind=limb_movement] td")
    assert [row.nth(k).inner_text() for k in (1, 2, 3)] == [str(len(moves))] * 3
    assert row.nth(6).inner_text() == "1.00"
    assert "lab.csv" in page.inner_text("#scoring") and "imported by dr-a" in page.inner_text("#scoring")
    kappa = page.inner_text("#kappa")
    assert f"over {len(hyp['wake'])} epochs" in kappa and "agreement 100%" in kappa, kappa
    shot(page, "viewer-second-scorer")
    # a file that is not a scoring: the reason is shown and the stored scoring stays
    bad = tmp_path / "notes.csv"
    bad.write_text("this is not a scoring\n")
    page.set_input_files("#scoring input[type=file]", str(bad))
    page.click("#scoring button[type=submit]")
    page.wait_for_selector("#scoring .error")
    assert "notes.csv" in page.inner_text("#scoring .error")
    assert page.locator("#agreement").count() == 1 and "lab.csv" in page.inner_text("#scoring")
    ctx.close()
    # only a clinician with the form's token imports
    for name in ("sim-1", "dr-a"):
        with httpx.Client(base_url=site["base"]) as c:
            token = c.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
            r = c.post("/login", data={"name": name, "password": PASSWORD, "csrf": token})
            assert r.status_code == 303
            r = c.post(f"/w/sim-1/{night}/scoring", files={"file": ("lab.csv", lab.read_bytes())},
                       data={"csrf": "forged"})
            assert r.status_code == 403, (name, r.status_code)
    assert site["store"].scoring_info("sim-1", night)["source"] == "lab.csv"
