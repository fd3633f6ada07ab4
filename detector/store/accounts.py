"""Which InfluxDB user each program logs in as (the users are made by the stack,
dashboard/influx_auth.py; docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

ADMIN = "nc_admin"
# role -> (user, what it may do on the nightcramp database)
ROLES = {"detector": ("nc_detector", "ALL"), "dashboard": ("nc_dashboard", "ALL"),
         "reader": ("nc_reader", "READ")}


def secret_file(cdir: Path, user: str) -> Path:
    return Path(cdir) / f"influx-{user}.secret"


def settings_for(store_settings, role: str):
    """``[store]`` settings as the program in ``role`` (detector, dashboard, reader) uses them:
    its own user when the credentials directory holds that user's secret, else unchanged."""
    cdir = store_settings.credentials_dir
    if not cdir or store_settings.auth != "none" or role not in ROLES:
        return store_settings
    user = ROLES[role][0]
    f = secret_file(cdir, user)
    if not f.exists():
        return store_settings
    return store_settings.model_copy(update={"auth": "basic", "username": user, "password_file": f})
