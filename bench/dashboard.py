"""Dashboard speed on a stored 8-hour night with raw samples, in one run against a named peer.

A private InfluxDB gets an 8-hour two-leg night (2 EMG at 1 kHz + 2x3 ACC at 50 Hz, raw frames
as the collector sends them, its analysis and advice); ``nightcramp serve`` runs as its own
process. Measured, with medians and p95 (noisy shared machine):

1. the wearer's summary page, server time (request to last byte on loopback), goal <= 300 ms;
2. the viewer's first paint of the whole night in Debian's chromium (navigation start to every
   channel drawn), goal <= 1 s;
3. each zoom step (key press to every channel redrawn with the new span), p95 goal <= 200 ms;
4. peer: the same trace requests as bare InfluxDB queries (InfluxQL over HTTP, no processing),
   as a ratio: how much the dashboard adds on top of the database.

    .venv/bin/python bench/dashboard.py [--hours 8] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.sample_night import store_simulated_night  # noqa: E402
from dashboard.services import free_port, start_dashboard, start_influxd  # noqa: E402
from dashboard.users import Users  # noqa: E402
from detector.service.settings import load_services  # noqa: E402
from detector.store.influx import InfluxStore  # noqa: E402
from ingest.simulate import NightOptions  # noqa: E402

PASSWORD = "bench password"


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.95 * len(xs)))]


def login(client: httpx.Client) -> None:
    token = client.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
    r = client.post("/login", data={"name": "dr-bench", "password": PASSWORD, "csrf": token})
    if r.status_code != 303:
        raise SystemExit("login failed")


def main() -> int:
    ap = argparse.ArgumentParser(description="dashboard speed on a stored night")
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--frame-s", type=float, default=0.1, help="seconds per stored frame (as sensors send)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "dashboard.json")
    args = ap.parse_args()
    res: dict = {"hours": args.hours}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        influx = start_influxd(tmp / "influxdb")
        port = free_port()
        services = tmp / "services.toml"
        services.write_text(f"[store]\nurl = \"http://127.0.0.1:{influx.port}\"\ndatabase = \"bench\"\n"
                            f"spool_dir = \"{tmp / 'spool'}\"\n[dashboard]\nport = {port}\n"
                            f"users_db = \"{tmp / 'users.sqlite'}\"\n")
        sv = load_services(services)
        store = InfluxStore(sv.store)
        store.setup()
        print(f"storing a {args.hours:g}-hour night with raw samples (2 EMG at 1 kHz, 2x3 ACC at 50 Hz) …",
              flush=True)
        t = time.perf_counter()
        last = [0.0]

        def progress(sensor: str, frac: float) -> None:
            if frac - last[0] >= 0.1 or frac < last[0]:
                last[0] = frac
                print(f"  {sensor}: {100 * frac:.0f}%", flush=True)

        night, analysis = store_simulated_night(
            store, "w-bench", NightOptions(hours=args.hours, seed=4242, fs_emg=1000.0, fs_acc=50.0),
            frame_s=args.frame_s, progress=progress)
        res["store_s"] = time.perf_counter() - t
        res["raw_samples"] = store.count_samples("w-bench", "emg") + store.count_samples("w-bench", "acc")
        users = Users(sv.dashboard.users_db)
        users.add("dr-bench", PASSWORD, "clinician")
        users.assign("dr-bench", "w-bench")
        server = start_dashboard(tmp, "127.0.0.1", port, services)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=30) as c:
                login(c)
                page = f"/w/w-bench/{night}"
                c.get(page)  # warm-up
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    r = c.get(page)
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200
                res["summary_ms_median"] = 1000 * statistics.median(times)
                res["summary_ms_p95"] = 1000 * p95(times)
                # peer: the viewer's whole-night trace request vs the bare InfluxDB query behind it
                start_ns = int(__import__("datetime").datetime.fromisoformat(
                    analysis["recording"]["start"]).timestamp() * 1e9)
                dur = analysis["recording"]["duration_s"]
                ours, peer = [], []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    c.get(f"/api/w/w-bench/{night}/trace", params={"channel": "EMG L-Gastroc", "t0": 0,
                                                                    "t1": dur, "px": 1200})
                    ours.append(time.perf_counter() - t)
                    bucket = int(dur * 1e9 / 1200)
                    t = time.perf_counter()
                    window = f"time >= {start_ns} AND time < {start_ns + int(dur * 1e9)}"
                    store.query(f"SELECT MIN(\"min\"), MAX(\"max\") FROM \"env\" WHERE "
                                f"\"wearer\" = 'w-bench' AND \"channel\" = 'EMG L-Gastroc' AND {window} "
                                f"GROUP BY time({bucket}ns) fill(none)")
                    peer.append(time.perf_counter() - t)
                res["trace_whole_ms_median"] = 1000 * statistics.median(ours)
                res["influx_whole_ms_median"] = 1000 * statistics.median(peer)
                res["ratio_trace_to_influx"] = statistics.median(ours) / statistics.median(peer)
                res.update(export_edf(c, server.proc.pid, store, night, start_ns, dur))
                print(f"EDF+ export: {res['export_s']:.1f} s, server peak RSS "
                      f"{res['export_server_peak_mb']:.0f} MB", flush=True)
            res.update(browser(base, night, args.repeat))
        finally:
            server.stop()
            store.close()
            influx.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print()
    print(f"stored night: {res['raw_samples']} raw samples in {args.frame_s:g}-s frames, "
          f"{res['store_s']:.0f} s")
    print(f"summary page (server time): median {res['summary_ms_median']:.0f} ms, "
          f"p95 {res['summary_ms_p95']:.0f} ms (goal <= 300 ms)")
    print(f"viewer first paint, whole night, {res['channels']} channels: "
          f"median {res['first_paint_ms_median']:.0f} ms (goal <= 1000 ms)")
    print(f"zoom step: median {res['zoom_ms_median']:.0f} ms, p95 {res['zoom_ms_p95']:.0f} ms over "
          f"{res['zoom_steps']} steps down to {res['zoom_min_span_s']:.0f} s (goal p95 <= 200 ms); "
          f"median data request {res['zoom_fetch_ms_median']:.0f} ms, "
          f"drawing {res['zoom_draw_ms_median']:.0f} ms")
    print(f"whole-night trace request {res['trace_whole_ms_median']:.1f} ms vs the bare InfluxDB query "
          f"{res['influx_whole_ms_median']:.1f} ms -> {res['ratio_trace_to_influx']:.2f}x")
    print(f"EDF+ export of the whole night: {res['export_s']:.1f} s (goal <= 10 s for 8 h), "
          f"{res['export_mb']:.0f} MB file, server peak RSS {res['export_server_peak_mb']:.0f} MB "
          f"(+{res['export_server_added_mb']:.0f} MB during the export; goal <= 200 MB); "
          f"peer, the same raw samples read from InfluxDB: {res['raw_read_s']:.1f} s "
          f"-> ratio {res['ratio_export_to_raw_read']:.2f}")
    print(f"written {args.out}")
    return 0


def export_edf(c: httpx.Client, server_pid: int, store: InfluxStore, night: str, start_ns: int,
               dur: float) -> dict:
    """The whole night as EDF+ through the dashboard (time to the last byte, the server's peak
    RSS sampled every 20 ms), against the peer: reading the same raw samples from InfluxDB with
    no EDF written (the same 10-minute queries)."""
    import threading

    import psutil

    proc = psutil.Process(server_pid)
    base_rss = proc.memory_info().rss
    peak = [base_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t = time.perf_counter()
    size = 0
    with c.stream("GET", f"/w/w-bench/{night}/export.edf", timeout=600) as r:
        assert r.status_code == 200, r.status_code
        for chunk in r.iter_bytes():
            size += len(chunk)
    export_s = time.perf_counter() - t
    done.set()
    th.join()
    rec = store.recording("w-bench", night) or {}
    t = time.perf_counter()
    by_stream: dict[str, list[str]] = {}
    for ch in rec.get("channels", []):
        by_stream.setdefault(ch["kind"], []).append(ch["label"])
    for a in range(0, int(dur) + 1, 600):
        for stream, labels in by_stream.items():
            store.raw_many("w-bench", labels, stream, start_ns + a * 10**9, start_ns + (a + 600) * 10**9)
    peer_s = time.perf_counter() - t
    return {"export_s": export_s, "export_mb": size / 1e6, "export_server_peak_mb": peak[0] / 1e6,
            "export_server_added_mb": (peak[0] - base_rss) / 1e6, "raw_read_s": peer_s,
            "ratio_export_to_raw_read": export_s / peer_s}


def browser(base: str, night: str, repeat: int) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        # bypass_csp: Playwright's wait_for_function evaluates its predicate with eval, which the
        # pages' CSP forbids (as in tests/test_dashboard.py)
        ctx = b.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        page = ctx.new_page()
        page.goto(f"{base}/login")
        page.fill("input[name=name]", "dr-bench")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        paints = []
        for _ in range(max(3, repeat // 4)):
            page.goto(f"{base}/w/w-bench/{night}/view")
            page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
            paints.append(page.evaluate("performance.now()"))  # ms since navigation start
        out["first_paint_ms_median"] = statistics.median(paints)
        out["channels"] = page.locator(".chan").count()
        steps, fetches, draws, span = [], [], [], None
        for _ in range(2):  # zoom from the whole night to 2 s, twice
            page.keyboard.press("Home")
            page.wait_for_function("document.querySelector('#viewer').dataset.state === 'ready'")
            for _ in range(16):
                t = page.evaluate("performance.now()")
                page.keyboard.press("+")
                page.wait_for_function("document.querySelector('#viewer').dataset.state === 'ready'")
                steps.append(page.evaluate("performance.now()") - t)
                timing = page.evaluate("window.ncViewer.timing")
                fetches.append(timing["fetch_ms"])
                draws.append(timing["draw_ms"])
                v = page.evaluate("window.ncViewer.view")
                span = v[1] - v[0]
                if span <= 2.0 + 1e-6:
                    break
        out["zoom_ms_median"] = statistics.median(steps)
        out["zoom_ms_p95"] = p95(steps)
        out["zoom_steps"] = len(steps)
        out["zoom_fetch_ms_median"] = statistics.median(fetches)
        out["zoom_draw_ms_median"] = statistics.median(draws)
        out["zoom_min_span_s"] = span
        b.close()
    return out


if __name__ == "__main__":
    sys.exit(main())
