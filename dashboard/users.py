"""Dashboard accounts: argon2 password hashes, roles, clinician → wearer assignments, sessions.

One SQLite file (``dashboard.users_db`` in config/services.toml, default var/users.sqlite).
Roles: ``wearer`` (sees only their own nights, under their pseudonymous wearer id),
``clinician`` (sees the wearers assigned to them) and ``admin`` (sees everyone).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dashboard.roles import ROLES, UserError
from ingest.wire.ids import is_id

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
SESSION_S = 12 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, wearer TEXT, hash TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    clinician TEXT NOT NULL, wearer TEXT NOT NULL, PRIMARY KEY (clinician, wearer));
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY, name TEXT NOT NULL, csrf TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS prefs (
    name TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name, key));
"""
PREF_KEYS = ("montage",)  # what a user's pages remember (JSON values, each at most 8 kB)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    wearer: str | None  # for role wearer: the pseudonymous id their nights are stored under
    tz: str = "UTC"  # IANA time zone the pages show times in (the browser's, set at login)

    def may_see(self, wearer: str, assigned: set[str]) -> bool:
        if self.role == "admin":
            return True
        if self.role == "wearer":
            return wearer == self.wearer
        return wearer in assigned


def valid_tz(tz: str | None) -> bool:
    """An IANA time zone this machine knows (zoneinfo)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not tz or len(tz) > 64 or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", tz):
        return False
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _user(r: sqlite3.Row) -> User:
    return User(r["name"], r["role"], r["wearer"], r["tz"] or "UTC")


@dataclass(frozen=True)
class Session:
    token: str
    user: User
    csrf: str


class Users:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ph = PasswordHasher()
        with self._db() as db:
            db.executescript(_SCHEMA)
            cols = {r[1] for r in db.execute("PRAGMA table_info(users)")}
            if "tz" not in cols:  # accounts made before time zones were kept
                db.execute("ALTER TABLE users ADD COLUMN tz TEXT")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success and is always closed."""
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()

    # ------------------------------------------------------------------ accounts
    def add(self, name: str, password: str, role: str, wearer: str | None = None) -> User:
        if not _NAME.match(name):
            raise UserError(f"user name {name!r}: use 2-32 characters a-z, 0-9, '.', '_' or '-'")
        if role not in ROLES:
            raise UserError(f"role {role!r}: choose {', '.join(ROLES)}")
        if role == "wearer":
            wearer = wearer or name
            if not is_id(wearer):
                raise UserError(f"wearer id {wearer!r}: 1-32 characters a-z, 0-9 or '-'")
        elif wearer:
            raise UserError("--wearer-id is for wearer accounts only")
        _check_password(password)
        with self._db() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise UserError(f"user {name!r} exists already (change the password with 'users passwd')")
            db.execute("INSERT INTO users (name, role, wearer, hash, created) VALUES (?, ?, ?, ?, ?)",
                       (name, role, wearer, self.ph.hash(password), time.time()))
        return User(name, role, wearer)

    def passwd(self, name: str, password: str) -> None:
        _check_password(password)
        with self._db() as db:
            cur = db.execute("UPDATE users SET hash = ? WHERE name = ?", (self.ph.hash(password), name))
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}")
            db.execute("DELETE FROM sessions WHERE name = ?", (name,))  # log out everywhere

    def assign(self, clinician: str, wearer: str) -> None:
        u = self.get(clinician)
        if u is None or u.role != "clinician":
            raise UserError(f"{clinician!r} is not a clinician account")
        if not is_id(wearer):
            raise UserError(f"wearer id {wearer!r}: 1-32 characters a-z, 0-9 or '-'")
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO assignments VALUES (?, ?)", (clinician, wearer))

    def has_wearer(self, wearer: str) -> bool:
        """A wearer account stores its nights under ``wearer``, or a clinician is assigned to it."""
        with self._db() as db:
            return db.execute("SELECT 1 FROM users WHERE wearer = ? UNION SELECT 1 FROM assignments "
                              "WHERE wearer = ?", (wearer, wearer)).fetchone() is not None

    def set_tz(self, name: str, tz: str) -> None:
        """The IANA time zone ``name``'s pages show times in; UserError for an unknown zone."""
        if not valid_tz(tz):
            raise UserError(f"unknown time zone {tz!r} (an IANA name such as Europe/Zurich)")
        with self._db() as db:
            db.execute("UPDATE users SET tz = ? WHERE name = ?", (tz, name))

    def pref(self, name: str, key: str) -> object | None:
        """A remembered page setting of ``name`` (decoded JSON), or None."""
        with self._db() as db:
            r = db.execute("SELECT value FROM prefs WHERE name = ? AND key = ?", (name, key)).fetchone()
        return json.loads(r["value"]) if r else None

    def set_pref(self, name: str, key: str, value: object) -> None:
        """Remember a page setting; UserError for an unknown key or a value over 8 kB."""
        if key not in PREF_KEYS:
            raise UserError(f"unknown setting {key!r}: {', '.join(PREF_KEYS)}")
        text = json.dumps(value, separators=(",", ":"))
        if len(text) > 8192:
            raise UserError(f"setting {key!r} is {len(text)} bytes; at most 8192")
        with self._db() as db:
            db.execute("INSERT INTO prefs (name, key, value) VALUES (?, ?, ?) ON CONFLICT (name, key) "
                       "DO UPDATE SET value = excluded.value", (name, key, text))

    def get(self, name: str) -> User | None:
        with self._db() as db:
            r = db.execute("SELECT name, role, wearer, tz FROM users WHERE name = ?", (name,)).fetchone()
        return _user(r) if r else None

    def all(self) -> list[User]:
        with self._db() as db:
            rows = db.execute("SELECT name, role, wearer, tz FROM users ORDER BY name").fetchall()
        return [_user(r) for r in rows]

    def assigned(self, clinician: str) -> set[str]:
        with self._db() as db:
            rows = db.execute("SELECT wearer FROM assignments WHERE clinician = ?", (clinician,))
            return {r[0] for r in rows}

    def visible_wearers(self, user: User) -> list[str]:
        if user.role == "wearer":
            return [user.wearer] if user.wearer else []
        if user.role == "clinician":
            return sorted(self.assigned(user.name))
        with self._db() as db:
            ids = {r[0] for r in db.execute("SELECT wearer FROM users WHERE wearer IS NOT NULL")}
            ids |= {r[0] for r in db.execute("SELECT wearer FROM assignments")}
        return sorted(ids)

    def may_see(self, user: User, wearer: str) -> bool:
        return user.may_see(wearer, self.assigned(user.name) if user.role == "clinician" else set())

    # ------------------------------------------------------------------ sessions
    def login(self, name: str, password: str, tz: str | None = None) -> Session | None:
        """A new session for the right password; ``tz`` (the browser's zone) is kept when the
        account has none yet."""
        with self._db() as db:
            r = db.execute("SELECT name, role, wearer, tz, hash FROM users WHERE name = ?",
                           (name,)).fetchone()
        if r is None:
            self.ph.hash(password)  # same time for unknown names as for wrong passwords
            return None
        try:
            self.ph.verify(r["hash"], password)
        except (VerificationError, InvalidHashError):
            return None
        if self.ph.check_needs_rehash(r["hash"]):
            with self._db() as db:
                db.execute("UPDATE users SET hash = ? WHERE name = ?", (self.ph.hash(password), name))
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        user = _user(r)
        if r["tz"] is None and tz and valid_tz(tz):
            self.set_tz(name, tz)
            user = User(user.name, user.role, user.wearer, tz)
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),))
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                       (token, name, csrf, time.time() + SESSION_S))
        return Session(token, user, csrf)

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._db() as db:
            r = db.execute("SELECT s.token, s.csrf, s.expires, u.name, u.role, u.wearer, u.tz "
                           "FROM sessions s "
                           "JOIN users u ON u.name = s.name WHERE s.token = ?", (token,)).fetchone()
        if r is None or r["expires"] < time.time():
            return None
        return Session(r["token"], _user(r), r["csrf"])

    def logout(self, token: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE token = ?", (token,))


def _check_password(password: str) -> None:
    if len(password) < 10:
        raise UserError("password: at least 10 characters")
