"""``nightcramp collect``, ``detect`` and ``night close``, and ``simulate --live``: the live side."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dashboard.cli import common


def add_parsers(sub) -> None:
    """This group's commands on the ``nightcramp`` parser."""
    col = sub.add_parser("collect", help="run the BLE collector for one sensor (BLE in, MQTT or NATS out: "
                         "[transport] kind)")
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

    det = sub.add_parser("detect", help="run the detector service (MQTT in, InfluxDB out), or with --worker "
                         "one detector worker of a NATS JetStream cluster")
    det.add_argument("--services", type=Path,
                     help="services TOML (default services.toml on the configuration search path)")
    det.add_argument("--config", type=Path, help="detector configuration TOML")
    det.add_argument("--worker", action="store_true",
                     help="a detector worker on the NATS cluster of [nats] (also when [transport] kind = "
                     "\"nats\"): it holds its share of the wearer partitions (docs/scaling.md)")
    det.add_argument("--worker-id", help="this worker's name (default [nats] worker_id, or host-pid)")
    det.add_argument("-v", "--verbose", action="store_true")
    det.set_defaults(func=_detect)

    n = sub.add_parser("night", help="night commands")
    nsub = n.add_subparsers(metavar="ACTION")
    nc = nsub.add_parser("close", help="close a wearer's night now (summary is written)")
    nc.add_argument("--wearer", required=True)
    nc.add_argument("--services", type=Path)
    nc.add_argument("--force", action="store_true",
                    help="send the command even when no detector runs with this state_dir (one elsewhere)")
    nc.add_argument("--wait", type=float, default=30.0, metavar="S",
                    help="how long to wait for the detector to show the night open [s] (default 30)")
    nc.set_defaults(func=_night_close)



def simulate_live(args) -> int:
    from ingest.simulate import NightOptions
    from ingest.simulate.live import publish_nights

    if args.frame_s is not None and not 0.01 <= args.frame_s <= 10.0:
        raise ValueError(f"--frame-s {args.frame_s:g}: a frame holds 0.01 to 10 s of samples")
    sv = common.services(args.services)
    opts = NightOptions(hours=args.hours, seed=args.seed, fs_emg=args.fs_emg, fs_acc=args.fs_acc,
                        mains_hz=args.mains, cramps_per_night=args.cramps_per_night)
    nats = sv.transport.kind == "nats"
    where = (f"the NATS frames stream at {', '.join(sv.nats.servers)}" if nats
             else f"{sv.mqtt.host}:{sv.mqtt.port}")
    print(f"publishing {args.wearers} simulated {args.hours:g}-h night(s) at {args.speed:g}x to "
          f"{where}; truth in {args.output}/", file=sys.stderr)

    def progress(sent, t_night):
        print(f"  {t_night / 3600:.2f} h of night, {sent['frames']} frames sent", file=sys.stderr)

    if nats:
        from ingest.simulate.live import publish_nights_nats

        sent = publish_nights_nats(sv.nats.servers, opts, n_wearers=args.wearers, speed=args.speed,
                                   frame_s=args.frame_s, truth_dir=args.output, progress=progress,
                                   credentials_dir=sv.mqtt.credentials_dir)
        print(json.dumps(sent))
        return 0
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

    from ingest.ble.collector import (
        Collector,
        Publisher,
        SensorSpec,
        bluetooth_missing,
        connect_ble,
        connect_replay,
    )
    from ingest.ble.outbox import Outbox
    from ingest.ble.profile import load_profile
    from ingest.wire.ids import check_id
    from ingest.wire.mqtt_client import identity, port_for
    from ingest.wire.topics import sensor_topic

    sv = common.services(args.services)
    spec = SensorSpec(check_id(args.wearer, "wearer"), check_id(args.sensor, "sensor"), args.address,
                      args.side)
    if not args.replay and (why := bluetooth_missing()):
        raise OSError(why)
    profile = load_profile(args.profile)
    outbox = Outbox(args.outbox or Path(sv.stack.data_dir) / f"outbox-{spec.sensor}.sqlite")
    connect = (connect_replay(args.replay, profile, speed=args.speed, loss=args.replay_loss) if args.replay
               else connect_ble)
    pub: Any
    if sv.transport.kind == "nats":
        from ingest.ble.nats_publisher import JetStreamPublisher
        from ingest.wire.nats_bus import login

        # A frame leaves the outbox once the replicated stream has stored it (docs/scaling.md).
        pub = JetStreamPublisher(outbox, sv.nats.servers,
                                 name=f"nightcramp-collect-{spec.wearer}-{spec.sensor}",
                                 **login(sv.mqtt.credentials_dir, spec.wearer))
    else:
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
        by = "the frames stream" if sv.transport.kind == "nats" else "the detector"
        print(f"{len(outbox)} frames not yet confirmed stored by {by} stay in {outbox.path} and "
              "are sent again next time", file=sys.stderr)
    pub.stop()
    print(json.dumps({"stats": col.stats, "sent": pub.sent, "confirmed": getattr(pub, "confirmed", pub.sent),
                      "broker_connects": pub.connects, "resent": pub.resent, "waiting": len(outbox)}))
    return 0


