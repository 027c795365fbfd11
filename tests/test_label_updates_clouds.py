"""`set_labels` of the real cloud clients against servers on 127.0.0.1: EC2 tags through
CreateTags/DeleteTags on moto, GCE labels through instances.setLabels with the label
fingerprint on the fake GCE server. Each sets exactly the given labels: navarch's
ownership labels stay, a removed label goes, and what the cloud owns (EC2's Name) stays."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from google.auth.credentials import AnonymousCredentials

from navarch_plan.apply.throttle import Gate, GatedProvider, RetryPolicy
from navarch_plan.errors import TransientError
from navarch_plan.model import ProvisionRequest, RateLimit
from navarch_plan.providers.aws import AwsProvider
from navarch_plan.providers.base import LabelSetter
from navarch_plan.providers.gcp import GcpProvider
from tests.conftest import reset_moto
from tests.fakes.gce_server import FakeGce, serve
from tests.fakes.moto_server import AMI, Recorder

OURS = {"navarch-workspace": "research", "navarch-address": "p_head_0",
        "navarch-spec": "0123456789ab"}
BEFORE = {**OURS, "team": "ml", "old": "x"}
AFTER = {**OURS, "navarch-spec": "ba9876543210", "team": "research", "env": "prod"}


@pytest.fixture(scope="module")
def endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


def test_ec2_tags_are_set_with_create_and_delete_tags(aws_credentials: None,
                                                      endpoint: str) -> None:
    reset_moto(endpoint)
    aws = AwsProvider("aws", "us-east-1", image_id=AMI, key_name="ops",
                      endpoint_url=endpoint)
    aws.launch_lookup_delay = 0.0
    assert isinstance(aws, LabelSetter)
    node = aws.provision(ProvisionRequest(name="research-head-0-ab12",
                                          instance_type="g5.xlarge", region="us-east-1",
                                          labels=BEFORE))
    client = aws.client("us-east-1")
    created = Recorder()
    deleted = Recorder()
    client.meta.events.register("before-send.ec2.CreateTags", created)
    client.meta.events.register("before-send.ec2.DeleteTags", deleted)

    aws.set_labels(node.id, AFTER)

    assert (created.calls, deleted.calls) == (1, 1)
    raw = boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint)
    [instance] = [i for r in raw.describe_instances(InstanceIds=[node.id])["Reservations"]
                  for i in r["Instances"]]
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {**AFTER, "Name": "research-head-0-ab12"}
    got = aws.get(node.id)
    assert got is not None and got.labels == AFTER
    aws.set_labels(node.id, AFTER)  # idempotent: apply may retry it
    assert aws.get(node.id).labels == AFTER


@pytest.fixture
def gce() -> Iterator[tuple[FakeGce, GcpProvider]]:
    fake = FakeGce(project="test-project")
    with serve(fake) as url:
        yield fake, GcpProvider("gcp", "test-project", endpoint=url,
                                credentials=AnonymousCredentials(), poll_interval=0)


@pytest.mark.usefixtures("offline")
def test_gce_labels_are_set_with_their_fingerprint(gce: tuple[FakeGce, GcpProvider]) -> None:
    fake, gcp = gce
    assert isinstance(gcp, LabelSetter)
    node = gcp.provision(ProvisionRequest(name="research-head-0-ab12",
                                          instance_type="a3-highgpu-8g", region="us-central1",
                                          zone="us-central1-a", labels=BEFORE))
    fingerprint = fake.instances[("us-central1-a", "research-head-0-ab12")]["labelFingerprint"]

    gcp.set_labels(node.id, AFTER)

    [sent] = [r.body for r in fake.calls("POST", "setLabels")]
    assert sent == {"labels": AFTER, "labelFingerprint": fingerprint}
    got = gcp.get(node.id)
    assert got is not None and got.labels == AFTER
    # The fingerprint changed with the labels; a second call reads the new one.
    gcp.set_labels(node.id, AFTER)
    second = [r.body for r in fake.calls("POST", "setLabels")][1]
    assert second["labelFingerprint"] != fingerprint


@pytest.mark.usefixtures("offline")
def test_gce_stale_fingerprint_is_retried_with_a_fresh_one(
        gce: tuple[FakeGce, GcpProvider]) -> None:
    """Someone changed the labels between navarch's read and its setLabels: GCE says 412;
    the retry (as apply's gated provider makes it) reads the new fingerprint."""
    fake, gcp = gce
    node = gcp.provision(ProvisionRequest(name="research-head-0-ab12",
                                          instance_type="a3-highgpu-8g", region="us-central1",
                                          zone="us-central1-a", labels=BEFORE))
    fake.fail_next(412, "Labels fingerprint either invalid or resource labels have changed",
                   "conditionNotMet", method="POST", path_contains="setLabels")
    with pytest.raises(TransientError, match="stale label fingerprint"):
        gcp.set_labels(node.id, AFTER)
    fake.fail_next(412, "Labels fingerprint either invalid or resource labels have changed",
                   "conditionNotMet", method="POST", path_contains="setLabels")
    notes: list[str] = []
    gated = GatedProvider(gcp, Gate("gcp", RateLimit(), RetryPolicy(base_delay=0.01)),
                          notes.append)
    gated.set_labels(node.id, AFTER)
    assert gcp.get(node.id).labels == AFTER
    assert len(notes) == 1 and "stale label fingerprint" in notes[0]
