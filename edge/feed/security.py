"""CURVE encryption and the ZAP allowlist for the feed, the catch-up channel and the proxy.

Key files are ZeroMQ certificates as ``zmq.auth.create_certificates`` writes them:
``NAME.key`` (public only, safe to copy) and ``NAME.key_secret`` (public + secret, keep private).
A server (gateway PUB, catch-up ROUTER, proxy XPUB) holds its secret certificate and a folder of
authorized client public certificates; a ZAP handler (zmq.auth's ThreadAuthenticator, one per
context) rejects every client whose public key is not in that folder. A client holds its own
secret certificate and the server's public certificate.

Without keys nothing is encrypted, so servers then bind only to loopback (``require_loopback``).

A refused client sees nothing (ZeroMQ gives it no error, only silence; the listener reports the
silence, edge/feed/liveness.py). The server logs each refused key once, by fingerprint
(``key_fingerprint``: the first 16 hex digits of the SHA-256 of the 32-byte public key, which
``keygen`` prints for every key it creates) and address, then at most once a minute with a count.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from edge.errors import UserError
from edge.feed.liveness import DENIAL_REPEAT_S

log = logging.getLogger(__name__)

ZAP_DOMAIN = "thermal-edge"  # every server socket of ours authenticates in this ZAP domain


class KeyFileError(UserError, ValueError):
    """A key file is missing or unreadable (message names the file)."""


def _load_certificate(path: Path) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise KeyFileError(f"{path}: cannot read CURVE certificate: {e}") from None


def load_secret(path: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a ``.key_secret`` certificate file."""
    public, secret = _load_certificate(Path(path))
    if not secret:
        raise KeyFileError(f"{path}: has no secret key (use the .key_secret file)")
    return public, secret


def load_public(path: str | Path) -> bytes:
    """z85 public key from a ``.key`` or ``.key_secret`` certificate file."""
    return _load_certificate(Path(path))[0]


def curve_pair(first: tuple[str, Any], second: tuple[str, Any], needs: str) -> bool:
    """CURVE's "both keys or neither" rule, the one copy (station feed config, proxy, listener):
    ``first``/``second`` are (name as the user wrote it, value or None). True when both are set
    (encrypt), False when neither (plain, loopback only); else ValueError naming the missing one:
    ``<name> must be set too: CURVE needs <needs>``."""
    (name_a, a), (name_b, b) = first, second
    if (a is None) != (b is None):
        raise ValueError(f"{name_b if b is None else name_a} must be set too: CURVE needs {needs}")
    return a is not None


@dataclass
class ServerKeys:
    """What a binding socket needs: its own secret certificate and the client allowlist folder."""

    secret_file: Path
    authorized_dir: Path

    def check(self) -> None:
        load_secret(self.secret_file)
        if not self.authorized_dir.is_dir():
            raise KeyFileError(f"{self.authorized_dir}: authorized clients folder does not exist")
        if not any(self.authorized_dir.glob("*.key")):
            raise KeyFileError(f"{self.authorized_dir}: no client public keys (*.key) to authorize")


@dataclass
class ClientKeys:
    """What a connecting socket needs: its own secret certificate and the server's public one.

    Each file is read once, on first use: a listener re-makes its catch-up socket on every
    retry and reuses the keys already read.
    """

    secret_file: Path
    server_public_file: Path
    _own: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _servers: dict[Path, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)

    def own(self) -> tuple[bytes, bytes]:
        """(public, secret) z85 keys of this client."""
        if self._own is None:
            self._own = load_secret(self.secret_file)
        return self._own

    def server_public(self, server_public_file: Path | None = None) -> bytes:
        """z85 public key of the server, from ``server_public_file`` or the default one."""
        path = Path(server_public_file or self.server_public_file)
        if path not in self._servers:
            self._servers[path] = load_public(path)
        return self._servers[path]


