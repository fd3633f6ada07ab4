"""InfluxDB users for the stack: an admin, and one account per program with what it needs.

``nightcramp stack up`` with ``[store] credentials_dir`` starts InfluxDB with authentication on
and, on first start, makes (secrets in ``influx-<user>.secret``, mode 600):

- ``nc_admin``: administers the server (databases, retention, backups); used by the stack only;
- ``nc_detector``: reads and writes the nightcramp database (samples, events, nights; it reads
  the wearer's history for the advice);
- ``nc_dashboard``: reads it and writes what clinicians and wearers add (reviews, check-ins,
  advice after a review);
- ``nc_reader``: reads only (reports, Grafana and the like).

The RPC port (``influxd backup``) listens on loopback only (dashboard.services.start_influxd).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from detector.store.accounts import ADMIN, ROLES, secret_file
from ingest.wire.mqtt_client import read_secret, write_secret


class InfluxAuthError(RuntimeError):
    """Users could not be made; the message has InfluxDB's answer."""


def ensure_secrets(cdir: Path) -> None:
    Path(cdir).mkdir(parents=True, exist_ok=True, mode=0o700)
    for user in (ADMIN, *(u for u, _ in ROLES.values())):
        if not secret_file(cdir, user).exists():
            write_secret(secret_file(cdir, user), secrets.token_urlsafe(24))


def provision(url: str, cdir: Path, database: str, raw_rp: str, raw_retention: str) -> None:
    """Admin first (InfluxDB lets the first admin be made without credentials), then the
    database, its raw-sample policy and the service users with their grants. Idempotent."""
    ensure_secrets(cdir)
    admin = (ADMIN, read_secret(secret_file(cdir, ADMIN)))
    with httpx.Client(base_url=url, timeout=10.0) as http:
        def q(text: str, auth=admin) -> dict:
            r = http.post("/query", data={"q": text}, auth=auth)
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            err = body.get("error") or next((x.get("error") for x in body.get("results", []) if "error" in x),
                                            None)
            if r.status_code >= 400 or err:
                raise InfluxAuthError(f"InfluxDB refused {text.split(' WITH ')[0]!r} ({r.status_code}): "
                                      f"{err or r.text.strip()}")
            return body

        users = None
        try:
            users = {row[0] for res in q("SHOW USERS")["results"] for s in res.get("series", [])
                     for row in s["values"]}
        except InfluxAuthError:
            # No admin yet: InfluxDB accepts this one statement without credentials.
            q(f"CREATE USER \"{ADMIN}\" WITH PASSWORD '{admin[1]}' WITH ALL PRIVILEGES", auth=None)
            users = {ADMIN}
        q(f'CREATE DATABASE "{database}"')
        q(f'CREATE RETENTION POLICY "{raw_rp}" ON "{database}" DURATION {raw_retention} REPLICATION 1'
          if raw_rp not in _policies(q, database) else
          f'ALTER RETENTION POLICY "{raw_rp}" ON "{database}" DURATION {raw_retention}')
        for user, grant in ROLES.values():
            pw = read_secret(secret_file(cdir, user))
            if user not in users:
                q(f"CREATE USER \"{user}\" WITH PASSWORD '{pw}'")
            else:
                q(f"SET PASSWORD FOR \"{user}\" = '{pw}'")  # a rotated secret file takes effect
            q(f'GRANT {grant} ON "{database}" TO "{user}"')


def _policies(q, database: str) -> set[str]:
    res = q(f'SHOW RETENTION POLICIES ON "{database}"')["results"]
    return {row[0] for r in res for s in r.get("series", []) for row in s["values"]}

