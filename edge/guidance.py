"""Visitor guidance: one message at a time for the person in front of the station, from the live
per-person state the pipeline already has (gates, tracks, live verdicts, blackbody, cameras).

Shown full-screen on ``/kiosk`` (edge/web/station/) and published as a ``guidance`` feed
message (docs/messages.md) so a separate kiosk device can show it.

Rules (``choose``, a pure function; first that applies wins):

1. ``paused``: the cameras are not delivering pairs, or the blackbody reference is unusable
   (missing / moved / unstable, or none at a station that needs one) -- nobody is being
   screened, so nobody may be told to proceed.
2. ``wait``: flat-field correction in progress (a few seconds; measurements are suppressed).
3. ``see_staff``: anyone in view whose live verdict is elevated.
4. ``one_at_a_time``: several people near enough to measure (gate ``several_faces``).
5. The nearest person (largest face box) decides the rest:
   - live verdict ``normal`` -> ``proceed`` (only ever from a normal verdict: never from an
     indeterminate or missing one);
   - in view for ``staff_after_s`` without a normal/elevated verdict while near enough
     (a borderline reading, glasses kept on, ...) -> ``see_staff`` (the "repeated
     indeterminate" case);
   - else the frame's gate: ``too_far`` -> ``step_closer``, ``outside_thermal_view`` ->
     ``center``, ``turned_away`` -> ``look``, ``motion_blur`` -> ``hold_still``, ``no_skin``
     -> ``uncover``, ``glasses`` -> ``glasses``, measurable -> ``measuring``.
6. Nobody in view: the outcome of the person who left last is held for a moment (``proceed``
   for ``proceed_hold_s`` after a normal verdict; ``see_staff`` for ``staff_hold_s`` after an
   elevated one or an indeterminate one whose reason is not just the approach), else ``idle``.

``Guide`` is the thin stateful part: per person, when first seen and the last gate; who left
last and the held outcome.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from edge.configbase import StrictModel

MESSAGE_KEYS = ("idle", "paused", "wait", "see_staff", "one_at_a_time", "proceed", "step_closer", "center",
                "look", "hold_still", "uncover", "glasses", "measuring")

# The default message set, per language (docs/station-web.md lists them). A station may override
# any message ([guidance.messages]) or use a language of its own by giving every key.
DEFAULT_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "idle": "Please look at the camera",
        "paused": "Screening paused",
        "wait": "Please wait a moment",
        "see_staff": "Please see the staff",
        "one_at_a_time": "One person at a time",
        "proceed": "Thank you, please proceed",
        "step_closer": "Step closer",
        "center": "Please stand in front of the camera",
        "look": "Please look at the camera",
        "hold_still": "Please hold still",
        "uncover": "Please uncover your face",
        "glasses": "Please remove your glasses",
        "measuring": "Measuring…",
    },
    "de": {
        "idle": "Bitte schauen Sie in die Kamera",
        "paused": "Messung unterbrochen",
        "wait": "Bitte einen Moment warten",
        "see_staff": "Bitte wenden Sie sich an das Personal",
        "one_at_a_time": "Bitte einzeln eintreten",
        "proceed": "Danke, bitte gehen Sie weiter",
        "step_closer": "Bitte näher kommen",
        "center": "Bitte stellen Sie sich vor die Kamera",
        "look": "Bitte schauen Sie in die Kamera",
        "hold_still": "Bitte kurz stillhalten",
        "uncover": "Bitte Gesicht freimachen",
        "glasses": "Bitte nehmen Sie die Brille ab",
        "measuring": "Messung läuft…",
    },
    "fr": {
        "idle": "Veuillez regarder la caméra",
        "paused": "Contrôle interrompu",
        "wait": "Veuillez patienter un instant",
        "see_staff": "Veuillez vous adresser au personnel",
        "one_at_a_time": "Une personne à la fois",
        "proceed": "Merci, vous pouvez passer",
        "step_closer": "Approchez-vous",
        "center": "Placez-vous face à la caméra",
        "look": "Veuillez regarder la caméra",
        "hold_still": "Ne bougez pas",
        "uncover": "Veuillez découvrir votre visage",
        "glasses": "Veuillez retirer vos lunettes",
        "measuring": "Mesure en cours…",
    },
}

# Frame gate -> message for the nearest person (rule 5). Station-wide gates (ffc, blackbody_*)
# are rules 1-2; several_faces is rule 4.
GATE_MESSAGES = {
    "": "measuring",
    "too_far": "step_closer",
    "outside_thermal_view": "center",
    "turned_away": "look",
    "motion_blur": "hold_still",
    "no_skin": "uncover",
    "glasses": "glasses",
    "several_faces": "one_at_a_time",
    "ffc": "wait",
}
# Where a person merely is (still walking up, at the edge): never a reason to send them to staff.
APPROACH_GATES = ("too_far", "outside_thermal_view")
# Blackbody states in which nobody is screened (edge/thermal/blackbody.py STATES).
PAUSING_BLACKBODY_STATES = ("missing", "moved", "unstable")


class GuidanceConfig(StrictModel):
    """Visitor guidance (/kiosk and the guidance feed message): messages, language, timing."""

    publish: bool = Field(
        False, description="Publish guidance.<station> messages on the feed (on change and every publish_interval_s)")
    publish_interval_s: float = Field(
        2.0, ge=0.2, le=60, description="Resend the current guidance message this often even unchanged, s")
    language: str = Field(
        "en", pattern=r"^[a-z]{2}(-[A-Za-z]{2})?$",
        description="Language of the messages: en, de, fr built in; another code needs every key in messages")
    messages: dict[str, str] = Field(
        default_factory=dict,
        description="Message text per key, overriding the language's default (keys: " + ", ".join(MESSAGE_KEYS) + ")")
    staff_after_s: float = Field(
        10.0, ge=2, le=120,
        description="A person near the camera this long without a normal or elevated verdict is sent to staff, s")
    proceed_hold_s: float = Field(
        3.0, ge=0, le=30, description="'proceed' stays up this long after a normal person left, s")
    staff_hold_s: float = Field(
        8.0, ge=0, le=120, description="'see_staff' stays up this long after its person left, s")
    no_pairs_pause_s: float = Field(
        1.5, ge=0.3, le=30, description="No paired frame for this long: guidance says 'paused' (cameras down), s")

    @field_validator("messages")
    @classmethod
    def _known_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            if key not in MESSAGE_KEYS:
                raise ValueError(f"messages.{key}: unknown message key (allowed: {', '.join(MESSAGE_KEYS)})")
            if not 1 <= len(text) <= 120:
                raise ValueError(f"messages.{key}: must be 1..120 characters (got {len(text)})")
        return v

    @model_validator(mode="after")
    def _complete(self) -> GuidanceConfig:
        base = DEFAULT_MESSAGES.get(self.language.split("-")[0], {})
        missing = [k for k in MESSAGE_KEYS if k not in base and k not in self.messages]
        if missing:
            raise ValueError(f"language={self.language!r} has no built-in messages (en, de, fr); "
                             f"give every key in messages (missing: {', '.join(missing)})")
        return self

    def text(self, key: str) -> str:
        """The message shown for ``key`` in this station's language."""
        return self.messages.get(key) or DEFAULT_MESSAGES[self.language.split("-")[0]][key]


