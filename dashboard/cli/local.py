"""``nightcramp stack`` and ``demo``: the local servers and the main job."""

from __future__ import annotations

import sys
from pathlib import Path

from dashboard.cli import common, live, recordings


def add_parsers(sub) -> None:
    """This group's commands on the ``nightcramp`` parser."""
    st = sub.add_parser("stack", help="local Mosquitto and InfluxDB (data under ./var)")
    st.add_argument("action", choices=["up", "down", "status"])
    st.add_argument("--services", type=Path)
    st.add_argument("--cluster", type=int, default=0, metavar="N",
                    help="with up: also N nats-servers with JetStream as one cluster, for detector workers "
                    "(nightcramp detect --worker; docs/scaling.md)")
    st.set_defaults(func=_stack)

    d = sub.add_parser("demo", help="the main job: local stack, detector service, a simulated night "
                       "published live, the morning summary read back and compared with the truth")
    d.add_argument("--hours", type=float, default=8.0)
    d.add_argument("--seed", type=int, default=6)
    d.add_argument("--speed", type=float, default=600.0)
    d.add_argument("--services", type=Path)
    d.add_argument("--offline", action="store_true",
                   help="no servers: write the night to an EDF file and analyse it")
    d.add_argument("--out", type=Path, default=Path("var/demo"))
    d.set_defaults(func=_demo)


def _stack(args) -> int:
    from dashboard import stack

    sv = common.services(args.services)
    if args.action == "up":
        if args.cluster < 0 or args.cluster > len(sv.nats.servers):
            raise ValueError(f"--cluster {args.cluster}: between 1 and the {len(sv.nats.servers)} "
                             "[nats] servers")
        state = stack.up(sv, args.services, cluster=args.cluster)
    elif args.action == "down":
        stopped = stack.down(sv)
        print("stopped: " + (", ".join(stopped) or "nothing was running"))
        return 0
    else:
        state = stack.status(sv)
    det = stack.detector_status(sv)
    if not state and not (det and det["running"]):
        print("stack: nothing running (start it with 'nightcramp stack up')")
        return 0 if args.action == "status" else 1
    for name, info in state.items():
        print(f"{name:10} {'running' if info['running'] else 'stopped':8} pid {info['pid']:<8} "
              f"127.0.0.1:{info['port']}  log {info['log']}")
    if det is None:
        print(f"{'detector':10} {'stopped':8} (never ran with state_dir {sv.service.state_dir}; "
              "start it with 'nightcramp detect')")
    else:
        nights = ", ".join(det.get("open_nights", [])) or "none"
        print(f"{'detector':10} {'running' if det['running'] else 'stopped':8} pid {det.get('pid', '?'):<8} "
              f"open nights: {nights}  status {det['status_file']}")
    if args.action == "up":
        print("stop it with: nightcramp stack down")
    return 0