def key_fingerprint(public_key: bytes | str) -> str:
    """Short, stable name of a CURVE public key: 16 hex digits of SHA-256 of its 32 raw bytes.

    Accepts the raw 32 bytes (as ZAP hands them over) or the 40-character z85 text of a key file.
    """
    raw = public_key.encode() if isinstance(public_key, str) else bytes(public_key)
    if len(raw) == 40:
        raw = z85.decode(raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class DenialLog:
    """Rate-limited log lines for refused clients: the first refusal of a key is logged at once,
    then at most one line per ``repeat_s`` with the refusals counted since (a refused client
    retries every few seconds, forever). Pure: the caller passes the clock."""

    def __init__(self, repeat_s: float = DENIAL_REPEAT_S) -> None:
        self.repeat_s = repeat_s
        self.denials = 0
        self._keys: dict[str, list] = {}  # fingerprint -> [next log time, count since, addresses]

    def note(self, fingerprint: str, address: str, reason: str, now_s: float) -> str | None:
        """Count one refusal; returns the line to log, or None while rate-limited."""
        self.denials += 1
        entry = self._keys.get(fingerprint)
        if entry is None:
            self._keys[fingerprint] = [now_s + self.repeat_s, 0, {address}]
            return (f"refused CURVE client key {fingerprint} from {address} ({reason}): not in the "
                    f"authorized clients folder; further refusals of this key are logged once per "
                    f"{self.repeat_s:.0f} s")
        entry[1] += 1
        entry[2].add(address)
        if now_s < entry[0]:
            return None
        line = (f"refused CURVE client key {fingerprint} {entry[1]} more time(s) in the last "
                f"{self.repeat_s:.0f} s, from {', '.join(sorted(entry[2]))} ({reason})")
        entry[:] = [now_s + self.repeat_s, 0, {address}]
        return line


class LoggingAuthenticator(ThreadAuthenticator):
    """zmq.auth's ZAP handler that also logs refused clients (``DenialLog``) at WARNING."""

    def __init__(self, ctx: zmq.Context, name: str = "feed") -> None:
        super().__init__(ctx)
        self.name = name
        self.denial_log = DenialLog()
        self._request: tuple[str, bytes] | None = None
        self._lock = threading.Lock()

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        # The ZAP request names the client's address and, for CURVE, its public key; the reply
        # (_send_zap_reply) carries the verdict. One request is handled at a time.
        self._request = None
        if len(msg) >= 7 and msg[5] == b"CURVE":
            self._request = (msg[3].decode("utf-8", "replace") or "?", msg[6])
        try:
            await super().handle_zap_message(msg)
        finally:
            self._request = None

    def _send_zap_reply(self, request_id: bytes, status_code: bytes, status_text: bytes,
                        user_id: str = "anonymous") -> None:
        if status_code != b"200" and self._request is not None:
            address, key = self._request
            with self._lock:
                line = self.denial_log.note(key_fingerprint(key), address,
                                            status_text.decode("utf-8", "replace"), time.monotonic())
            if line:
                log.warning("%s: %s", self.name, line)
        super()._send_zap_reply(request_id, status_code, status_text, user_id)


def start_authenticator(ctx: zmq.Context, authorized_dir: str | Path, name: str = "feed") -> ThreadAuthenticator:
    """Start the context's ZAP handler allowing only the public keys in ``authorized_dir``.

    Call once per context, before binding CURVE servers; stop it when done. Refused clients are
    logged (rate-limited) as "NAME: refused CURVE client key FINGERPRINT from ADDRESS ...".
    """
    auth = LoggingAuthenticator(ctx, name)
    auth.start()
    auth.configure_curve(domain=ZAP_DOMAIN, location=str(authorized_dir))
    return auth


def make_server(sock: zmq.Socket, keys: ServerKeys | None) -> None:
    """Make ``sock`` a CURVE server (before bind). No-op without keys."""
    if keys is None:
        return
    public, secret = load_secret(keys.secret_file)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    sock.zap_domain = ZAP_DOMAIN.encode()


def make_client(sock: zmq.Socket, keys: ClientKeys | None, server_public_file: Path | None = None) -> None:
    """Make ``sock`` a CURVE client (before connect). ``server_public_file`` overrides keys' server key."""
    if keys is None:
        return
    public, secret = keys.own()
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = keys.server_public(server_public_file)


def is_local_endpoint(endpoint: str) -> bool:
    """True if binding ``endpoint`` exposes nothing beyond this machine (loopback tcp, ipc, inproc)."""
    scheme = endpoint.split("://", 1)[0]
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name: not provably loopback


def create_keys(folder: str | Path, names: list[str], authorize_into: str | Path | None = None) -> list[Path]:
    """Create CURVE key pairs NAME.key / NAME.key_secret in ``folder``; refuse to overwrite.

    If ``authorize_into`` is given, copy the public ``.key`` files there (the allowlist folder).
    Returns the secret files created.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (folder / f"{name}.key_secret").exists():
            raise KeyFileError(f"{folder / (name + '.key_secret')}: already exists; not overwriting a key")
        if authorize_into is not None and (Path(authorize_into) / f"{name}.key").exists():
            raise KeyFileError(f"{Path(authorize_into) / (name + '.key')}: another key of that name is already "
                               "authorized; choose another --name")
    out = []
    for name in names:
        public, secret = zmq.auth.create_certificates(folder, name)
        Path(secret).chmod(0o600)
        out.append(Path(secret))
        if authorize_into is not None:
            Path(authorize_into).mkdir(parents=True, exist_ok=True)
            shutil.copy(public, Path(authorize_into) / Path(public).name)
    return out
