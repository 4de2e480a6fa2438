"""Feed message contract v1: envelope, encoding, decoding and schema (docs/messages.md).

A feed message is multipart ``[topic, JSON body, *image frames]``:

- topic: ``<kind>.<station_id>`` with kind in ``alert``, ``screening``, ``status``,
  ``heartbeat``, ``guidance`` (subscribe to ``b"alert."`` for every station's alerts).
- body: UTF-8 JSON object, at most ``MAX_BODY_BYTES``; fields are the pydantic models below,
  exported as JSON Schema to ``docs/schema/feed-message.v1.json``.
- image frames (alert/screening only, when the station enables images): JPEG bytes, named in
  order by the body's ``images`` list (``rgb_jpeg``, ``thermal_jpeg``).

Every body carries ``publisher_id``, ``epoch`` (a new, larger integer each time the publisher
starts) and ``seq``. Sequences are per (publisher_id, epoch, kind) and start at 1, so a
subscriber to ``alert.`` alone sees contiguous numbers and can tell a gap from a filter.
Heartbeats also carry ``last``: the last seq of every journaled kind in the current epoch, so a
subscriber notices a trailing gap (the last alert lost, nothing after it).

``decode`` never raises anything but ``MessageError`` on bad input: receivers count and skip.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from edge.guidance import MESSAGE_KEYS
from edge.types import ID_PATTERN

SCHEMA_VERSION = 1
KINDS = ("alert", "screening", "status", "heartbeat", "guidance")
JOURNALED_KINDS = ("alert", "screening")  # kinds kept in the journal and served by catch-up
IMAGE_NAMES = ("rgb_jpeg", "thermal_jpeg")
MAX_TOPIC_BYTES = 128
MAX_BODY_BYTES = 64 * 1024
MAX_IMAGE_BYTES = 2 * 1024 * 1024
_ID_RE = re.compile(ID_PATTERN)


class MessageError(ValueError):
    """A received message that does not follow the contract; ``reason`` is a short word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def check_id(name: str, value: str) -> str:
    """Raise ValueError unless ``value`` is a valid station/publisher id."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(f"{name}={value!r}: must match {ID_PATTERN} (letters, digits, _ and -; no dots)")
    return value


def make_topic(kind: str, station_id: str) -> bytes:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {KINDS}")
    return f"{kind}.{check_id('station_id', station_id)}".encode()


def msg_id(publisher_id: str, epoch: int, kind: str, seq: int) -> str:
    """The unique id of one message: receivers drop duplicates by it."""
    return f"{publisher_id}/{epoch}/{kind}/{seq}"


# --- body models (the schema) ----------------------------------------------------------------

_Id = Annotated[str, Field(pattern=ID_PATTERN)]
_Temp = Annotated[float | None, Field(ge=-273.15, le=2000.0, description="degC; null when not measured")]
_Box = Annotated[list[float], Field(min_length=4, max_length=4, description="x1 y1 x2 y2, pixels")]


class _Envelope(BaseModel):
    # Additive changes keep schema 1: receivers ignore fields they do not know.
    model_config = ConfigDict(extra="ignore")

    schema_: Literal[1] = Field(alias="schema", description="message schema version")
    publisher_id: _Id = Field(description="stable id of the publishing gateway process")
    epoch: int = Field(ge=1, description="changes (increases) every time the publisher starts")
    seq: int = Field(ge=1, description="per (publisher_id, epoch, kind) sequence, from 1, no holes")
    msg_id: str = Field(max_length=200, description="publisher_id/epoch/kind/seq: unique per message")
    station_id: _Id = Field(description="station the gateway screens")
    time_utc: str = Field(
        pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$",
        description="ISO 8601 UTC with Z and a fraction of any length (events: microseconds): the "
                    "measurement time of the thermal frame behind an event (so events are not in seq "
                    "order by time), the sending time of status and heartbeat",
    )
    catchup: str | None = Field(default=None, max_length=300,
                                description="catch-up endpoint of this gateway (ROUTER), if any")


class VerdictBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["elevated", "normal", "indeterminate"]
    reason: str = Field(max_length=64, description="'' unless indeterminate: the gate that failed")
    method: Literal["absolute", "relative", "none"]


class EventBody(_Envelope):
    """alert.<station> and screening.<station>: one lifecycle event of one tracked person."""

    kind: Literal["alert", "screening"]
    type: Literal["new", "update", "end"] = Field(description="Frigate-style lifecycle")
    event_id: str = Field(max_length=200, description="one per (track, kind); same for new/update/end")
    track_id: int = Field(ge=-1)
    t_ns: int = Field(description="capture time on the station's monotonic clock, ns")
    verdict: VerdictBody
    skin_temp_c: _Temp
    core_temp_c: _Temp
    uncertainty_c: Annotated[float | None, Field(ge=0.0, le=50.0, description="1-sigma, degC")]
    threshold_c: _Temp
    box_xyxy_rgb: _Box
    box_xyxy_thermal: _Box | None
    score: float = Field(ge=0.0, le=1.0, description="detector confidence")
    mask: Literal["yes", "no", "unknown"]
    mask_conf: float = Field(ge=0.0, le=1.0)
    n_frames: int = Field(ge=0, description="frames aggregated into this result")
    images: list[Literal["rgb_jpeg", "thermal_jpeg"]] = Field(
        default_factory=list, max_length=2, description="names of the image frames that follow, in order")
    end_reason: Literal["gateway_restart"] | None = Field(
        default=None, exclude_if=lambda v: v is None,  # absent, not null: ordinary bodies keep their bytes
        description="only on an 'end' the gateway sent for an event its previous run left open "
                                  "(killed or crashed): 'gateway_restart'; absent on ordinary ends")


class StatusBody(_Envelope):
    """status.<station>: gateway health (cameras, blackbody, rates); content is free-form."""

    kind: Literal["status"]
    status: dict[str, Any]


class HeartbeatBody(_Envelope):
    """heartbeat.<station>: sent every ``interval_s`` so subscribers tell silent from dead."""

    kind: Literal["heartbeat"]
    interval_s: float = Field(gt=0, le=3600)
    last: dict[str, int] = Field(description="last seq per journaled kind in this epoch")


class GuidanceBody(_Envelope):
    """guidance.<station>: the visitor-guidance message the station shows now (edge/guidance.py),
    sent on change and every guidance.publish_interval_s, so a separate kiosk can show it. Not
    journaled: the next one supersedes it. Never carries a temperature."""

    kind: Literal["guidance"]
    message_key: Literal[MESSAGE_KEYS] = Field(  # type: ignore[valid-type]  # the one list, edge/guidance.py
        description="which message (edge/guidance.py MESSAGE_KEYS); a kiosk may show its own text for it")
    text: str = Field(min_length=1, max_length=120, description="the message in the station's language")
    language: str = Field(max_length=8, description="language code of text, e.g. en")
    track_id: int = Field(ge=-1, description="the person it is meant for; -1 for none")
    reason: str = Field(max_length=64, description="why: gate, verdict reason or station problem ('' if none)")
    people: int = Field(ge=0, description="tracked people in view")
    t_ns: int = Field(description="capture time of the pair it was chosen on, station monotonic clock, ns")
    since_t_ns: int = Field(description="capture time this message was first chosen (unchanged since), ns")


Body = Annotated[EventBody | StatusBody | HeartbeatBody | GuidanceBody, Field(discriminator="kind")]
_BODY = TypeAdapter(Body)


def _strict_2020_12(node: Any) -> Any:
    """Drop what is not JSON Schema 2020-12: pydantic adds OpenAPI's ``discriminator`` (with a
    ``mapping``) to a tagged union, which strict validators (ajv strict) reject as unknown. The
    ``oneOf`` stays exact without it: each variant pins ``kind`` (``const``/``enum``)."""
    if isinstance(node, dict):
        return {k: _strict_2020_12(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_strict_2020_12(v) for v in node]
    return node


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a feed message body; committed as docs/schema/. Only
    2020-12 vocabulary: it compiles in strict validators (tests/feed/test_schema_strict.py)."""
    schema: dict[str, Any] = _strict_2020_12(_BODY.json_schema(by_alias=True))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"thermal-edge feed message body, schema {SCHEMA_VERSION}"
    return schema


