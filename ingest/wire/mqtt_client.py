"""One way every nightcramp program connects to the broker: its account, its secret, TLS.

Accounts (docs/operations.md): each wearer's collector logs in as the wearer id and may publish
only under ``nightcramp/v1/<wearer>/…``; the detector service is ``_detector``; control commands
(``nightcramp night close``) come from ``_operator``. Names starting with ``_`` can never be
wearer ids. A secret is read from ``<credentials_dir>/mqtt-<account>.secret`` (mode 600, made by
``nightcramp stack up`` and ``nightcramp users add-sensor``), never from the command line; with
no such file the client connects without a password (a broker that allows that: tests,
development). TLS is used when ``tls`` is set, and by default for any broker off loopback.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

DETECTOR = "_detector"
OPERATOR = "_operator"


class CredentialsError(OSError):
    """A secret file that must not or cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Identity:
    """Who connects: account name, its secret (None: no password) and the TLS CA (None: plain)."""

    account: str
    password: str | None
    ca_file: Path | None


def secret_path(credentials_dir: Path, account: str) -> Path:
    return Path(credentials_dir) / f"mqtt-{account}.secret"


def read_secret(path: Path) -> str:
    """The secret in ``path``; refused when others may read the file."""
    st = path.stat()
    if st.st_mode & 0o077:
        raise CredentialsError(f"{path}: readable by other users (mode {st.st_mode & 0o777:o}); "
                               f"run 'chmod 600 {path}'")
    return path.read_text().strip()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


def identity(settings, account: str) -> Identity:
    """The identity ``account`` uses with these ``[mqtt]`` settings (see module docstring)."""
    cdir = getattr(settings, "credentials_dir", None)
    password = None
    if cdir:
        p = secret_path(cdir, account)
        if p.exists():
            password = read_secret(p)
    tls = settings.tls if settings.tls is not None else not is_loopback(settings.host)
    ca = None
    if tls:
        ca = Path(settings.ca_file) if settings.ca_file else (Path(cdir) / "ca.pem" if cdir else None)
        if ca is None or not ca.exists():
            raise CredentialsError(f"TLS to {settings.host} needs the broker's CA certificate "
                                   f"({ca or 'set [mqtt] ca_file'}): copy it from the stack's secrets")
    return Identity(account, password, ca)


def port_for(settings, ident: Identity) -> int:
    """The broker port: its TLS listener when TLS is used."""
    return settings.tls_port if ident.ca_file else settings.port


def make_client(settings, account: str, *, client_id: str = "", **kw) -> tuple[mqtt.Client, int]:
    """An MQTT v5 client logged in as ``account`` (TLS set up as needed) and the port to use."""
    ident = identity(settings, account)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, **kw)
    apply_identity(client, ident)
    return client, port_for(settings, ident)


def apply_identity(client: mqtt.Client, ident: Identity) -> None:
    if ident.password is not None:
        client.username_pw_set(ident.account, ident.password)
    elif ident.account and not ident.account.startswith("_"):
        client.username_pw_set(ident.account)  # a username alone: what ACL patterns (%u) need
    if ident.ca_file:
        client.tls_set(ca_certs=str(ident.ca_file))


def write_secret(path: Path, secret: str) -> None:
    """Create or replace a secret file with mode 600 from the start (never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.replace(tmp, path)
