"""Ownership bound to a state, not a name: two configs sharing a workspace, a lost state,
an instance copied by hand, and taking instances over explicitly (`state import`,
`state adopt`), on the fake cloud and on EC2 (moto), through the `navarch` command."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from navarch_plan.model import ProvisionRequest
from navarch_plan.providers.fake import FakeProvider
from tests.conftest import OFFLINE_ENV, Result, Workdir, reset_moto

WS = "shared"
AMI = "ami-0123456789abcdef0"


class Cloud:
    """One cloud (the fake's file, or moto) that several configs' folders point at."""

    def __init__(self, kind: str, root: Path, moto: str = "") -> None:
        self.kind, self.root, self.moto = kind, root, moto
        self.env: dict[str, str] = dict(OFFLINE_ENV)
        if kind == "aws":
            self.env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                         "AWS_DEFAULT_REGION": "us-east-1"}

    def provider(self) -> dict[str, Any]:
        if self.kind == "fake":
            return {"type": "fake", "path": str(self.root / "cloud.db")}
        return {"type": "aws", "region": "us-east-1", "image_id": AMI,
                "endpoint_url": self.moto}

    def pool(self, nodes: int) -> dict[str, Any]:
        itype = "gpu_1x_a10" if self.kind == "fake" else "g5.xlarge"
        region = "us-west-1" if self.kind == "fake" else "us-east-1"
        return {"provider": "c", "instance_type": itype, "region": region, "nodes": nodes}

    def alive(self) -> dict[str, dict[str, str]]:
        """id -> labels of every live instance, read from the cloud itself."""
        if self.kind == "fake":
            return {n.id: dict(n.labels) for n in
                    FakeProvider("c", path=str(self.root / "cloud.db")).list()}
        import boto3

        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=self.moto,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        return {i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])
                                  if t["Key"] != "Name"}
                for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                if i["State"]["Name"] in ("pending", "running")}

    def launch_by_hand(self, name: str, labels: dict[str, str]) -> str:
        if self.kind == "fake":
            return FakeProvider("c", path=str(self.root / "cloud.db")).provision(
                ProvisionRequest(name, "gpu_1x_a10", "us-west-1", labels=labels)).id
        import boto3

        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=self.moto,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        tags = [{"Key": k, "Value": v} for k, v in {**labels, "Name": name}.items()]
        return ec2.run_instances(ImageId=AMI, InstanceType="g5.xlarge", MinCount=1,
                                 MaxCount=1, TagSpecifications=[
                                     {"ResourceType": "instance", "Tags": tags}],
                                 )["Instances"][0]["InstanceId"]


@pytest.fixture(params=["fake", "aws"])
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cloud]:
    if request.param == "aws":
        request.getfixturevalue("aws_credentials")
        moto = request.getfixturevalue("moto_endpoint")
        reset_moto(moto)
        yield Cloud("aws", tmp_path, moto)
    else:
        yield Cloud("fake", tmp_path)


def project(cloud: Cloud, name: str, pools: dict[str, int]) -> Workdir:
    folder = cloud.root / name
    folder.mkdir(exist_ok=True)
    work = Workdir(folder)
    work.write(json.dumps({
        "version": 1, "workspace": WS, "providers": {"c": cloud.provider()},
        "defaults": {"ssh_keys": ["ops"]},
        "pools": {p: cloud.pool(n) for p, n in pools.items()}}))
    return work


def run(work: Workdir, cloud: Cloud, *args: str) -> Result:
    return work.cli(*args, env=cloud.env)


def test_two_configs_sharing_a_workspace_never_delete_each_others_nodes(
        cloud: Cloud) -> None:
    a = project(cloud, "a", {"train": 2})
    b = project(cloud, "b", {"serve": 1})
    made: set[str] = set()
    for n, turn in enumerate((a, b, a, b)):
        result = run(turn, cloud, "apply", "--auto-approve")
        assert result.code == 0, result.out + result.err
        # Each config sees the other's instances: a has made 2, b 1.
        said = ("" if n == 0 else "1 instance of workspace shared belongs" if turn is a
                else "2 instances of workspace shared belong") + " to another state"
        assert (said in result.out) == (n > 0), result.out
        made |= set(cloud.alive())
        assert made == set(cloud.alive()), "something one config made was terminated"
    assert len(cloud.alive()) == 3
    plan = json.loads(run(b, cloud, "plan", "--format", "json").out)
    assert plan["actions"] == []
    assert any("2 instances of workspace shared belong to another state" in w
               for w in plan["warnings"])


def test_the_same_addresses_in_two_states_stop_the_plan_with_the_way_out(
        cloud: Cloud) -> None:
    a = project(cloud, "a", {"w": 2})
    assert run(a, cloud, "apply", "--auto-approve").code == 0
    before = cloud.alive()
    b = project(cloud, "b", {"w": 2})
    for command in (("plan",), ("apply", "--auto-approve")):
        result = run(b, cloud, *command)
        assert result.code == 1
        [line] = [x for x in result.err.splitlines() if x.startswith("Error:")]
        assert "held by instance" in line and "navarch state adopt --lineage" in line
    assert cloud.alive() == before, "nothing launched beside them, nothing terminated"


def test_a_lost_state_is_taken_over_with_state_adopt(cloud: Cloud) -> None:
    a = project(cloud, "a", {"w": 2})
    assert run(a, cloud, "apply", "--auto-approve").code == 0
    lineage = a.state(WS)["lineage"]
    ids = {r["id"] for r in a.state(WS)["nodes"].values()}
    shutil.rmtree(a.path / "state")  # the state is lost
    refused = run(a, cloud, "plan")
    assert refused.code == 1 and f"--lineage {lineage}" in refused.err
    adopted = run(a, cloud, "state", "adopt", "--lineage", lineage)
    assert adopted.code == 0, adopted.err
    assert {r["id"] for r in a.state(WS)["nodes"].values()} == ids
    new_lineage = a.state(WS)["lineage"]
    assert new_lineage != lineage
    assert {labels["navarch-lineage"] for labels in cloud.alive().values()} == {new_lineage}
    again = run(a, cloud, "plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert set(cloud.alive()) == ids, "no duplicates"


def test_a_state_whose_instances_another_took_over_lets_go_and_never_fights(
        cloud: Cloud) -> None:
    """b adopts a's instances while a's state still records them: a neither labels them
    back (the two states would take them from each other on every apply) nor launches
    beside them; its plan stops with the way out, and once a's config no longer wants
    them they are forgotten, not deleted. Adopting one's own lineage is refused."""
    a = project(cloud, "a", {"w": 2})
    assert run(a, cloud, "apply", "--auto-approve").code == 0
    theirs = a.state(WS)["lineage"]
    b = project(cloud, "b", {"w": 2})
    assert run(b, cloud, "state", "adopt", "--lineage", theirs).code == 0
    mine = b.state(WS)["lineage"]
    own = run(b, cloud, "state", "adopt", "--lineage", mine)
    assert own.code == 1 and f"lineage {mine} is this state's own" in own.err
    before = cloud.alive()
    assert {labels["navarch-lineage"] for labels in before.values()} == {mine}
    for command in (("plan",), ("apply", "--auto-approve")):
        refused = run(a, cloud, *command)
        assert refused.code == 1, refused.out
        [line] = [x for x in refused.err.splitlines() if x.startswith("Error:")]
        assert "pool.w[0] (and 1 more address) is recorded in this state" in line
        assert f"belongs to another state (lineage {mine}" in line
        assert "navarch state rm pool.w[0]" in line
    assert cloud.alive() == before, "not labelled back, nothing launched or terminated"
    a.write(a.path.joinpath("navarch.yaml").read_text().replace('"w"', '"other"')
            .replace('"nodes": 2', '"nodes": 0'))
    plan = json.loads(run(a, cloud, "plan", "--format", "json").out)
    assert sorted((x["address"], x["action"], x["reason"]) for x in plan["actions"]) == [
        ("pool.w[0]", "forget", "taken_over"), ("pool.w[1]", "forget", "taken_over")]
    assert run(a, cloud, "apply", "--auto-approve").code == 0
    assert a.state(WS)["nodes"] == {} and cloud.alive() == before
    assert json.loads(run(b, cloud, "plan", "--format", "json").out)["actions"] == []


def test_state_import_records_an_instance_made_by_hand(cloud: Cloud) -> None:
    a = project(cloud, "a", {"w": 1})
    node_id = cloud.launch_by_hand("made-by-hand", {"team": "ml"})
    result = run(a, cloud, "state", "import", "pool.w[0]", node_id)
    assert result.code == 0, result.err
    assert a.state(WS)["nodes"]["pool.w[0]"]["id"] == node_id
    labels = cloud.alive()[node_id]
    assert labels["navarch-workspace"] == WS and labels["navarch-address"] == "p_w_0"
    assert labels["navarch-lineage"] == a.state(WS)["lineage"]
    assert run(a, cloud, "plan", "--detailed-exitcode").code == 0
    wrong = run(a, cloud, "state", "import", "pool.w[0]", node_id)
    assert wrong.code == 1 and "already in state" in wrong.err
    outside = run(a, cloud, "state", "import", "pool.w[5]", node_id)
    assert outside.code == 1 and "not in the config" in outside.err


def test_an_instance_copied_by_hand_is_left_alone(cloud: Cloud) -> None:
    a = project(cloud, "a", {"w": 1})
    assert run(a, cloud, "apply", "--auto-approve").code == 0
    [record] = a.state(WS)["nodes"].values()
    copy = cloud.launch_by_hand(record["name"], cloud.alive()[record["id"]])
    plan = json.loads(run(a, cloud, "plan", "--format", "json").out)
    assert plan["actions"] == []
    assert [(u["node_id"], u["kind"]) for u in plan["unsettled"]] == [(copy, "held")]
    assert run(a, cloud, "apply", "--auto-approve").code == 0
    assert copy in cloud.alive()
