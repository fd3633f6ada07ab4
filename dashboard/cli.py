"""The ``nightcramp`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dashboard.advice_cli import add_parsers as add_advice_parsers
from dashboard.scoring_cli import add_scoring_parser
from dashboard.web_cli import add_parsers as add_web_parsers

if TYPE_CHECKING:
    from detector.config import DetectorConfig

# Each command imports what it needs when it runs (numpy, scipy, pydantic, FastAPI …): building
# the parser stays quick, so `nightcramp --help` answers at once.


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from detector.config import ConfigError
    from ingest.recording import RecordingError

    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into head and the like: not an error
        sys.stderr.close()
        return 0
    except (RecordingError, ConfigError, ValueError, OSError) as exc:
        print(f"nightcramp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nightcramp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a user never sees a traceback unless asked for one
        if os.environ.get("NIGHTCRAMP_DEBUG"):
            raise
        print(f"nightcramp: internal error ({type(exc).__name__}: {exc}); rerun with "
              "NIGHTCRAMP_DEBUG=1 for details and report it", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nightcramp", description="Sleep-related leg cramps, leg "
                                "movements and night awakenings from leg EMG and acceleration.")
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(metavar="COMMAND")

    a = sub.add_parser("analyze", help="analyse a recording (EDF, EDF+, BDF, CSV)")
    a.add_argument("recording", type=Path)
    out = a.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print the analysis object (schema nightcramp.analysis/1)")
    out.add_argument("--csv", action="store_true", help="print the events table as CSV")
    a.add_argument("--config", type=Path,
                   help="detector configuration TOML (default detector.toml on the configuration search "
                   "path: $NIGHTCRAMP_CONFIG_DIR, ~/.config/nightcramp, the shipped defaults)")
    a.add_argument("--alias", action="append", default=[], metavar="LABEL=NAME",
                   help="map a file's label to a leg channel, e.g. 'Leg 1=EMG L-TibAnt' (repeatable)")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=_analyze)

    s = sub.add_parser("simulate", help="write a simulated night (EDF+) and its truth (JSON)")
    s.add_argument("output", type=Path)
    s.add_argument("--hours", type=float, default=8.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--fs-emg", type=float, default=1000.0, help="EMG sampling rate, Hz")
    s.add_argument("--fs-acc", type=float, default=50.0, help="accelerometer sampling rate, Hz")
    s.add_argument("--mains", type=float, default=50.0, choices=[0.0, 50.0, 60.0],
                   help="mains hum, Hz (0: none)")
    s.add_argument("--emg-unit", default="uV", choices=["uV", "mV"])
    s.add_argument("--acc-unit", default="g", choices=["g", "mg", "m/s2"])
    s.add_argument("--cramps-per-night", type=float, default=2.0,
                   help="mean cramps in 8 hours (scaled to --hours)")
    s.set_defaults(func=_simulate)

    s.add_argument("--live", action="store_true", help="publish over MQTT as virtual sensors instead of "
                   "writing a file (output is then the truth directory)")
    s.add_argument("--speed", type=float, default=60.0, help="with --live: times real time")
    s.add_argument("--wearers", type=int, default=1, help="with --live: how many wearers (sim-1, sim-2, …)")
    s.add_argument("--frame-s", type=float, default=None,
                   help="with --live: seconds of samples per MQTT frame (default: 0.1 s like a real sensor, "
                   "longer when --speed is high: speed/100, at most 10 s)")
    s.add_argument("--services", type=Path,
                   help="services TOML (default services.toml on the configuration search path)")

    col = sub.add_parser("collect", help="run the BLE collector for one sensor (BLE in, MQTT out)")
    col.add_argument("--wearer", required=True, help="pseudonymous wearer id")
    col.add_argument("--sensor", required=True, help="sensor id, e.g. left-shank")
    col.add_argument("--address", required=True, help="the sensor's BLE address")
    col.add_argument("--side", required=True, choices=["L", "R"], help="leg the sensor is worn on")
    col.add_argument("--profile", default="nightcramp-leg-v1", help="device profile in config/sensors/")
    col.add_argument("--outbox", type=Path, help="SQLite outbox (default var/outbox-<sensor>.sqlite)")
    col.add_argument("--replay", type=Path, help="replay a packet capture instead of a radio")
    col.add_argument("--speed", type=float, default=1.0, help="with --replay: times real time")
    col.add_argument("--replay-loss", type=float, default=0.0, help="with --replay: share of packets the "
                     "radio loses (0-1)")
    col.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    col.add_argument("--drain-s", type=float, default=60.0, help="on stopping, wait up to this long for "
                     "the detector to confirm the last frames stored (the rest stay in the outbox)")
    col.add_argument("--resend-s", type=float, default=30.0, help="a frame the broker took but the "
                     "detector has not confirmed stored after this long is sent again")
    col.add_argument("--services", type=Path)
    col.set_defaults(func=_collect)

    det = sub.add_parser("detect", help="run the detector service (MQTT in, InfluxDB out)")
    det.add_argument("--services", type=Path,
                     help="services TOML (default services.toml on the configuration search path)")
    det.add_argument("--config", type=Path, help="detector configuration TOML")
    det.add_argument("-v", "--verbose", action="store_true")
    det.set_defaults(func=_detect)

    n = sub.add_parser("night", help="night commands")
    nsub = n.add_subparsers(metavar="ACTION")
    nc = nsub.add_parser("close", help="close a wearer's night now (summary is written)")
    nc.add_argument("--wearer", required=True)
    nc.add_argument("--services", type=Path)
    nc.set_defaults(func=_night_close)

    add_advice_parsers(sub)
    add_web_parsers(sub)
    add_scoring_parser(sub)

    st = sub.add_parser("stack", help="local Mosquitto and InfluxDB (data under ./var)")
    st.add_argument("action", choices=["up", "down", "status"])
    st.add_argument("--services", type=Path)
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
    return p


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked for (importlib.metadata costs ~40 ms)."""

    def __init__(self, option_strings, dest, **kw) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the installed version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"nightcramp {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nightcramp")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _config(path: Path | None) -> DetectorConfig:
    from detector.config import load_config

    return load_config(path) if path else load_config()


