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
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = ("install it with: sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "
                "mosquitto influxdb (or run 'make install' as root)")


class ServiceError(OSError):  # the CLI reports it in one line
    """A server could not be started; the message says which and why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(name: str, candidates: tuple[str, ...]) -> str:
    for c in candidates:
        path = shutil.which(c) or (c if os.path.isabs(c) and os.access(c, os.X_OK) else None)
        if path:
            return path
    raise ServiceError(f"{name} is not installed; {INSTALL_HINT}")


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


def _wait(check, server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            tail = server.log.read_text(errors="replace")[-800:] if server.log.exists() else ""
            raise ServiceError(f"{server.name} exited with code {server.proc.returncode}: {tail}")
        if check():
            return
        time.sleep(0.1)
    server.stop()
    raise ServiceError(f"{server.name} did not answer on 127.0.0.1:{server.port} within {timeout:g} s")


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
