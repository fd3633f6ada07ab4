"""``nightcramp stack up|down|status``: Mosquitto, InfluxDB and the dashboard for a user, on
loopback, data under ./var."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlparse

from dashboard import broker_auth, influx_auth
from dashboard.services import (
    ServiceError,
    reserve_ports,
    start_dashboard,
    start_influxd,
    start_mosquitto,
    start_nats_cluster,
)
from detector.service.settings import Services


def _state_file(services: Services) -> Path:
    return Path(services.stack.data_dir) / "stack.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def status(services: Services) -> dict[str, dict]:
    f = _state_file(services)
    state = json.loads(f.read_text()) if f.exists() else {}
    return {name: {**info, "running": _alive(info["pid"])} for name, info in state.items()}


def detector_status(services: Services) -> dict | None:
    """The detector service's own status (``[service] state_dir/status.json``, rewritten every
    tick), with ``running``: its process is alive and the status is fresh. None if no detector
    ever ran with this state directory."""
    f = Path(services.service.state_dir) / "status.json"
    try:
        body = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    fresh = time.time() - float(body.get("at", 0)) < max(30.0, 10 * float(body.get("tick_s", 1.0)))
    return {**body, "running": bool(body.get("running", True)) and fresh and _alive(int(body.get("pid", 0))),
            "status_file": str(f)}


def up(services: Services, services_path: Path | None = None, cluster: int = 0) -> dict[str, dict]:
    """Start whatever is not running; returns the state (name -> pid, port, running).
    ``cluster``: also that many nats-servers with JetStream, one cluster, on the ports of the
    first ``[nats] servers`` (docs/scaling.md)."""
    data = Path(services.stack.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in status(services).items() if v["running"]}
    # The ports the services file names, the NATS members' cluster (+1000) and monitoring
    # (+2000) ones too, are never picked for a helper port (InfluxDB's RPC) meanwhile: a member
    # finding its port taken would die.
    nats_ports = [urlparse(u).port or 4222 for u in services.nats.servers] if cluster else []
    reserve_ports([services.mqtt.port, services.mqtt.tls_port, urlparse(services.store.url).port,
                   services.dashboard.port, *(q + o for q in nats_ports for o in (0, 1000, 2000))])

    def save() -> None:  # after each start, so `stack down` finds whatever did start
        _state_file(services).write_text(json.dumps({k: {x: v[x] for x in ("pid", "port", "log", "tls_port")
                                                         if x in v} for k, v in state.items()}, indent=1))

    if "mosquitto" not in state:
        mq = services.mqtt
        cdir = broker_auth.ensure(mq.credentials_dir) if mq.credentials_dir else None
        m = start_mosquitto(data / "mosquitto", mq.port, credentials_dir=cdir, tls_port=mq.tls_port,
                            tls_bind=mq.tls_bind, max_queued_mb=mq.max_queued_mb,
                            max_packet_kb=mq.max_packet_kb)
        state["mosquitto"] = {"pid": m.pid, "port": m.port, "log": str(m.log),
                              **({"tls_port": m.tls_port} if cdir else {})}
        save()
    if "influxd" not in state:
        st = services.store
        port = urlparse(st.url).port or 8086
        i = start_influxd(data / "influxdb", port, auth=bool(st.credentials_dir))
        state["influxd"] = {"pid": i.pid, "port": i.port, "log": str(i.log)}
        save()
        if st.credentials_dir:  # users first: the services log in as their own
            influx_auth.provision(st.url, Path(st.credentials_dir), st.database, st.raw_rp, st.raw_retention)
    if cluster and not all(f"nats-n{j + 1}" in state for j in range(cluster)):
        ports = [urlparse(u).port or 4222 for u in services.nats.servers]
        if len(ports) < cluster:
            raise ServiceError(f"--cluster {cluster}: [nats] servers lists only {len(ports)} servers")
        for j in range(cluster):  # a partly running cluster is started again whole
            old = state.pop(f"nats-n{j + 1}", None)
            if old:
                os.kill(old["pid"], signal.SIGTERM)
        # The broker's accounts, with the same secrets, are the cluster's (dashboard.nats_auth).
        cdir = services.mqtt.credentials_dir
        nodes = start_nats_cluster(data / "nats", cluster, client_ports=ports[:cluster],
                                   partitions=services.nats.partitions,
                                   accounts=broker_auth.ensure(cdir) if cdir else None)
        for j, node in enumerate(nodes):
            state[f"nats-n{j + 1}"] = {"pid": node.pid, "port": node.port, "log": str(node.log)}
        save()
    if "dashboard" not in state:
        d = start_dashboard(data, services.dashboard.host, services.dashboard.port, services_path)
        state["dashboard"] = {"pid": d.pid, "port": d.port, "log": str(d.log)}
        save()
    return status(services)


def down(services: Services, timeout: float = 15.0) -> list[str]:
    stopped = []
    for name, info in status(services).items():
        if info["running"]:
            os.kill(info["pid"], signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(info["pid"]) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(info["pid"]):
                os.kill(info["pid"], signal.SIGKILL)
            stopped.append(name)
    f = _state_file(services)
    if f.exists():
        f.unlink()
    return stopped


__all__ = ["ServiceError", "down", "status", "up"]