def _detect(args) -> int:
    import logging
    import signal as sig

    from detector.service.live import DetectorService

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sv = common.services(args.services)
    if args.worker or sv.transport.kind == "nats":
        return _worker(args, sv)
    svc = DetectorService(sv, common.config(args.config))
    sig.signal(sig.SIGTERM, lambda *_: svc.stop())
    sig.signal(sig.SIGINT, lambda *_: svc.stop())
    try:
        svc.run()
    except ConnectionRefusedError:
        m = svc.services.mqtt
        raise OSError(f"no MQTT broker at {m.host}:{m.port} (start one with 'nightcramp stack up')") from None
    print(json.dumps({"stats": dict(svc.stats), "nights_closed": svc.closed}), file=sys.stderr)
    return 0


def _worker(args, sv) -> int:
    import signal as sig

    from detector.service.workers import Worker

    if args.worker_id:
        sv.nats.worker_id = args.worker_id
    w = Worker(sv, common.config(args.config))
    sig.signal(sig.SIGTERM, lambda *_: w.stop())
    sig.signal(sig.SIGINT, lambda *_: w.stop())
    try:
        w.run()
    except (OSError, TimeoutError) as exc:
        raise OSError(f"no NATS server answered at {', '.join(sv.nats.servers)} ({exc}); see "
                      "docs/scaling.md for starting a cluster") from None
    print(json.dumps({"worker": w.id, "stats": w.stats}), file=sys.stderr)
    return 0


def _night_close_nats(args, sv) -> int:
    """`night close` on the NATS cluster: the command goes into the wearer's partition of the
    frames stream, so the worker holding the night gets it in order with the frames."""
    import asyncio
    import time

    import nats

    from ingest.wire import jetstream
    from ingest.wire.ids import check_id
    from ingest.wire.mqtt_client import OPERATOR
    from ingest.wire.nats_bus import login
    from ingest.wire.topics import wearer_topic

    wearer = check_id(args.wearer, "wearer")

    async def main() -> None:
        try:
            nc = await nats.connect(servers=sv.nats.servers, connect_timeout=5, max_reconnect_attempts=2,
                                    **login(sv.mqtt.credentials_dir, OPERATOR))
        except Exception as exc:
            raise OSError(f"no NATS server answered at {', '.join(sv.nats.servers)} ({exc})") from None
        try:
            js = nc.jetstream(timeout=10)  # as the workers' own (ingest.wire.nats_bus): a busy cluster
            if not args.force:
                deadline = time.monotonic() + args.wait
                while True:
                    workers = await _workers_open_nights(js)
                    if any(wearer in n for n in workers.values()) or time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(0.5)
                if not workers:
                    raise OSError("no detector worker is running on the cluster (none in the "
                                  "nightcramp_workers bucket): nothing would close the night. Start one with "
                                  "'nightcramp detect --worker', or send the command anyway with --force")
                if not any(wearer in n for n in workers.values()):
                    opened = sorted({w for n in workers.values() for w in n})
                    raise ValueError(f"no worker has an open night for wearer {wearer!r} "
                                     f"(open nights: {', '.join(opened) or 'none'})")
            topic = wearer_topic(wearer, "control")
            payload = json.dumps({"cmd": "close-night", "at": time.time()}).encode()
            await js.publish(jetstream.subject(topic), payload, timeout=10,
                             headers={"Nats-Msg-Id": jetstream.msg_id(topic, payload)})
        finally:
            await nc.close()

    asyncio.run(main())
    print(f"asked the detector workers to close the night of {wearer}")
    return 0


async def _workers_open_nights(js) -> dict[str, list[str]]:
    """worker -> the nights it holds open, from the workers' heartbeats ({} when none runs)."""
    from nats.js.errors import BucketNotFoundError

    from ingest.wire.jetstream import kv_entries

    try:
        entries = await kv_entries(js, "nightcramp_workers")
    except BucketNotFoundError:
        return {}
    return {k: json.loads(v or b"{}").get("open_nights", []) for k, v in entries.items()}


def request_night_close(sv, wearer: str) -> None:
    """Ask the detector service (over MQTT) to close a wearer's night now."""
    from ingest.wire.mqtt_client import OPERATOR, make_client
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
    import time

    from dashboard import stack

    sv = common.services(args.services)
    if sv.transport.kind == "nats":
        return _night_close_nats(args, sv)
    if not args.force:
        # The detector rewrites its status every tick; frames just sent may not have opened the
        # night yet, so wait (a little) for a status that shows it open.
        deadline = time.monotonic() + args.wait
        while True:
            det = stack.detector_status(sv)
            open_nights = det.get("open_nights", []) if det and det["running"] else []
            if args.wearer in open_nights or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if det is None or not det["running"]:
            where = det["status_file"] if det else f"{sv.service.state_dir}/status.json"
            raise OSError(f"no detector service is running here (no fresh status in {where}): nothing "
                          "would close the night. Start it with 'nightcramp detect', or send the command "
                          "to a detector on another machine with --force")
        if args.wearer not in open_nights:
            raise ValueError(f"the detector has no open night for wearer {args.wearer!r} "
                             f"(open nights: {', '.join(open_nights) or 'none'})")
    request_night_close(sv, args.wearer)
    print(f"asked the detector to close the night of {args.wearer}")
    return 0
