"""A label changed in the config, end to end on every cloud through the `navarch` command
and the real clients against their servers on 127.0.0.1: the fake, GCE and EC2 update it
in place on the same instance; Lambda, which has no API to change tags, gets a warning
and no action, and `--replace` relaunches the node with the new labels."""

from __future__ import annotations

import json
from contextlib import ExitStack

from tests.conftest import Workdir
from tests.test_e2e_clouds import POOL, WORKSPACE, Cloud, GcpCloud, Session, cloud

__all__ = ["cloud"]  # the fixture, parametrised over the four clouds

ADDRESS = f"pool.{POOL}[0]"


def relabel(s: Session, instance_type: str) -> None:
    s.configure(1, instance_type)
    doc = json.loads((s.work.path / "navarch.yaml").read_text())
    doc["pools"][POOL]["labels"] = {"workload": "inference", "env": "prod"}
    s.work.write(json.dumps(doc, indent=2) + "\n")


def test_a_config_label_change_on_every_cloud(work: Workdir, cloud: Cloud) -> None:
    s = Session(work, cloud)
    s.configure(1, cloud.type_a)
    s.apply()
    [before] = s.owned()
    relabel(s, cloud.type_a)
    plan = s.plan()
    if cloud.name == "lambda":
        assert plan["actions"] == []
        [warning] = plan["warnings"]
        assert "cannot update labels in place" in warning
        assert f"navarch apply --replace {ADDRESS}" in warning
        s.run("apply", "--auto-approve", "--replace", ADDRESS)
        [after] = s.owned()
        assert after.id != before.id
    else:
        [update] = plan["actions"]
        assert (update["action"], update["reason"]) == ("update", "labels_changed")
        assert {(c["key"], c["op"]) for c in update["label_changes"]} == {
            ("workload", "change"), ("env", "add")}
        assert "1 updated" in s.apply()
        [after] = s.owned()
        assert after.id == before.id, "the instance is kept"
        assert cloud.launches() == 1
    assert {k: v for k, v in after.labels.items() if not k.startswith("navarch-")} == {
        "team": "ml", "workload": "inference", "env": "prod"}
    record = s.state()["nodes"][ADDRESS]
    assert after.labels["navarch-spec"] == record["spec_hash"]
    assert after.labels["navarch-workspace"] == WORKSPACE
    s.converged()
    assert json.loads(s.run("plan", "--format", "json"))["warnings"] == []


def test_labels_googles_services_add_are_neither_drift_nor_removed(work: Workdir) -> None:
    """A `goog-` label (here the Ops Agent policy's) is Google's, not the config's: the
    plan and drift check say nothing of it, and a label update sends it back unchanged
    (setLabels replaces every label)."""
    with ExitStack() as stack:
        gcp = GcpCloud(stack)
        s = Session(work, gcp)
        s.configure(1, gcp.type_a)
        s.apply()
        [node] = s.owned()
        zone, name = node.id.split("/")
        gcp.fake.label_as_google(zone, name, "goog-ops-agent-policy", "v2-x86-template-1-4-0")
        assert s.plan()["actions"] == []
        assert work.cli("drift", env=gcp.env).code == 0
        relabel(s, gcp.type_a)
        assert "1 updated" in s.apply()
        [after] = s.owned()
        assert after.id == node.id
        assert after.labels["goog-ops-agent-policy"] == "v2-x86-template-1-4-0"
        assert after.labels["workload"] == "inference"
        s.converged()
