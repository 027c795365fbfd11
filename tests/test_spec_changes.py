"""What a replacement says changed inside a node's spec: one line per changed value
(found by deepdiff), so a nested launch option or one label reads as itself, in the
text, Markdown and JSON forms alike; through the `navarch` command on the fake cloud and
on EC2 (moto)."""

from __future__ import annotations

import json

from navarch_plan.plan import spec_change_rows
from navarch_plan.planner.spec_diff import changed_fields, spec_changes
from tests.conftest import Workdir, actions_of
from tests.fakes.moto_server import register_ami
from tests.test_e2e_clouds import AwsCloud

EAST = "us-east-1"


def test_a_fleet_whose_config_changed_says_each_value_once(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2, "labels": {"team": "ml", "tier": "a"}}})
    assert work.cli("apply", "--auto-approve").code == 0
    work.config(pools={"w": {"nodes": 2, "instance_type": "gpu_1x_l4",
                             "labels": {"team": "research", "env": "prod"},
                             "ssh_keys": ["ops", "oncall"]}})
    [first, _] = actions_of(work.plan_json(), "replace")
    assert first["spec_changes"] == [
        {"field": "instance_type", "op": "change", "before": "gpu_1x_a10",
         "after": "gpu_1x_l4"},
        {"field": "labels.env", "op": "add", "after": "prod"},
        {"field": "labels.team", "op": "change", "before": "ml", "after": "research"},
        {"field": "labels.tier", "op": "remove", "before": "a"},
        {"field": "ssh_keys", "op": "change", "before": ["ops"], "after": ["ops", "oncall"]},
    ]
    assert first["changed"] == ["instance_type", "labels", "ssh_keys"]
    text = work.cli("plan").out
    for line in ('instance_type: "gpu_1x_a10" -> "gpu_1x_l4"',
                 'labels.env: (none) -> "prod"', 'labels.team: "ml" -> "research"',
                 'labels.tier: "a" -> (none)', 'ssh_keys: ["ops"] -> ["ops", "oncall"]'):
        assert text.count(line) == 2, line  # once per node
    markdown = work.cli("plan", "--format", "markdown").out
    assert "labels.team: `ml` → `research`<br>labels.tier: `a` → (none)" in markdown


def test_a_nested_launch_option_is_named_alone_on_ec2(
        work: Workdir, moto_endpoint: str, aws_credentials: None) -> None:
    cloud = AwsCloud(moto_endpoint, work.path)
    ami = register_ami(cloud.ec2, "gpu")  # a root volume size needs the image's mapping

    def configure(root_volume_gb: int) -> None:
        work.write(json.dumps({
            "version": 1, "workspace": "test",
            "providers": {"aws": {**cloud.provider, "image_id": ami}},
            "pools": {"w": {"nodes": 1, "providers": [{
                "name": "aws", "regions": [EAST], "instance_type": "g5.xlarge",
                "launch": {"root_volume_gb": root_volume_gb,
                           "root_volume_type": "gp3"}}]}}}))
    configure(200)
    assert work.cli("apply", "--auto-approve", env=cloud.env).code == 0
    configure(500)
    [replace] = actions_of(work.cli("plan", "--format", "json", env=cloud.env).json(),
                           "replace")
    assert replace["spec_changes"] == [
        {"field": "launch.root_volume_gb", "op": "change", "before": 200, "after": 500}]
    assert replace["changed"] == ["launch"]
    text = work.cli("plan", env=cloud.env).out
    assert "launch.root_volume_gb: 200 -> 500" in text and "root_volume_type" not in text


def test_a_list_is_one_value_and_a_map_that_appears_is_told_key_by_key() -> None:
    changes = spec_changes({"ssh_keys": ["a"], "zone": "x"},
                           {"ssh_keys": ("a", "b"), "zone": "x",
                            "launch": {"disk_gb": 100, "network": "gpu"}})
    assert changes == (
        {"field": "launch.disk_gb", "op": "add", "after": 100},
        {"field": "launch.network", "op": "add", "after": "gpu"},
        {"field": "ssh_keys", "op": "change", "before": ["a"], "after": ["a", "b"]})
    assert changed_fields(changes) == ("launch", "ssh_keys")
    # A tuple and a list are one JSON value: nothing changed.
    assert spec_changes({"ssh_keys": ["a"]}, {"ssh_keys": ("a",)}) == ()
    assert spec_changes({"user_data_sha256": "hmac:1"}, {"user_data_sha256": "hmac:2"}) == (
        {"field": "user_data", "op": "change", "before": "hmac:1", "after": "hmac:2"},)


def test_a_plan_saved_before_spec_changes_shows_its_top_level_fields() -> None:
    """Plans of format 1.3 and older have only `changed`: each field whole."""
    older = {"changed": ["instance_type", "user_data"],
             "before": {"instance_type": "a", "user_data_sha256": "hmac:1"},
             "after": {"instance_type": "b", "user_data_sha256": "hmac:2"}}
    assert spec_change_rows(older) == [("instance_type", "a", "b"),
                                       ("user_data", "hmac:1", "hmac:2")]
