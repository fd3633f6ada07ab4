"""The broker's accounts, access rules and TLS material, made by ``nightcramp stack up``.

Everything lives in one directory (``[mqtt] credentials_dir``, mode 700): a secret per account
(``mqtt-<account>.secret``, mode 600), Mosquitto's password file (hashed by Debian's
``mosquitto_passwd``; plain secrets never reach a command line), the ACL, and a CA with a server
certificate for the TLS listener (``cryptography``). See docs/operations.md.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from ingest.wire.ids import check_id
from ingest.wire.mqtt_client import DETECTOR, OPERATOR, secret_path, write_secret
from ingest.wire.topics import CONTROL_SUB, EVENTS_SUB, ROOT, SENSORS_SUB

# %u is the account name, which for a collector is its wearer id: it may write only its own
# frames and statuses and read only its own acknowledgements.
ACL = f"""# nightcramp: who may publish and read what (docs/operations.md)
pattern write {ROOT}/%u/+/emg
pattern write {ROOT}/%u/+/acc
pattern write {ROOT}/%u/+/status
pattern read {ROOT}/%u/+/ack

user {DETECTOR}
topic read {SENSORS_SUB}
topic read {CONTROL_SUB}
topic write {EVENTS_SUB}
topic write {ROOT}/+/+/ack

user {OPERATOR}
topic write {CONTROL_SUB}
topic read {EVENTS_SUB}
"""


class BrokerAuthError(RuntimeError):
    """Broker accounts could not be made; the message says why."""


def ensure(cdir: Path) -> Path:
    """The credentials directory with everything the broker needs (made once, then kept)."""
    cdir = Path(cdir)
    cdir.mkdir(parents=True, exist_ok=True)
    os.chmod(cdir, 0o700)
    for account in (DETECTOR, OPERATOR):
        if not secret_path(cdir, account).exists():
            write_secret(secret_path(cdir, account), secrets.token_urlsafe(24))
    (cdir / "mqtt.acl").write_text(ACL)
    os.chmod(cdir / "mqtt.acl", 0o600)
    if not (cdir / "server.pem").exists():
        _make_tls(cdir)
    write_password_file(cdir)
    return cdir


def add_account(cdir: Path, wearer: str) -> Path:
    """A collector account for ``wearer`` (its secret file, made if missing); the password file
    is rebuilt. Returns the secret file to copy to the collector."""
    check_id(wearer, "wearer")
    p = secret_path(cdir, wearer)
    if not p.exists():
        write_secret(p, secrets.token_urlsafe(24))
    write_password_file(cdir)
    return p


def remove_account(cdir: Path, account: str) -> None:
    secret_path(cdir, account).unlink(missing_ok=True)
    write_password_file(cdir)


def write_password_file(cdir: Path) -> None:
    """Mosquitto's password file from every secret file, hashed in place by mosquitto_passwd -U."""
    exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(exe).exists():
        raise BrokerAuthError("mosquitto_passwd not found: install the Debian package mosquitto "
                              "(make install does)")
    lines = []
    for f in sorted(Path(cdir).glob("mqtt-*.secret")):
        account = f.name.removeprefix("mqtt-").removesuffix(".secret")
        lines.append(f"{account}:{f.read_text().strip()}")
    tmp = Path(cdir) / "mqtt.passwd.tmp"
    write_secret(tmp, "\n".join(lines))
    r = subprocess.run([exe, "-U", str(tmp)], capture_output=True, text=True, timeout=60)
    if r.returncode:
        tmp.unlink(missing_ok=True)
        raise BrokerAuthError(f"mosquitto_passwd -U failed: {r.stderr.strip() or r.stdout.strip()}")
    os.replace(tmp, Path(cdir) / "mqtt.passwd")


def reload(pid: int) -> None:
    """Make a running Mosquitto read its password file and ACL again."""
    os.kill(pid, signal.SIGHUP)


def _make_tls(cdir: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nightcramp stack CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(host),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(socket.gethostbyname(host))))
    except OSError:
        pass
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    nokey = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    write_secret(cdir / "ca.key", ca_key.private_bytes(pem, pkcs8, nokey).decode().strip())
    write_secret(cdir / "server.key", key.private_bytes(pem, pkcs8, nokey).decode().strip())
    (cdir / "ca.pem").write_bytes(ca.public_bytes(pem))
    (cdir / "server.pem").write_bytes(cert.public_bytes(pem))
