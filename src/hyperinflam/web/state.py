"""The web application's own small state database (sqlite3): users, audit trail, sign-in attempts,
API tokens and the server's secrets. It never holds clinical data.

Default path: ``<database>.web.sqlite`` next to the ``--db`` file (``--state PATH`` to choose).
Passwords are hashed with argon2id (argon2-cffi's defaults); API tokens and session ids are stored
as SHA-256 digests only (the token itself is shown once, when created). Sessions live here, not
in the cookie alone: signing out, a new password or role (``users add --replace``) and
``users remove`` end every session and token of the user at once, in every server process.
A user name that is not an account (a password typed into the wrong field, say) is kept in the
audit and sign-in failure tables only as ``unknown:`` + a short hash (:meth:`StateStore.sign_in_name`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hyperinflam.errors import StateError

ROLES = ("clinician", "researcher")
MIN_PASSWORD_LENGTH = 12

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
  created_at TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, user TEXT, role TEXT,
  action TEXT NOT NULL, stay_id TEXT, person_id TEXT, address TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS sign_in_failures (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, user TEXT, address TEXT);
CREATE TABLE IF NOT EXISTS api_tokens (
  digest TEXT PRIMARY KEY, user TEXT NOT NULL, created_at TEXT NOT NULL, label TEXT);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  digest TEXT PRIMARY KEY, user TEXT NOT NULL, role TEXT NOT NULL, created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL);
"""


@dataclass(frozen=True)
class User:
    name: str
    role: str


def default_state_path(db_path: str | Path) -> Path:
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".web.sqlite")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")


