"""console.toml: the console's configuration (``thermal-edge console --config console.toml``).

Sections: ``[web]`` (edge.web.server.WebConfig: bind, TLS, users file, sessions), ``[feed]``
(what to subscribe to), ``[store]`` (SQLite file or a database URL) and ``[console]`` (operator
rules: stale highlight, silent stations, image retention). Relative paths are relative to the
config file's folder. Errors are one line each, naming the file and the key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from edge.config import ConfigError, format_error
from edge.configbase import StrictModel, read_toml, resolve_path
from edge.web.config import WebConfig


class FeedSubscription(StrictModel):
    """The feeds the console subscribes to (gateways directly, or a proxy) and its CURVE keys."""

    endpoints: list[str] = Field(
        default_factory=lambda: ["tcp://127.0.0.1:5560"], min_length=1, max_length=256,
        description="feed endpoints (gateway PUB or proxy XPUB), each optionally 'ENDPOINT=SERVER_PUBLIC_KEY_FILE'")
    catchup: list[str] = Field(default_factory=list, max_length=256,
                               description="gateway catch-up endpoints to ask at start-up (more are learned "
                                           "from messages), each optionally 'ENDPOINT=SERVER_PUBLIC_KEY_FILE'")
    client_secret_key: str | None = Field(None, description="this console's CURVE .key_secret (with server_public_key)")
    server_public_key: str | None = Field(None, description="default server public .key for endpoints without =KEY")
    request_timeout_s: float = Field(2.0, ge=0.1, le=60.0, description="catch-up request retried after this long, s")

    @field_validator("client_secret_key", "server_public_key")
    @classmethod
    def _resolve(cls, v: str | None, info: Any) -> str | None:
        return None if v is None else str(resolve_path(v, info))


class StoreConfig(StrictModel):
    """Where received alerts, operator actions and the audit trail are kept."""

    sqlite_path: str = Field("var/console.sqlite", description="SQLite file (WAL) used when url is not set")
    url: str | None = Field(None, max_length=500,
                            description="SQLAlchemy database URL instead of the SQLite file, e.g. "
                                        "postgresql+psycopg://console@db/console (several consoles may share it)")
    busy_timeout_s: float = Field(5.0, ge=0.1, le=120.0,
                                  description="wait this long for a locked database before reporting it, s")

    @field_validator("sqlite_path")
    @classmethod
    def _resolve(cls, v: str, info: Any) -> str:
        return str(resolve_path(v, info))

    @property
    def database_url(self) -> str:
        return self.url or f"sqlite:///{self.sqlite_path}"


class ConsoleRules(StrictModel):
    """Operator-facing rules of the console."""

    title: str = Field("control room", min_length=1, max_length=80, description="shown in the page title")
    stale_after_s: float = Field(120.0, ge=5.0, le=86400.0,
                                 description="an alert nobody has taken for this long is highlighted, s")
    silent_red_after_s: float = Field(30.0, ge=1.0, le=86400.0,
                                      description="a station not heard from for this long turns red, s")
    image_retention_days: float = Field(30.0, ge=0.01, le=3650.0,
                                        description="face and thermal images are deleted after this many days")
    queue_size: int = Field(200, ge=10, le=5000, description="alerts shown in the live queue (newest first)")


class ConsoleConfig(StrictModel):
    web: WebConfig = Field(default_factory=WebConfig, description="web server, TLS and logins")
    feed: FeedSubscription = Field(default_factory=FeedSubscription, description="feed subscription")
    store: StoreConfig = Field(default_factory=StoreConfig, description="database")
    console: ConsoleRules = Field(default_factory=ConsoleRules, description="operator rules")


def validate_console(data: dict[str, Any], name: str = "<console config>", base_dir: Path | None = None) -> ConsoleConfig:
    try:
        return ConsoleConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc, msg = format_error(err)
            lines.append(f"{name}: {loc}: {msg}" if loc else f"{name}: {msg}")
        raise ConfigError(lines) from None


def load_console_config(path: str | Path) -> ConsoleConfig:
    """Read and validate console.toml; ConfigError (one line per problem, file and key named)."""
    path = Path(path)
    data = read_toml(path, "console config", lambda line: ConfigError([line]))
    return validate_console(data, str(path), path.resolve().parent)
