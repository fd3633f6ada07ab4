"""Who may publish and read what on the NATS cluster (``[transport] kind = "nats"``), from the same
accounts as the MQTT broker (``[mqtt] credentials_dir``, docs/operations.md).

Each account's secret (``mqtt-<account>.secret``) is its NATS password too; the servers hold only
its bcrypt hash. The rules mirror the broker's ACL:

- a **collector** (an account named after its wearer) may publish only its own wearer's sensor
  subjects, ``nightcramp.v1.<wearer>.<sensor>.<kind>``, and read only replies on its own inbox
  prefix (``_INBOX_<wearer>``: the stream's acknowledgements). It cannot read frames, publish
  commands, or touch the JetStream API;
- the **operator** may publish commands (``nightcramp.v1.<wearer>.control``) and read which
  nights the workers hold (the ``nightcramp_workers`` bucket);
- the **detector** account (the workers) may do everything: it sets up the stream, the buckets and
  the consumers.

The servers check permissions on the subject *after* the partition mapping
(``nightcramp.p.<k>.v1.…``, ingest.wire.jetstream), so that is what the rules name; a collector
that published to a mapped subject itself could put its own wearer's frames in another partition
(a second worker would then analyse them), never another wearer's.

Inbox prefixes matter: consumers push frames to ``_INBOX.…`` subjects, so no account but the
detector may read ``_INBOX.>``.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from ingest.wire.mqtt_client import DETECTOR, OPERATOR, read_secret
from ingest.wire.nats_bus import inbox_prefix

BEGIN, END = "# nightcramp authorization begin", "# nightcramp authorization end"
WORKERS_KV = "KV_nightcramp_workers"


def _hash(secret: str) -> str:
    import bcrypt

    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=11)).decode()


def _permissions(account: str) -> dict | None:
    if account == DETECTOR:
        return None  # everything
    inbox = {"allow": [f"{inbox_prefix(account)}.>"]}
    if account == OPERATOR:
        api, kv = "$JS.API", WORKERS_KV
        # Reading the bucket takes its stream's subject index and a get per key
        # (ingest.wire.jetstream.kv_entries): no consumer, so none may be made.
        return {"publish": {"allow": [
            "nightcramp.p.*.v1.*.control", f"{api}.INFO", f"{api}.STREAM.INFO.{kv}",
            f"{api}.DIRECT.GET.{kv}.>", f"{api}.STREAM.MSG.GET.{kv}"]},
                "subscribe": inbox}
    return {"publish": {"allow": [f"nightcramp.p.*.v1.{account}.*.*"]}, "subscribe": inbox}


def authorization(cdir: Path) -> str:
    """The ``authorization`` block of a nats-server configuration for every account in ``cdir``
    (between markers, so :func:`rewrite` can replace it in place)."""
    users = []
    for f in sorted(Path(cdir).glob("mqtt-*.secret")):
        account = f.name.removeprefix("mqtt-").removesuffix(".secret")
        user: dict = {"user": account, "password": _hash(read_secret(f))}
        perms = _permissions(account)
        if perms is not None:
            user["permissions"] = perms
        users.append(user)
    if not users:
        raise ValueError(f"no accounts in {cdir}: 'nightcramp stack up' makes the detector's and the "
                         "operator's, 'nightcramp users add-sensor WEARER' a collector's")
    # JSON is valid NATS configuration syntax; the hashes' "$" must not be read as variables.
    body = ",\n    ".join(json.dumps(u) for u in users)
    return f"{BEGIN}\nauthorization {{\n  users = [\n    {body}\n  ]\n}}\n{END}\n"


def rewrite(conf: Path, cdir: Path) -> None:
    """Replace the authorization block of a member's configuration file (mode 600: it holds the
    password hashes)."""
    text = conf.read_text()
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + text[text.index(END) + len(END) + 1:]
    tmp = conf.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + authorization(cdir))
    os.replace(tmp, conf)


def reload(pid: int) -> None:
    """Make a running nats-server read its configuration again (accounts added or removed)."""
    os.kill(pid, signal.SIGHUP)
