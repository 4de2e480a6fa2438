"""Base for every configuration section (Frigate-style): unknown keys are errors, every field
carries a description with its unit and bounds. Stage modules define their own section model;
edge/config.py composes them into the station config."""
from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def resolve_path(p: str | Path, info: Any) -> Path:
    """A path field's value, for a section's field validator (``info``: its ValidationInfo):
    relative paths are relative to the config file's folder (validation context 'base_dir',
    set by edge.config.load_config; the working directory when there is none)."""
    base = (info.context or {}).get("base_dir") if info is not None else None
    p = Path(p).expanduser()
    return p if p.is_absolute() or base is None else (Path(base) / p).resolve()


def read_toml(path: str | Path, what: str, error: Callable[[str], Exception] = ValueError) -> dict[str, Any]:
    """Parse a TOML file (config, calibration, scenario). A missing, unreadable or malformed
    file raises ``error(one line naming the file)``: "<path>: <what> not found", "invalid TOML:
    <where>", "not UTF-8 text" or "cannot read: <why>"."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text (a TOML {what} must be)") from None
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None


_OPS = {
    "less_than_equal": ("le", "<="), "less_than": ("lt", "<"),
    "greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
}


def _short(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def format_error(err: Mapping[str, Any]) -> tuple[str, str]:
    """One pydantic error -> (dotted key path, message like 'must be <= 39 (got 40.2)')."""
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind in _OPS:
        key, op = _OPS[kind]
        return loc, f"must be {op} {ctx.get(key)} (got {_short(value)})"
    if kind == "extra_forbidden":
        return loc, "unknown key"
    if kind == "missing":
        return loc, "required key is missing"
    if kind == "value_error":
        msg = str(ctx.get("error", err["msg"]))
        if loc and msg.startswith(loc + "."):  # a section validator that already names its keys
            loc = ""
        return loc, msg
    if kind == "literal_error":
        return loc, f"must be one of {ctx.get('expected')} (got {_short(value)})"
    msg = err["msg"][0].lower() + err["msg"][1:]
    return loc, f"{msg} (got {_short(value)})"
