"""Operators and their roles: the users file, argon2 passwords, signed session cookies, CSRF.

Users file (``thermal-edge console adduser NAME``): one user per line, ``name:role:argon2-hash``;
``#`` comments. Roles are ordered: ``viewer`` (sees) < ``operator`` (takes, acknowledges, closes
alerts) < ``admin`` (also settings and retention). The file is re-read when it changes, so a
removed user or a changed role applies at the user's next request.

Sessions: Starlette's SessionMiddleware (itsdangerous-signed cookie, HttpOnly, SameSite=Lax,
Secure under TLS) holding ``user`` and ``csrf``. Every state-changing request carries the
session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``): endpoints are
wrapped with ``csrf_protected``; ``unprotected_posts(app)`` lists any that are not (a test pins
it empty).
"""
from __future__ import annotations

import functools
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from edge.errors import UserError

log = logging.getLogger(__name__)

ROLES = ("viewer", "operator", "admin")  # ordered: each role can do what the ones before it can
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD_CHARS = 8
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_HASHER = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
# verified against when the user does not exist, so a wrong name costs as long as a wrong password
_DUMMY_HASH = _HASHER.hash("not a password")


class UsersFileError(UserError):
    """The users file is missing, unreadable or malformed (message names file and line)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UserError(f"user name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"role {role!r}; allowed: {', '.join(ROLES)}")
    return role


def parse_users(text: str, where: str) -> dict[str, tuple[str, str]]:
    """Users file text -> {name: (role, hash)}; UsersFileError naming ``where:line`` if malformed."""
    users: dict[str, tuple[str, str]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not NAME_RE.match(parts[0]) or parts[1] not in ROLES or not parts[2].startswith("$argon2"):
            raise UsersFileError(f"{where}:{lineno}: expected 'name:role:$argon2...' with role one of {', '.join(ROLES)}")
        users[parts[0]] = (parts[1], parts[2])
    return users


class Users:
    """The users file, re-read when its modification time changes. Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._mtime: float | None = None
        self._users: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def _load(self) -> dict[str, tuple[str, str]]:
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                self._users, self._mtime = {}, None
                return self._users
            if mtime != self._mtime:
                try:
                    text = self.path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as e:
                    raise UsersFileError(f"{self.path}: cannot read the users file: {e}") from None
                self._users, self._mtime = parse_users(text, str(self.path)), mtime
            return self._users

    def get(self, name: str) -> User | None:
        entry = self._load().get(name)
        return User(name, entry[0]) if entry else None

    def count(self) -> int:
        return len(self._load())

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is right, else None (same cost whether or not the name exists)."""
        entry = self._load().get(name)
        try:
            _HASHER.verify(entry[1] if entry else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return User(name, entry[0]) if entry else None

    def set(self, name: str, role: str, password: str) -> bool:
        """Add or replace a user (atomic rewrite, mode 0600). Returns True if it was new."""
        check_name(name)
        check_role(role)
        if len(password) < MIN_PASSWORD_CHARS:
            raise UserError(f"password too short: at least {MIN_PASSWORD_CHARS} characters")
        users = dict(self._load())
        new = name not in users
        users[name] = (role, _HASHER.hash(password))
        self._write(users)
        return new

    def remove(self, name: str) -> bool:
        users = dict(self._load())
        if users.pop(name, None) is None:
            return False
        self._write(users)
        return True

    def _write(self, users: dict[str, tuple[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        lines = ["# thermal-edge console users: name:role:argon2 hash (managed by `thermal-edge console adduser`)"]
        lines += [f"{n}:{r}:{h}" for n, (r, h) in sorted(users.items())]
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, self.path)


def load_secret(path: str | Path) -> str:
    """The session signing secret kept in ``path`` (created, mode 0600, on first use), so sessions
    survive a console restart and several console instances can share it."""
    path = Path(path)
    try:
        if path.is_file():
            secret = path.read_text(encoding="utf-8").strip()
            if len(secret) >= 32:
                return secret
            raise UserError(f"{path}: session secret too short (need >= 32 characters; delete it to regenerate)")
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        return secret
    except OSError as e:
        raise UserError(f"{path}: cannot read or create the session secret: {e.strerror or e}") from None


# --- per-request helpers ------------------------------------------------------------------------

def csrf_token(request: Request) -> str:
    """This session's CSRF token (created on first use); templates put it in every form."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def current_user(request: Request) -> User | None:
    """The logged-in user, checked against the users file on every request (None if logged out,
    removed, or the session is older than the configured maximum)."""
    name = request.session.get("user")
    if not name:
        return None
    users: Users = request.app.state.users
    user = users.get(name)
    if user is None:
        request.session.pop("user", None)
    return user