@dataclass(frozen=True)
class PersonView:
    """One tracked person in the current pair. gate: this frame's gate ('' = measurable).
    verdict: live verdict status (None until enough valid frames). in_view_s: since first seen."""

    track_id: int
    gate: str
    box_area_px: float
    in_view_s: float
    verdict: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class StationView:
    """cameras_ok: pairs are arriving. blackbody_state: BlackbodyStatus.state.
    blackbody_required: the measurement stage gates every face when the state is 'disabled'."""

    cameras_ok: bool
    blackbody_state: str
    blackbody_required: bool = True


@dataclass(frozen=True)
class Choice:
    key: str
    track_id: int = -1
    reason: str = ""  # why: the gate, verdict reason or station problem behind the message


def choose(people: Iterable[PersonView], station: StationView, held: Choice | None,
           cfg: GuidanceConfig) -> Choice:
    """The one message to show now (see the module docstring for the rules)."""
    if not station.cameras_ok:
        return Choice("paused", reason="cameras")
    bb = station.blackbody_state
    if bb in PAUSING_BLACKBODY_STATES or (bb == "disabled" and station.blackbody_required):
        return Choice("paused", reason=f"blackbody_{bb}")
    if bb == "ffc":
        return Choice("wait", reason="ffc")
    people = list(people)
    for p in people:
        if p.verdict == "elevated":
            return Choice("see_staff", p.track_id, "elevated")
    if any(p.gate == "several_faces" for p in people):
        return Choice("one_at_a_time", reason="several_faces")
    if not people:
        return held if held is not None else Choice("idle")
    p = max(people, key=lambda q: q.box_area_px)
    if p.verdict == "normal":
        return Choice("proceed", p.track_id, "normal")
    if p.in_view_s >= cfg.staff_after_s and p.gate not in APPROACH_GATES:
        why = p.reason if p.verdict == "indeterminate" else (p.gate or "no_verdict")
        return Choice("see_staff", p.track_id, why)
    key = GATE_MESSAGES.get(p.gate)
    if key is None:  # a station-wide gate on the face (blackbody_*): nobody is screened
        return Choice("paused", p.track_id, p.gate)
    return Choice(key, p.track_id, p.gate or (p.reason if p.verdict else ""))