def _aliases(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--alias {item!r}: expected LABEL=NAME, e.g. 'Leg 1=EMG L-TibAnt'")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _analyze(args) -> int:
    from dashboard.report import events_csv, text_summary
    from ingest.open import open_recording

    cfg = _config(args.config)
    rec = open_recording(args.recording, aliases=_aliases(args.alias))
    analysis = _run(rec, cfg, quiet=args.quiet)
    if args.json:
        json.dump(analysis.to_json(), sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    elif args.csv:
        sys.stdout.write(events_csv(analysis))
    else:
        print(text_summary(analysis))
    return 0


def _run(rec, cfg, *, quiet: bool):
    import threading

    from tqdm import tqdm

    from detector.advice import AdviceError, default_rules, with_advice
    from detector.analyze import analyze_recording

    # Loading the rules builds rule-engine's parser (pure Python, ~0.6 s); it overlaps with the
    # analysis, which spends most of its time in NumPy and SciPy with the GIL released.
    rules: list = []

    def load() -> None:
        try:
            rules.append(default_rules())
        except AdviceError:  # with_advice loads again and puts the reason in the notes
            pass

    loader = threading.Thread(target=load, name="advice-rules", daemon=True)
    loader.start()
    show = not quiet and rec.duration_s > 1800
    with tqdm(total=100, desc=f"analysing {rec.name}", unit="%", disable=not show or None,
              file=sys.stderr, leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}") as bar:
        def progress(frac: float) -> None:
            bar.update(round(100 * frac) - bar.n)
        analysis = analyze_recording(rec, cfg, progress=progress)
    loader.join()
    return with_advice(analysis, rules=rules[0] if rules else None)


def _services(path: Path | None):
    from detector.settings import load_services

    return load_services(path)


def _simulate(args) -> int:
    from ingest.simulate import NightOptions, plan_night, write_night

    if args.live:
        return _simulate_live(args)
    if not args.output.suffix.lower() == ".edf":
        raise ValueError(f"{args.output}: the simulator writes EDF+; use a .edf file name")
    if args.hours <= 0 or args.hours > 24:
        raise ValueError(f"--hours {args.hours}: must be between 0 and 24")
    opts = NightOptions(hours=args.hours, seed=args.seed, fs_emg=args.fs_emg, fs_acc=args.fs_acc,
                        mains_hz=args.mains, emg_unit=args.emg_unit, acc_unit=args.acc_unit,
                        cramps_per_night=args.cramps_per_night)
    plan = plan_night(opts)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    truth = write_night(plan, args.output, progress=lambda k: print(f"  channel {k}/8 written",
                                                                    file=sys.stderr))
    kinds: dict[str, int] = {}
    for e in plan.truth:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    print(f"wrote {args.output} ({args.hours:g} h, seed {args.seed}) and {truth}")
    print("truth: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    return 0


def _simulate_live(args) -> int:
    from ingest.live import publish_nights
    from ingest.simulate import NightOptions

    if args.frame_s is not None and not 0.01 <= args.frame_s <= 10.0:
        raise ValueError(f"--frame-s {args.frame_s:g}: a frame holds 0.01 to 10 s of samples")
    sv = _services(args.services)
    opts = NightOptions(hours=args.hours, seed=args.seed, fs_emg=args.fs_emg, fs_acc=args.fs_acc,
                        mains_hz=args.mains, cramps_per_night=args.cramps_per_night)
    print(f"publishing {args.wearers} simulated {args.hours:g}-h night(s) at {args.speed:g}x to "
          f"{sv.mqtt.host}:{sv.mqtt.port}; truth in {args.output}/", file=sys.stderr)

    def progress(sent, t_night):
        print(f"  {t_night / 3600:.2f} h of night, {sent['frames']} frames sent", file=sys.stderr)

    try:
        sent = publish_nights(sv.mqtt, opts, n_wearers=args.wearers, speed=args.speed,
                              frame_s=args.frame_s, truth_dir=args.output, progress=progress)
    except ConnectionRefusedError:
        raise OSError(f"no MQTT broker at {sv.mqtt.host}:{sv.mqtt.port} (start one with "
                      "'nightcramp stack up')") from None
    print(json.dumps(sent))
    return 0


def _collect(args) -> int:
    import asyncio
    import signal as sig

    from ingest.ble_profile import load_profile
    from ingest.collector import Collector, Publisher, SensorSpec, connect_ble, connect_replay
    from ingest.mqtt_client import identity, port_for
    from ingest.outbox import Outbox
    from ingest.wire.ids import check_id
    from ingest.wire.topics import sensor_topic

    sv = _services(args.services)
    spec = SensorSpec(check_id(args.wearer, "wearer"), check_id(args.sensor, "sensor"), args.address,
                      args.side)
    profile = load_profile(args.profile)
    outbox = Outbox(args.outbox or Path(sv.stack.data_dir) / f"outbox-{spec.sensor}.sqlite")
    connect = (connect_replay(args.replay, profile, speed=args.speed, loss=args.replay_loss) if args.replay
               else connect_ble)
    ident = identity(sv.mqtt, spec.wearer)
    will = sensor_topic(spec.wearer, spec.sensor, "status")
    cid = f"nightcramp-collect-{spec.wearer}-{spec.sensor}"
    offline = json.dumps({"state": "offline"})
    # End to end: a frame leaves the outbox only once the detector has stored it.
    pub = Publisher(outbox, sv.mqtt.host, port_for(sv.mqtt, ident), cid, will, offline, identity=ident,
                    ack_topic=sensor_topic(spec.wearer, spec.sensor, "ack"), resend_s=args.resend_s)
    pub.start()
    col = Collector(spec, profile, outbox, connect)
    print(f"collecting {spec.address} as {spec.wearer}/{spec.sensor} ({len(outbox)} frames waiting in "
          f"{outbox.path})", file=sys.stderr)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (sig.SIGINT, sig.SIGTERM):
            loop.add_signal_handler(s, stop.set)
        if args.seconds:
            loop.call_later(args.seconds, stop.set)
        await col.run(stop)

    asyncio.run(main())
    if not pub.drain(args.drain_s):
        print(f"{len(outbox)} frames not yet confirmed stored by the detector stay in {outbox.path} and "
              "are sent again next time", file=sys.stderr)
    pub.stop()
    print(json.dumps({"stats": col.stats, "sent": pub.sent, "confirmed": pub.confirmed,
                      "broker_connects": pub.connects, "resent": pub.resent, "waiting": len(outbox)}))
    return 0


def _detect(args) -> int:
    import logging
    import signal as sig

    from detector.service import DetectorService

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    svc = DetectorService(_services(args.services), _config(args.config))
    sig.signal(sig.SIGTERM, lambda *_: svc.stop())
    sig.signal(sig.SIGINT, lambda *_: svc.stop())
    try:
        svc.run()
    except ConnectionRefusedError:
        m = svc.services.mqtt
        raise OSError(f"no MQTT broker at {m.host}:{m.port} (start one with 'nightcramp stack up')") from None
    print(json.dumps({"stats": dict(svc.stats), "nights_closed": svc.closed}), file=sys.stderr)
    return 0


def _request_night_close(sv, wearer: str) -> None:
    """Ask the detector service (over MQTT) to close a wearer's night now."""
    from ingest.mqtt_client import OPERATOR, make_client
    from ingest.wire.topics import wearer_topic

    c, port = make_client(sv.mqtt, OPERATOR)
    acked: list = []
    c.on_publish = lambda _c, _u, _mid, rc, _p: acked.append(rc)
    c.connect(sv.mqtt.host, port)
    c.loop_start()
    try:
        c.publish(wearer_topic(wearer, "control"), json.dumps({"cmd": "close-night"}),
                  qos=1).wait_for_publish(10)
    finally:
        c.loop_stop()
        c.disconnect()
    if acked and acked[0].is_failure:
        raise PermissionError(f"the broker refused the close-night command ({acked[0]}): the operator "
                              "account (_operator) is missing from the credentials directory")


def _night_close(args) -> int:
    _request_night_close(_services(args.services), args.wearer)
    print(f"asked the detector to close the night of {args.wearer}")
    return 0


def _stack(args) -> int:
    from dashboard import stack

    sv = _services(args.services)
    if args.action == "up":
        state = stack.up(sv, args.services)
    elif args.action == "down":
        stopped = stack.down(sv)
        print("stopped: " + (", ".join(stopped) or "nothing was running"))
        return 0
    else:
        state = stack.status(sv)
    if not state:
        print("stack: nothing running (start it with 'nightcramp stack up')")
        return 0 if args.action == "status" else 1
    for name, info in state.items():
        print(f"{name:10} {'running' if info['running'] else 'stopped':8} pid {info['pid']:<8} "
              f"127.0.0.1:{info['port']}  log {info['log']}")
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
    from detector.store import InfluxStore
    from detector.store_accounts import settings_for
    from detector.summary import night_key
    from ingest.live import publish_nights
    from ingest.simulate import NightOptions, plan_night
    from ingest.simulate.writer import truth_json

    sv = _services(args.services)
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
    store = InfluxStore(settings_for(sv.store, "dashboard"))
    _request_night_close(sv, "sim-1")
    night = night_key(opts.start)
    deadline = time.monotonic() + 300
    stored = None
    while time.monotonic() < deadline:
        stored = store.analysis("sim-1", night)
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
    print(compare_table(stored["events"], truth_json(plan_night(opts))["events"]))
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
    from ingest.edf import read_edf_recording
    from ingest.simulate import NightOptions, plan_night, write_night
    from ingest.simulate.writer import truth_json

    cfg = _config(None)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"night-seed{args.seed}.edf"
    opts = NightOptions(hours=args.hours, seed=args.seed)
    plan = plan_night(opts)
    print(f"Simulating a {args.hours:g}-hour two-leg night (seed {args.seed}) → {path}")
    write_night(plan, path)
    rec = read_edf_recording(path)
    analysis = _run(rec, cfg, quiet=False)
    print()
    print(text_summary(analysis))
    print()
    print(compare_table(analysis.to_json()["events"], truth_json(plan)["events"]))
    return 0


def compare_table(events: list[dict], truth: list[dict]) -> str:
    """How detected events (analysis JSON or store rows) compare with the simulator's truth."""
    from detector.events import compare_events

    rows: list[tuple[str, dict]] = [("cramp", {}), ("awakening", {"sided": False}),
            ("limb_movement", {"subtypes": ("lm",), "ignore_kinds": ("voluntary", "cramp", "bed_exit",
                                                                      "artifact:lead_off")}),
            ("plm_series", {"sided": False, "subtypes": ("sleep",)}), ("rollover", {"sided": False}),
            ("bed_exit", {"sided": False})]
    lines = ["Compared with the simulator's truth (match = overlap, same side):",
             f"  {'kind':<14}{'truth':>6}{'found':>6}{'missed':>7}{'extra':>6}{'F1':>7}{'onset err':>11}"]
    for kind, kw in rows:
        m = compare_events(events, truth, kind, **kw).as_dict()
        err = m["median_onset_error_s"]
        f1 = m["f1"]
        lines.append(f"  {kind:<14}{m['tp'] + m['fn']:>6}{m['tp']:>6}{m['fn']:>7}{m['fp']:>6}"
                     f"{'' if f1 != f1 else f'{f1:.2f}':>7}{'' if err != err else f'{err:.1f} s':>11}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
