"""The journal's operations are typed data: each encodes to the line the stores write
and decodes back to itself; anything else is refused with what is wrong."""

from __future__ import annotations

import json

import pytest

from navarch_plan.state.model import Intent, NodeRecord, StateDoc
from navarch_plan.state.ops import (
    Depose,
    ForgetDeposed,
    Identity,
    IntentDone,
    IntentLaunched,
    IntentStarted,
    JournalProblem,
    Put,
    Remove,
    apply_op,
    decode_op,
    replay,
)

RECORD = NodeRecord.from_json({
    "id": "i-1", "provider": "sim", "region": "us-west-1", "zone": "", "name": "n",
    "instance_type": "gpu_1x_a10", "spec": {}, "spec_hash": "h", "status": "running",
    "ip_address": "", "labels": {"team": "ml"}, "created_at": "t"})
INTENT = Intent(id="k", address="pool.w[0]", provider="sim", region="us-west-1", name="n",
                started_at="t", idempotency_key="k")
EVERY_OP = [Put("pool.w[0]", RECORD), Remove("pool.w[0]"), Depose("pool.w[0]"),
            ForgetDeposed("i-1"), IntentStarted(INTENT), IntentLaunched("k", "i-1"),
            IntentDone("k"), Identity("f" * 64)]


@pytest.mark.parametrize("op", EVERY_OP, ids=lambda op: op.OP)
def test_every_operation_survives_its_journal_line(op: object) -> None:
    line = json.loads(json.dumps(op.to_json()))  # type: ignore[attr-defined]
    assert decode_op(line) == op


@pytest.mark.parametrize(("line", "words"), [
    ([], "an array, not a journal operation"),
    ({"op": "rename", "address": "a"}, "unknown journal operation 'rename'"),
    ({"op": "remove"}, "remove lacks 'address'"),
    ({"op": "intent_launched", "id": "k", "node_id": 7}, "intent_launched.node_id"),
])
def test_a_line_that_is_no_operation_is_refused_saying_why(line: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        decode_op(line)


def test_replay_applies_in_order_and_refuses_an_id_held_twice() -> None:
    doc = StateDoc.new("ws")
    replay(doc, [("j:1", op.to_json()) for op in EVERY_OP[:1]])
    apply_op(doc, IntentStarted(INTENT))
    apply_op(doc, IntentLaunched("k", "i-1"))
    assert doc.nodes["pool.w[0]"] == RECORD and doc.intents["k"].node_id == "i-1"
    apply_op(doc, Depose("pool.w[0]"))
    assert doc.nodes == {} and doc.deposed == {"i-1": RECORD}
    with pytest.raises(JournalProblem, match="j:2: puts instance i-1 at pool.w.1., but "
                                              "deposed.i-1 holds it"):
        replay(doc, [("j:2", Put("pool.w[1]", RECORD).to_json())])
