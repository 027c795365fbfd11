"""The lagging EC2 proxy, through real boto3 clients: hidden new instances, ClientToken
idempotency, lost replies, empty listings, and S3 passing through untouched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from tests.conftest import reset_moto
from tests.fakes.ec2_lag_proxy import LaggingEc2, serve_lagging_ec2
from tests.fakes.moto_server import AMI

REGION = "us-east-1"
LAG = 1.0  # seconds; the checks made while hidden take a small part of it


@pytest.fixture(autouse=True)
def _clean(aws_credentials: None, moto_endpoint: str) -> None:
    reset_moto(moto_endpoint)


@pytest.fixture
def lag(moto_endpoint: str) -> LaggingEc2:
    return LaggingEc2(upstream=moto_endpoint)


@pytest.fixture
def proxy(lag: LaggingEc2) -> Iterator[str]:
    with serve_lagging_ec2(lag) as url:
        yield url


def client(url: str, service: str = "ec2", attempts: int = 3) -> Any:
    config = Config(retries={"total_max_attempts": attempts, "mode": "standard"})
    return boto3.client(service, endpoint_url=url, region_name=REGION, config=config)


def launch(ec2: Any, name: str, **extra: Any) -> str:
    reply = ec2.run_instances(
        ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": "Name", "Value": name}]}], **extra)
    return reply["Instances"][0]["InstanceId"]


def listed(ec2: Any, page_size: int = 1000, **filters: str) -> list[str]:
    """Ids from the paginated DescribeInstances, optionally filtered by tag."""
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": f"tag:{k}", "Values": [v]} for k, v in filters.items()],
        PaginationConfig={"PageSize": page_size})
    return [i["InstanceId"] for page in pages for r in page["Reservations"]
            for i in r["Instances"]]


def error_code(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["Error"]["Code"]


def sleep_past(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()) + 0.1)


def state(ec2: Any, instance_id: str) -> str:
    reply = ec2.describe_instances(InstanceIds=[instance_id])
    return reply["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_new_instance_is_hidden_then_shows(lag: LaggingEc2, proxy: str,
                                           moto_endpoint: str) -> None:
    ec2, moto = client(proxy), client(moto_endpoint)
    old = launch(ec2, "old")
    lag.hide_new_for = LAG
    new = launch(ec2, "new")
    visible_at = time.monotonic() + LAG  # hidden until a moment before this
    assert listed(ec2) == [old]  # the rewritten body parses, the other reservation stays
    assert listed(ec2, Name="new") == []
    with pytest.raises(ClientError) as caught:
        ec2.describe_instances(InstanceIds=[new])
    assert caught.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    assert new in caught.value.response["Error"]["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sorted(listed(moto)) == sorted([old, new])  # moto itself has it
    assert lag.hidden_ids() == {new}
    sleep_past(visible_at)
    assert sorted(listed(ec2)) == sorted([old, new])
    assert state(ec2, new) == "running"
    kept = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["new"]}])
    assert kept["Reservations"][0]["Instances"][0]["Tags"] == [{"Key": "Name", "Value": "new"}]


def test_paging_skips_hidden_instances(lag: LaggingEc2, proxy: str) -> None:
    ec2 = client(proxy)
    ids = [launch(ec2, f"n{k}") for k in range(7)]
    lag.hide(ids[1], 30)
    lag.hide(ids[5], 30)
    pages = list(ec2.get_paginator("describe_instances").paginate(
        PaginationConfig={"PageSize": 5}))
    assert len(pages) >= 2  # NextToken survived the rewriting
    assert sorted(listed(ec2, page_size=5)) == sorted(set(ids) - {ids[1], ids[5]})
    lag.reveal_all()
    assert sorted(listed(ec2, page_size=5)) == sorted(ids)


def test_terminate_of_hidden_instance_is_not_found_and_it_runs_on(
        lag: LaggingEc2, proxy: str, moto_endpoint: str) -> None:
    ec2, moto = client(proxy), client(moto_endpoint)
    lag.hide_new_for = 30
    instance = launch(ec2, "late")
    code = error_code(ec2.terminate_instances, InstanceIds=[instance])
    assert code == "InvalidInstanceID.NotFound"
    assert state(moto, instance) == "running"
    assert lag.calls("TerminateInstances")[-1].status == 400
    lag.reveal_all()
    ec2.terminate_instances(InstanceIds=[instance])
    assert state(moto, instance) in ("shutting-down", "terminated")


def test_hide_an_instance_made_elsewhere(lag: LaggingEc2, proxy: str,
                                        moto_endpoint: str) -> None:
    ec2 = client(proxy)
    instance = launch(client(moto_endpoint), "direct")
    lag.hide(instance, LAG)
    visible_at = time.monotonic() + LAG
    assert error_code(ec2.describe_instances, InstanceIds=[instance]) == \
        "InvalidInstanceID.NotFound"
    sleep_past(visible_at)
    assert state(ec2, instance) == "running"


def test_same_client_token_returns_the_original_launch(lag: LaggingEc2, proxy: str,
                                                       moto_endpoint: str) -> None:
    ec2 = client(proxy)
    lag.hide_new_for = 30  # the documented recovery works while the instance is unseen
    first = ec2.run_instances(ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                              ClientToken="tok-1")
    again = ec2.run_instances(ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                              ClientToken="tok-1")
    assert again["Instances"][0]["InstanceId"] == first["Instances"][0]["InstanceId"]
    assert again["ReservationId"] == first["ReservationId"]
    assert again["ResponseMetadata"]["RequestId"] != first["ResponseMetadata"]["RequestId"]
    assert len(listed(client(moto_endpoint))) == 1
    assert [c.status for c in lag.calls("RunInstances")] == [200, 200]
    assert lag.calls("RunInstances")[0].params["ClientToken"] == "tok-1"


def test_same_token_in_parallel_launches_once(proxy: str, moto_endpoint: str) -> None:
    ec2 = client(proxy)
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(lambda _: launch(ec2, "twin", ClientToken="tok-par"), range(8)))
    assert len(ids) == 1
    assert listed(client(moto_endpoint)) == list(ids)


def test_same_token_other_params_is_a_mismatch(proxy: str, moto_endpoint: str) -> None:
    ec2 = client(proxy)
    launch(ec2, "a", ClientToken="tok-2")
    code = error_code(ec2.run_instances, ImageId=AMI, InstanceType="p4d.24xlarge",
                      MinCount=1, MaxCount=1, ClientToken="tok-2")
    assert code == "IdempotentParameterMismatch"
    assert len(listed(client(moto_endpoint))) == 1


def test_lost_launch_reply_still_launched(lag: LaggingEc2, proxy: str,
                                         moto_endpoint: str) -> None:
    ec2 = client(proxy, attempts=1)
    lag.hide_new_for = 30
    lag.lose_next_launch_replies(1)
    with pytest.raises(ConnectionClosedError):
        launch(ec2, "lost", ClientToken="tok-3")
    (instance,) = lag.launched()
    assert listed(client(moto_endpoint)) == [instance]
    assert lag.calls("RunInstances")[0].status is None
    assert listed(ec2, Name="lost") == []  # not visible yet either
    assert launch(ec2, "lost", ClientToken="tok-3") == instance  # re-send: same instance
    assert len(listed(client(moto_endpoint))) == 1


def test_default_retries_recover_a_lost_reply_by_token(lag: LaggingEc2, proxy: str,
                                                      moto_endpoint: str) -> None:
    lag.lose_next_launch_replies(1)
    instance = launch(client(proxy), "retried", ClientToken="tok-4")
    assert listed(client(moto_endpoint)) == [instance]
    assert [c.status for c in lag.calls("RunInstances")] == [None, 200]


def test_lose_any_action(lag: LaggingEc2, proxy: str) -> None:
    ec2 = client(proxy, attempts=1)
    lag.lose_next("DescribeInstances", 1)
    with pytest.raises(ConnectionClosedError):
        ec2.describe_instances()
    assert ec2.describe_instances()["Reservations"] == []


def test_empty_describes(lag: LaggingEc2, proxy: str) -> None:
    ec2 = client(proxy)
    instance = launch(ec2, "there")
    lag.empty_next_describes(2)
    assert state(ec2, instance) == "running"  # by id: not spoiled, nor counted
    assert listed(ec2, page_size=5) == []
    assert ec2.describe_instances()["Reservations"] == []
    assert listed(ec2) == [instance]


def test_s3_passes_through(lag: LaggingEc2, proxy: str, moto_endpoint: str) -> None:
    s3 = client(proxy, "s3")
    s3.create_bucket(Bucket="navarch-state")
    s3.put_object(Bucket="navarch-state", Key="test.json", Body=b'{"serial": 1}')
    assert s3.get_object(Bucket="navarch-state", Key="test.json")["Body"].read() == \
        b'{"serial": 1}'
    assert s3.head_object(Bucket="navarch-state", Key="test.json")["ContentLength"] == 13
    buckets = client(moto_endpoint, "s3").list_buckets()["Buckets"]
    assert [b["Name"] for b in buckets] == ["navarch-state"]
    assert lag.calls() == []
