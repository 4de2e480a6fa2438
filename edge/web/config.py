"""The ``[web]`` settings the console and the station pages share: bind address, TLS, users
file, sessions. Only pydantic here: the station config imports it, and a station with its pages
off must not pay for importing the web stack (Starlette, Jinja2, argon2: ~70 MB of RSS).
The server that acts on these settings is edge/web/server.py."""
from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from edge.configbase import StrictModel, resolve_path


class WebConfig(StrictModel):
    """Where the web pages are served, with which TLS certificate, and who may log in."""

    host: str = Field("127.0.0.1", min_length=1, max_length=255,
                      description="address to bind; anything but loopback needs tls_cert and tls_key")
    port: int = Field(8080, ge=1, le=65535, description="TCP port to bind")
    tls_cert: str | None = Field(None, description="PEM certificate (chain) file for HTTPS; with tls_key")
    tls_key: str | None = Field(None, description="PEM private key file for HTTPS; with tls_cert")
    users_file: str = Field("var/console-users.txt",
                            description="users file (name:role:argon2 hash), managed by `thermal-edge console adduser`")
    session_secret_file: str = Field(
        "var/console-session.secret",
        description="secret signing the session cookies; created (mode 0600) on first start; share it between "
                    "console instances behind one address")
    session_max_age_s: int = Field(12 * 3600, ge=300, le=30 * 86400,
                                   description="a login lasts this long, seconds (default one 12 h shift)")

    @field_validator("tls_cert", "tls_key", "users_file", "session_secret_file")
    @classmethod
    def _resolve(cls, v: str | None, info: Any) -> str | None:
        return None if v is None else str(resolve_path(v, info))

    @model_validator(mode="after")
    def _pair(self) -> WebConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("web.tls_cert and web.tls_key go together: set both or neither")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"