class LoginRequired(HTTPException):
    def __init__(self) -> None:
        super().__init__(401, "log in first")


def require(request: Request, role: str = "viewer") -> User:
    """The current user if they have ``role`` (401 when not logged in, 403 when the role is too low)."""
    user = current_user(request)
    if user is None:
        raise LoginRequired()
    if not user.can(role):
        raise HTTPException(403, f"this needs the {role} role; {user.name} is {user.role}")
    return user


async def check_csrf(request: Request) -> None:
    """403 unless the request carries this session's CSRF token (header or form field)."""
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            sent = (await request.form()).get(CSRF_FIELD)
        except Exception:  # malformed body: same answer as a missing token
            sent = None
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise HTTPException(403, "missing or stale CSRF token: reload the page and try again")


Endpoint = Callable[[Request], Awaitable[Response]]


def csrf_protected(endpoint: Endpoint) -> Endpoint:
    """Wrap a state-changing endpoint: CSRF is checked before it runs."""
    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            await check_csrf(request)
        return await endpoint(request)

    wrapper.csrf_protected = True  # type: ignore[attr-defined]
    return wrapper


def unprotected_posts(routes: list[Any]) -> list[str]:
    """Paths of routes accepting a state-changing method without ``csrf_protected`` (should be [])."""
    bad = []
    for r in routes:
        if isinstance(r, Route) and (r.methods or set()) - {"GET", "HEAD", "OPTIONS"}:
            if not getattr(r.endpoint, "csrf_protected", False):
                bad.append(r.path)
        elif hasattr(r, "routes"):  # Mount
            bad += unprotected_posts(r.routes)
    return bad


# --- login / logout -----------------------------------------------------------------------------

_FAILS: dict[str, list[float]] = {}  # client address -> recent failure times (throttle guessing)
MAX_FAILS_PER_MINUTE = 10


def _throttled(client: str) -> bool:
    now = time.monotonic()
    recent = [t for t in _FAILS.get(client, []) if now - t < 60.0]
    _FAILS[client] = recent
    return len(recent) >= MAX_FAILS_PER_MINUTE


def _safe_next(target: str | None) -> str:
    # only same-site paths: never redirect a login to another host
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


async def login_page(request: Request) -> Response:
    if current_user(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
    return request.app.state.templates.TemplateResponse(
        request, "login.html", {"next": _safe_next(request.query_params.get("next")), "error": None,
                                "no_users": request.app.state.users.count() == 0})


@csrf_protected
async def login_post(request: Request) -> Response:
    form = await request.form()
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
    client = request.client.host if request.client else "?"
    templates = request.app.state.templates
    if _throttled(client):
        log.warning("login: too many failures from %s; refused", client)
        return templates.TemplateResponse(request, "login.html", {
            "next": target, "error": "too many failed attempts: wait a minute", "no_users": False}, status_code=429)
    user = request.app.state.users.verify(name, password)
    if user is None:
        _FAILS.setdefault(client, []).append(time.monotonic())
        log.warning("login: failed for %r from %s", name[:64], client)
        return templates.TemplateResponse(request, "login.html", {
            "next": target, "error": "wrong user name or password",
            "no_users": request.app.state.users.count() == 0}, status_code=401)
    request.session.clear()  # new session: a fixed pre-login token must not survive login
    request.session["user"] = user.name
    request.session["login_unix_s"] = int(time.time())
    csrf_token(request)
    log.info("login: %s (%s) from %s", user.name, user.role, client)
    return RedirectResponse(target, 303)


@csrf_protected
async def logout_post(request: Request) -> Response:
    name = request.session.get("user")
    request.session.clear()
    if name:
        log.info("logout: %s", name)
    return RedirectResponse("/login", 303)


def auth_routes() -> list[Route]:
    return [Route("/login", login_page, methods=["GET"]),
            Route("/login", login_post, methods=["POST"]),
            Route("/logout", logout_post, methods=["POST"])]