def _demo(args) -> int:
    if args.offline:
        return _demo_offline(args)
    import signal as sig
    import subprocess
    import time

    from dashboard import stack
    from dashboard.report import text_summary
    from dashboard.review import reviewed_analysis
    from detector.engine.summary import night_key
    from detector.store.accounts import settings_for
    from detector.store.shards import open_store
    from ingest.simulate import NightOptions, plan_night
    from ingest.simulate.live import publish_nights
    from ingest.simulate.writer import truth_json

    sv = common.services(args.services)
    print("1. Local stack (Mosquitto, InfluxDB, the dashboard) on loopback, data under "
          f"{sv.stack.data_dir}/")
    if sv.mqtt.credentials_dir:  # the simulated wearer's collector needs a broker account
        from dashboard import broker_auth

        broker_auth.ensure(sv.mqtt.credentials_dir)
        broker_auth.add_account(sv.mqtt.credentials_dir, "sim-1")
        running = stack.status(sv).get("mosquitto")
        if running and running["running"]:
            broker_auth.reload(running["pid"])
    for name, info in stack.up(sv, args.services).items():
        print(f"   {name} pid {info['pid']} on 127.0.0.1:{info['port']}")
    data = Path(sv.stack.data_dir)
    log_path = data / "detector.log"
    cmd = [sys.executable, "-m", "dashboard.cli", "detect", "-v"]
    if args.services:
        cmd += ["--services", str(args.services)]
    with log_path.open("w") as log:
        det = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while "subscribed to frames" not in log_path.read_text() and time.monotonic() < deadline:
        if det.poll() is not None:
            raise OSError(f"the detector service stopped: {log_path.read_text()[-500:]}")
        time.sleep(0.2)
    print(f"2. Detector service running (pid {det.pid}, log {log_path})")
    opts = NightOptions(hours=args.hours, seed=args.seed)
    print(f"3. Publishing a simulated two-leg {args.hours:g}-hour night (seed {args.seed}) at "
          f"{args.speed:g}x real time as wearer sim-1 …")
    sent = publish_nights(sv.mqtt, opts, n_wearers=1, speed=args.speed, truth_dir=data / "demo")
    print(f"   {sent['frames']} frames, {sent['samples']} samples sent; closing the night")
    store = open_store(settings_for(sv.store, "dashboard"), sv.dashboard.users_db)
    live.request_night_close(sv, "sim-1")
    night = night_key(opts.start)
    deadline = time.monotonic() + 300
    stored = None
    while time.monotonic() < deadline:
        stored = reviewed_analysis(store, "sim-1", night)  # as the dashboard shows it
        if stored:
            break
        time.sleep(0.5)
    det.send_signal(sig.SIGTERM)
    det.wait(30)
    if not stored:
        raise OSError(f"the night was not stored within 5 minutes; see {log_path}")
    print(f"4. Morning summary read back from InfluxDB ({sv.store.url}, database {sv.store.database}):")
    print()
    print(text_summary(stored))
    print()
    print(recordings.compare_table(stored["events"], truth_json(plan_night(opts))["events"]))
    print()
    print(f"Samples stored: EMG {store.count_samples('sim-1', 'emg')}, "
          f"ACC {store.count_samples('sim-1', 'acc')}")
    store.close()
    print()
    print(_demo_accounts(sv, args.services))
    print("The stack is still running. Stop it with: .venv/bin/nightcramp stack down")
    return 0


DEMO_PASSWORD = "nightcramp-demo"  # printed by the demo; local loopback data only


def _demo_accounts(sv, services_path) -> str:
    """A demo wearer (sim-1) and clinician (demo-clinician) for the dashboard; kept if present."""
    from dashboard.users import Users

    users = Users(sv.dashboard.users_db)
    if users.get("sim-1") is None:
        users.add("sim-1", DEMO_PASSWORD, "wearer")
    if users.get("demo-clinician") is None:
        users.add("demo-clinician", DEMO_PASSWORD, "clinician")
    users.assign("demo-clinician", "sim-1")
    url = f"http://{sv.dashboard.host}:{sv.dashboard.port}/"
    return (f"5. Dashboard: open {url}\n"
            f"   as the wearer:    name sim-1           password {DEMO_PASSWORD}\n"
            f"   as the clinician: name demo-clinician  password {DEMO_PASSWORD} (viewer, review, export)\n"
            f"   (accounts in {sv.dashboard.users_db}; add your own with 'nightcramp users add')")


def _demo_offline(args) -> int:
    from dashboard.report import text_summary
    from ingest.recordings.edf import read_edf_recording
    from ingest.simulate import NightOptions, plan_night, write_night
    from ingest.simulate.writer import truth_json

    cfg = common.config(None)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"night-seed{args.seed}.edf"
    opts = NightOptions(hours=args.hours, seed=args.seed)
    plan = plan_night(opts)
    print(f"Simulating a {args.hours:g}-hour two-leg night (seed {args.seed}) → {path}")
    write_night(plan, path)
    rec = read_edf_recording(path)
    analysis = recordings.run(rec, cfg, quiet=False)
    print()
    print(text_summary(analysis))
    print()
    print(recordings.compare_table(analysis.to_json()["events"], truth_json(plan)["events"]))
    return 0
