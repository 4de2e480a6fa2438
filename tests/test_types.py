"""The one vocabulary of gate reasons, verdict statuses and event kinds/types (edge.types
StrEnums): the code, the message contract and the docs use it in one order, and the members
are the plain words on the wire."""
from __future__ import annotations

import json
import re
import typing

from edge.feed.messages import EventBody, VerdictBody
from edge.paths import REPO_ROOT
from edge.thermal import measurement
from edge.thermal.blackbody import STATES as BLACKBODY_STATES
from edge.types import (
    DECISION_REASONS,
    VERDICTS,
    EventKind,
    EventType,
    GateReason,
    VerdictStatus,
)


def _bullet(doc: str, start: str) -> str:
    """The markdown bullet of ``doc`` that starts with ``start`` (up to the next bullet)."""
    text = (REPO_ROOT / "docs" / doc).read_text()
    i = text.index(start)
    j = text.find("\n- ", i + 1)
    return text[i:j if j >= 0 else None]


def test_architecture_doc_lists_the_gate_reasons_in_the_enum_order():
    words = re.findall(r"`([a-z_]+)`", _bullet("ARCHITECTURE.md", "- Gate reasons"))
    assert [w for w in words if w != "gate"] == list(GateReason)


def test_measurement_gates_are_the_enum_minus_the_decisions_reasons():
    assert measurement.GATES == tuple(g for g in GateReason if g not in DECISION_REASONS)
    # every blackbody fault state has its gate (measurement builds 'blackbody_<state>')
    for state in set(BLACKBODY_STATES) - {"ok", "ffc"}:
        assert GateReason(f"blackbody_{state}") in measurement.GATES


def test_message_contract_literals_are_the_enums():
    args = typing.get_args
    assert args(VerdictBody.model_fields["status"].annotation) == tuple(VerdictStatus)
    assert args(EventBody.model_fields["kind"].annotation) == tuple(EventKind)
    assert args(EventBody.model_fields["type"].annotation) == tuple(EventType)
    assert VERDICTS == tuple(VerdictStatus)


def test_messages_doc_lists_statuses_and_types_in_the_enum_order():
    text = (REPO_ROOT / "docs" / "messages.md").read_text()
    status = re.search(r"`status` \(([^)]*)\)", text).group(1)
    assert re.findall(r"`([a-z_]+)`", status) == list(VerdictStatus)
    typ = re.search(r"\| `type` \| str \| ([^|]*)\|", text).group(1)
    assert re.findall(r"`([a-z_]+)`", typ) == list(EventType)


def test_members_are_the_plain_words():
    for enum in (GateReason, VerdictStatus, EventKind, EventType):
        for m in enum:
            assert m == m.value and str(m) == m.value and f"{m}" == m.value and hash(m) == hash(m.value)
            assert json.dumps({"k": m, "l": [m]}) == json.dumps({"k": m.value, "l": [m.value]})


def test_simulated_truth_uses_the_same_words_in_the_same_order():
    """The simulator's per-frame gates (edge/sim/truth.py) and docs/truth.md follow GateReason's
    order, so truth and pipeline name a frame blocked twice the same way."""
    from edge.sim.truth import GATE_ORDER, frame_gate

    assert list(GATE_ORDER) == [g for g in GateReason if g in GATE_ORDER]
    # blocked every way at once: the first in the enum order wins
    assert frame_gate(False, True, "missing", True, 1.0, 13.0, 9.0, 4.0) == GateReason.FFC
    assert frame_gate(False, False, "ok", True, 1.0, 13.0, 9.0, 4.0) == GateReason.OUTSIDE_THERMAL_VIEW
    assert frame_gate(True, False, "ok", True, 1.0, 13.0, 9.0, 4.0) == GateReason.TOO_FAR
    words = re.findall(r"`([a-z_]+)` \(|, `([a-z_]+)`", _bullet_text("truth.md", "In each thermal frame"))
    listed = [a or b for a, b in words if (a or b) in set(GateReason)]
    assert listed == list(GATE_ORDER)


def _bullet_text(doc: str, start: str) -> str:
    text = (REPO_ROOT / "docs" / doc).read_text()
    i = text.index(start)
    return text[i:text.index("\n\n", i)]