def held_after_end(status: str, reason: str) -> str | None:
    """Message held once a person's track ended with this final verdict (None: nothing)."""
    if status == "normal":
        return "proceed"
    if status == "elevated":
        return "see_staff"
    if reason in APPROACH_GATES or reason == "no_valid_frames" or reason.startswith("blackbody_") or reason == "ffc":
        return None  # walked past, or the station could not screen anyone: not the person's doing
    return "see_staff"


@dataclass
class Guidance:
    """The message shown now. since_t_ns: capture time it was first chosen (unchanged since)."""

    key: str
    text: str
    language: str
    track_id: int
    reason: str
    people: int
    t_ns: int
    since_t_ns: int

    def body(self) -> dict[str, Any]:
        """The guidance feed message's own fields (edge/feed/messages.py GuidanceBody)."""
        return {"message_key": self.key, "text": self.text, "language": self.language,
                "track_id": int(self.track_id), "reason": self.reason, "people": int(self.people),
                "t_ns": int(self.t_ns), "since_t_ns": int(self.since_t_ns)}


@dataclass
class _Seen:
    first_t_ns: int
    last_t_ns: int
    gate: str
    area_px: float
    near_gate: str = ""  # the last gate that was not an approach gate (why an unmeasured person left)


class Guide:
    """Stateful wrapper around ``choose``: call ``update`` once per processed pair (and
    ``update_idle`` when no pair came for a while).

    Per person: when first seen, the last gate and box. A person missing from a frame or two
    (the detector flickers) still counts as in view, with their last state, until
    ``DEPART_S`` has passed; then they have left, and their outcome is held (proceed after a
    normal verdict, see_staff after an elevated one or an unmeasured stay). The track's final
    verdict (screening 'end' event, up to tracking.max_age_s later) refines the hold only for
    the person who left last -- a late end event of someone earlier never replaces it -- except
    an elevated verdict, which always calls staff."""

    DEPART_S = 0.5

    def __init__(self, cfg: GuidanceConfig, *, blackbody_required: bool = True):
        self.cfg = cfg
        self.blackbody_required = blackbody_required
        self._seen: dict[int, _Seen] = {}
        self._held: tuple[Choice, int] | None = None  # (choice, until t_ns)
        self._departed = -1  # track id of the person who left last
        self.current: Guidance | None = None

    def update(self, t_ns: int, dets: Any, live_verdict: Any, events: Iterable[Any], blackbody_state: str,
               cameras_ok: bool = True) -> Guidance:
        """dets: the pair's Detections (track_id, gate); live_verdict: track_id -> Verdict | None
        (Screener.live_verdict); events: the pair's ScreeningEvents (final verdicts)."""
        for ev in events:
            if ev.kind == "screening" and ev.type == "end":
                v = ev.verdict
                if int(ev.track_id) == self._departed or v.status == "elevated":
                    held = self._held
                    self._hold(held_after_end(v.status, v.reason), int(ev.track_id),
                               v.status if v.status != "indeterminate" else v.reason, t_ns)
                    if held is not None and self._held is not None and held[0].track_id == ev.track_id:
                        self._held = (self._held[0], held[1])  # refined, not extended
        n = 0 if dets is None else len(dets)
        ids = dets.data.get("track_id") if n else None
        gates = dets.data.get("gate") if n else None
        for i in range(n):
            tid = int(ids[i]) if ids is not None else -1
            if tid < 0:
                continue  # not confirmed by the tracker yet
            gate = str(gates[i]) if gates is not None else ""
            x1, y1, x2, y2 = (float(v) for v in dets.box_xyxy[i])
            st = self._seen.get(tid)
            if st is None:
                st = self._seen[tid] = _Seen(t_ns, t_ns, gate, 0.0)
            st.last_t_ns, st.gate, st.area_px = t_ns, gate, max(0.0, (x2 - x1) * (y2 - y1))
            if gate not in APPROACH_GATES:
                st.near_gate = gate
        people = []
        for tid, st in list(self._seen.items()):
            v = live_verdict(tid)
            status, reason = getattr(v, "status", None), getattr(v, "reason", "")
            if t_ns - st.last_t_ns > self.DEPART_S * 1e9:
                del self._seen[tid]
                self._departed = tid
                if status is not None:
                    self._hold(held_after_end(status, reason), tid, status if status != "indeterminate" else reason,
                               t_ns)
                elif st.near_gate:  # stood near without a verdict (glasses, turned away...)
                    self._hold(held_after_end("indeterminate", st.near_gate), tid, st.near_gate, t_ns)
                else:
                    self._held = None  # walked past: nothing to say about them
                continue
            people.append(PersonView(tid, st.gate, st.area_px, (t_ns - st.first_t_ns) / 1e9, status, reason))
        return self._set(choose(people, StationView(cameras_ok, blackbody_state, self.blackbody_required),
                                self._held_at(t_ns), self.cfg), t_ns, len(people))

    def update_idle(self, t_ns: int, reason: str = "cameras") -> Guidance:
        """No pairs are arriving: nothing is screened."""
        self._seen.clear()
        self._held = None
        return self._set(Choice("paused", reason=reason), t_ns, 0)

    def _hold(self, key: str | None, tid: int, why: str, t_ns: int) -> None:
        hold_s = self.cfg.proceed_hold_s if key == "proceed" else self.cfg.staff_hold_s
        self._held = (Choice(key, tid, why), t_ns + int(hold_s * 1e9)) if key is not None and hold_s > 0 else None

    def _held_at(self, t_ns: int) -> Choice | None:
        if self._held is not None and t_ns < self._held[1]:
            return self._held[0]
        self._held = None
        return None

    def _set(self, c: Choice, t_ns: int, people: int) -> Guidance:
        cur = self.current
        since = cur.since_t_ns if cur is not None and cur.key == c.key and cur.track_id == c.track_id else t_ns
        self.current = Guidance(c.key, self.cfg.text(c.key), self.cfg.language, c.track_id, c.reason, people,
                                t_ns, since)
        return self.current
