"""Properties: plan then apply converges with label changes mixed in (config changes and
hand edits on the cloud), keeping every instance whose only change is its labels; and
the plan's label diff is deepdiff's."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from deepdiff import DeepDiff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navarch_plan.plan import label_changes
from navarch_plan.providers.fake import FakeProvider
from tests.test_properties import apply_once, engine_for, plan_is_empty

LABELS = st.dictionaries(st.sampled_from(["team", "env", "owner"]),
                         st.sampled_from(["a", "b", "c-1"]), max_size=3)
TYPES = st.sampled_from(["gpu_1x_a10", "gpu_1x_l4"])


@st.composite
def fleet_and_change(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fleet, and the same fleet (same node counts) with new labels and perhaps a
    new instance type per pool."""
    first, then = {}, {}
    for i in range(draw(st.integers(1, 3))):
        pool = {"provider": "sim", "region": "us-west-1", "instance_type": draw(TYPES),
                "nodes": draw(st.integers(0, 2)), "labels": draw(LABELS)}
        first[f"p{i}"] = pool
        then[f"p{i}"] = {**pool, "labels": draw(LABELS),
                         "instance_type": draw(TYPES) if draw(st.booleans())
                         else pool["instance_type"]}
    return first, then


def user(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if not k.startswith("navarch-")}


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(fleets=fleet_and_change(), edits=st.lists(LABELS, max_size=4))
def test_label_changes_converge_and_keep_instances(
        fleets: tuple[dict[str, Any], dict[str, Any]], edits: list[dict[str, str]]) -> None:
    first, then = fleets
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        assert apply_once(engine_for(folder, first))
        with FakeProvider("sim", path=str(folder / "cloud.db")) as cloud:
            for node, labels in zip(sorted(cloud.list(), key=lambda n: n.id), edits,
                                    strict=False):
                if node.labels.get("navarch-workspace") == "prop":  # a hand edit
                    ours = {k: v for k, v in node.labels.items() if k.startswith("navarch-")}
                    cloud.set_labels(node.id, {**labels, **ours})
            ids = {n.labels["navarch-address"]: n.id for n in cloud.list()
                   if n.labels.get("navarch-workspace") == "prop" and n.status.is_alive}
            assert apply_once(engine_for(folder, then))
            assert plan_is_empty(engine_for(folder, then))
            live = {n.labels["navarch-address"]: n for n in cloud.list()
                    if n.labels.get("navarch-workspace") == "prop" and n.status.is_alive}
            for name, pool in then.items():
                for i in range(pool["nodes"]):
                    node = live[f"p_{name}_{i}"]
                    assert user(node.labels) == pool["labels"]
                    kept = pool["instance_type"] == first[name]["instance_type"]
                    assert (node.id == ids[f"p_{name}_{i}"]) == kept


@given(before=LABELS, after=LABELS)
def test_the_label_diff_is_deepdiffs(before: dict[str, str], after: dict[str, str]) -> None:
    ours = {(c["op"], c["key"]) for c in label_changes(before, after)}
    # deepdiff reports disjoint maps as one whole-value change unless told to go deeper.
    diff = DeepDiff(before, after, threshold_to_diff_deeper=0)

    def keys(kind: str) -> set[str]:
        return {path.split("'")[1] for path in diff.get(kind, [])}

    assert ours == ({("add", k) for k in keys("dictionary_item_added")}
                    | {("remove", k) for k in keys("dictionary_item_removed")}
                    | {("change", k) for k in keys("values_changed")})