# --- encoding --------------------------------------------------------------------------------

def clean_float(value: float | None, ndigits: int = 3) -> float | None:
    """NaN/inf/None -> None (JSON has no NaN); else rounded float."""
    if value is None:
        return None
    value = float(value)
    return round(value, ndigits) if math.isfinite(value) else None


def _first_error(e: ValidationError) -> str:
    """'field.path: message' of the first error: one line for logs and exceptions."""
    err = e.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"


def build_body(model: type[BaseModel], **fields: Any) -> BaseModel:
    """A body model from its fields, validated as it is built: a message receivers would
    reject fails here, at the sender, with ``ValueError('<kind> message breaks the schema at
    <field>: <why>')``."""
    try:
        return model(**fields)
    except ValidationError as e:
        raise ValueError(f"{fields.get('kind')} message breaks the schema at {_first_error(e)}") from None


def dump_body(body: BaseModel) -> tuple[dict[str, Any], bytes]:
    """A built body model -> (the JSON object as a dict, its wire bytes). Wire order: ``schema``
    and ``kind`` first (what the message is, before what it says), then the fields in model order."""
    d = body.model_dump(by_alias=True)
    obj = {"schema": d.pop("schema"), "kind": d.pop("kind"), **d}
    data = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    if len(data) > MAX_BODY_BYTES:
        raise ValueError(f"message body is {len(data)} bytes; limit {MAX_BODY_BYTES}")
    return obj, data