class StateStore:
    """Thread-safe access to the state database (one sqlite connection, serialised)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._hasher = PasswordHasher()
        try:
            self.path.chmod(0o600)
        except OSError:  # pragma: no cover - e.g. a filesystem without permissions
            pass

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _q(self, sql: str, args=()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- secrets ------------------------------------------------------------------------------
    def secret(self, name: str) -> str:
        """A random secret created on first use and kept (session signing, pseudonym key)."""
        rows = self._q("SELECT value FROM secrets WHERE name = ?", (name,))
        if rows:
            return rows[0][0]
        self._q("INSERT OR IGNORE INTO secrets VALUES (?, ?)", (name, secrets.token_hex(32)))
        return self._q("SELECT value FROM secrets WHERE name = ?", (name,))[0][0]

    # -- users --------------------------------------------------------------------------------
    def add_user(self, name: str, role: str, password: str, *, replace: bool = False) -> User:
        name = (name or "").strip()
        if not name or len(name) > 64 or any(ch.isspace() for ch in name):
            raise StateError(f"user name '{name}' is not valid: use 1-64 characters without spaces.")
        if role not in ROLES:
            raise StateError(f"role '{role}' is not known: use one of {', '.join(ROLES)}.")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise StateError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} "
                             f"characters.")
        exists = self._q("SELECT 1 FROM users WHERE name = ?", (name,))
        if exists and not replace:
            raise StateError(f"user '{name}' already exists: use --replace to set a new password "
                             f"or role.")
        digest = self._hasher.hash(password)
        self._q("INSERT OR REPLACE INTO users (name, role, password_hash, created_at, disabled) "
                "VALUES (?, ?, ?, ?, 0)", (name, role, digest, _now()))
        self.end_sessions(name)  # a new password or role: no old session or token goes on
        return User(name, role)

    def remove_user(self, name: str) -> None:
        if not self._q("SELECT 1 FROM users WHERE name = ?", (name,)):
            raise StateError(f"no user '{name}'.")
        self._q("DELETE FROM users WHERE name = ?", (name,))
        self.end_sessions(name)

    def list_users(self) -> list[dict]:
        rows = self._q("SELECT name, role, created_at, disabled FROM users ORDER BY name")
        return [dict(zip(("name", "role", "created_at", "disabled"), r)) for r in rows]

    def get_user(self, name: str) -> User | None:
        rows = self._q("SELECT name, role FROM users WHERE name = ? AND disabled = 0", (name,))
        return User(*rows[0]) if rows else None

    def verify_password(self, name: str, password: str) -> User | None:
        rows = self._q("SELECT name, role, password_hash FROM users WHERE name = ? AND "
                       "disabled = 0", (name,))
        if not rows:
            # Same work as a real check, so timing does not reveal which names exist.
            try:
                self._hasher.verify(self._dummy_hash(), password)
            except (VerificationError, InvalidHashError):
                pass
            return None
        user_name, role, digest = rows[0]
        try:
            self._hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if self._hasher.check_needs_rehash(digest):
            self._q("UPDATE users SET password_hash = ? WHERE name = ?",
                    (self._hasher.hash(password), user_name))
        return User(user_name, role)

    _dummy: str | None = None

    def _dummy_hash(self) -> str:
        if StateStore._dummy is None:
            StateStore._dummy = self._hasher.hash(secrets.token_hex(16))
        return StateStore._dummy

    # -- sessions -----------------------------------------------------------------------------
    def create_session(self, user: User, max_age_s: float) -> str:
        """A new session of ``user`` (its id goes into the signed cookie; only its digest here)."""
        sid = secrets.token_urlsafe(32)
        expires = (dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
                   + dt.timedelta(seconds=max_age_s)).isoformat(timespec="seconds")
        self._q("DELETE FROM sessions WHERE expires_at < ?", (_now(),))
        self._q("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                (_digest(sid), user.name, user.role, _now(), expires))
        return sid

    def session_user(self, sid: str | None) -> User | None:
        """The user of a live session: it exists, has not expired, and the account still has the
        role it was opened with."""
        if not sid:
            return None
        rows = self._q("SELECT s.user, s.role FROM sessions s JOIN users u ON u.name = s.user "
                       "AND u.role = s.role AND u.disabled = 0 WHERE s.digest = ? AND "
                       "s.expires_at >= ?", (_digest(sid), _now()))
        return User(*rows[0]) if rows else None

    def end_session(self, sid: str | None) -> None:
        if sid:
            self._q("DELETE FROM sessions WHERE digest = ?", (_digest(sid),))

    def end_sessions(self, name: str) -> None:
        """End every session and API token of user ``name``."""
        self._q("DELETE FROM sessions WHERE user = ?", (name,))
        self._q("DELETE FROM api_tokens WHERE user = ?", (name,))

    def sign_in_name(self, name: str) -> str:
        """How a sign-in's user name is recorded: as it is for an account, else ``unknown:`` and
        12 hex digits of a keyed hash (a password typed as the name is never stored)."""
        if self._q("SELECT 1 FROM users WHERE name = ?", (name,)):
            return name
        key = self.secret("sign-in-names").encode()
        return "unknown:" + hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:12]

    # -- sign-in limits -----------------------------------------------------------------------
    def record_failure(self, user: str, address: str) -> None:
        self._q("INSERT INTO sign_in_failures (time, user, address) VALUES (?, ?, ?)",
                (_now(), user, address))

    def recent_failures(self, *, user: str | None = None, address: str | None = None,
                        window_s: float) -> int:
        since = (dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
                 - dt.timedelta(seconds=window_s)).isoformat(timespec="seconds")
        if user is not None:
            return self._q("SELECT count(*) FROM sign_in_failures WHERE user = ? AND time >= ?",
                           (user, since))[0][0]
        return self._q("SELECT count(*) FROM sign_in_failures WHERE address = ? AND time >= ?",
                       (address, since))[0][0]

    def clear_failures(self, user: str) -> None:
        self._q("DELETE FROM sign_in_failures WHERE user = ?", (user,))

    # -- API tokens ---------------------------------------------------------------------------
    def create_token(self, user: str, label: str = "") -> str:
        if not self.get_user(user):
            raise StateError(f"no user '{user}': create it first with 'hyperinflam users add'.")
        token = "hit_" + secrets.token_urlsafe(32)
        self._q("INSERT INTO api_tokens VALUES (?, ?, ?, ?)",
                (hashlib.sha256(token.encode()).hexdigest(), user, _now(), label))
        return token

    def user_for_token(self, token: str) -> User | None:
        rows = self._q("SELECT user FROM api_tokens WHERE digest = ?",
                       (hashlib.sha256(token.encode()).hexdigest(),))
        return self.get_user(rows[0][0]) if rows else None

    # -- audit --------------------------------------------------------------------------------
    def audit(self, *, user: str | None, role: str | None, action: str, address: str | None,
              stay_id: str | None = None, person_id: str | None = None,
              detail: str | None = None) -> None:
        self._q("INSERT INTO audit (time, user, role, action, stay_id, person_id, address, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_now(), user, role, action, stay_id, person_id, address, detail))

    def audit_rows(self, *, limit: int = 200, user: str | None = None,
                   action: str | None = None) -> list[dict]:
        sql = "SELECT id, time, user, role, action, stay_id, person_id, address, detail FROM audit"
        where, args = [], []
        if user:
            where.append("user = ?")
            args.append(user)
        if action:
            where.append("action = ?")
            args.append(action)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        cols = ("id", "time", "user", "role", "action", "stay_id", "person_id", "address",
                "detail")
        return [dict(zip(cols, r)) for r in self._q(sql, args)]