def encode_body(body: dict[str, Any]) -> bytes:
    """JSON bytes of a body that receivers will accept: checked against the schema and size here,
    so a message that would be rejected downstream fails loudly at the sender instead."""
    data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    if len(data) > MAX_BODY_BYTES:
        raise ValueError(f"message body is {len(data)} bytes; limit {MAX_BODY_BYTES}")
    try:
        _BODY.validate_python(body)
    except ValidationError as e:
        raise ValueError(f"{body.get('kind')} message breaks the schema at {_first_error(e)}") from None
    return data


# --- decoding --------------------------------------------------------------------------------

@dataclass
class Message:
    """A decoded, validated feed message."""

    topic: str
    body: dict[str, Any]  # the JSON body as received (validated)
    images: dict[str, bytes] = field(default_factory=dict)
    caught_up: bool = False  # set by the listener: came from a gateway's journal, not live

    @property
    def kind(self) -> str:
        return str(self.body["kind"])  # a str: validated on receipt

    @property
    def publisher_id(self) -> str:
        return str(self.body["publisher_id"])  # a str: validated on receipt

    @property
    def position(self) -> tuple[int, int]:
        """(epoch, seq): order of messages of one publisher and kind."""
        return (self.body["epoch"], self.body["seq"])

    @property
    def msg_id(self) -> str:
        return str(self.body["msg_id"])  # a str: validated on receipt


def decode(frames: list[bytes]) -> Message:
    """Check and decode one multipart feed message.

    Raises MessageError with reason one of: frames, oversized, encoding, json, schema, topic,
    version, images.
    """
    if not isinstance(frames, (list, tuple)) or not 2 <= len(frames) <= 2 + len(IMAGE_NAMES):
        n = len(frames) if isinstance(frames, (list, tuple)) else "?"
        raise MessageError("frames", f"expected 2..{2 + len(IMAGE_NAMES)} frames, got {n}")
    topic_b, body_b, *image_frames = (bytes(f) for f in frames)
    if len(topic_b) > MAX_TOPIC_BYTES or len(body_b) > MAX_BODY_BYTES:
        raise MessageError("oversized", f"topic {len(topic_b)} B, body {len(body_b)} B")
    if any(len(f) > MAX_IMAGE_BYTES for f in image_frames):
        raise MessageError("oversized", f"image frame over {MAX_IMAGE_BYTES} B")
    try:
        topic = topic_b.decode("utf-8")
        raw = json.loads(body_b.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise MessageError("encoding", str(e)) from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise MessageError("json", str(e)[:120]) from None
    if not isinstance(raw, dict):
        raise MessageError("json", f"body is a {type(raw).__name__}, not an object")
    if raw.get("schema") != SCHEMA_VERSION:
        raise MessageError("version", f"schema={raw.get('schema')!r}; this client reads {SCHEMA_VERSION}")
    try:
        model = _BODY.validate_python(raw)
    except ValidationError as e:
        raise MessageError("schema", _first_error(e)) from None
    if topic != f"{model.kind}.{model.station_id}":
        raise MessageError("topic", f"topic {topic!r} does not match body kind/station")
    if model.msg_id != msg_id(model.publisher_id, model.epoch, model.kind, model.seq):
        raise MessageError("schema", f"msg_id {model.msg_id!r} does not match publisher/epoch/kind/seq")
    names = list(getattr(model, "images", []))
    if len(names) != len(image_frames):
        raise MessageError("images", f"body names {len(names)} images, {len(image_frames)} frames follow")
    return Message(topic, raw, dict(zip(names, image_frames)))


SCHEMA_FILE = f"docs/schema/feed-message.v{SCHEMA_VERSION}.json"

if __name__ == "__main__":  # python -m edge.feed.messages: rewrite the committed schema
    from edge.paths import REPO_ROOT

    out = REPO_ROOT / SCHEMA_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
