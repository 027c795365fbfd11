"""LambdaProvider (real httpx) against the FakeLambda API, in-process through
httpx.WSGITransport and, where timeouts or concurrency matter, on a 127.0.0.1 socket."""

from __future__ import annotations

import logging
import socket
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from navarch_plan.config import parse_config
from navarch_plan.errors import (
    AuthError,
    CapacityError,
    ConfigError,
    InvalidRequestError,
    NoCapacityListedError,
    NotFoundError,
    ProviderError,
    QuotaError,
    RateLimitError,
    TransientError,
)
from navarch_plan.model import NodeStatus, ProvisionRequest
from navarch_plan.providers.base import BuildContext, InstanceTypeLister, NodeGetter, Provider
from navarch_plan.providers.lambda_ import LambdaProvider
from navarch_plan.providers.lambda_.kind import LAMBDA
from navarch_plan.testing import FakeClock
from tests.fakes.lambda_server import LAUNCH, TERMINATE, FakeLambda, error_body, serve

LABELS = {"navarch-workspace": "research", "navarch-address": "p_trainers_0",
          "navarch-spec": "3f2a9c", "team": "ml"}
REQ = ProvisionRequest(name="research-trainers-0-ab12", instance_type="gpu_1x_h100_pcie",
                       region="us-east-1", ssh_key_names=("ops-team",), labels=LABELS,
                       user_data="#!/bin/bash\necho hello\n")
FAST = {"launch_interval": 0.0, "backoff_base": 0.001}


@pytest.fixture
def key() -> str:
    """A fresh key per test: a key one test leaks into output is never another's."""
    return f"sk-test-{uuid.uuid4().hex}"


@pytest.fixture
def fake(key: str) -> FakeLambda:
    return FakeLambda(api_key=key)


def make(fake: FakeLambda, key: str, **kw: object) -> LambdaProvider:
    """A provider talking to `fake` in-process (no socket)."""
    opts: dict = {"base_url": "http://lambda.test/api/v1",
                  "transport": httpx.WSGITransport(app=fake), **FAST}
    opts.update(kw)
    return LambdaProvider("lambda", key, **opts)


@pytest.fixture
def provider(fake: FakeLambda, key: str):
    with make(fake, key) as p:
        yield p


def secret_free(exc: BaseException, key: str) -> bool:
    text = "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)
    return key not in text


# -- provisioning -------------------------------------------------------------------------

def test_provision_sends_exact_launch_body_and_returns_the_node(fake, provider):
    node = provider.provision(REQ)

    launches = fake.requests("POST", LAUNCH)
    assert len(launches) == 1
    assert launches[0].body == {
        "region_name": "us-east-1", "instance_type_name": "gpu_1x_h100_pcie",
        "ssh_key_names": ["ops-team"], "name": "research-trainers-0-ab12",
        "tags": [{"key": k, "value": LABELS[k]} for k in sorted(LABELS)],
        "user_data": "#!/bin/bash\necho hello\n"}
    # One look at where capacity is, then the launch, then the new instance.
    assert [r.path for r in fake.log] == ["/instance-types", LAUNCH, f"/instances/{node.id}"]
    assert all(r.authorized for r in fake.log)
    assert node.id in fake.instances
    assert (node.provider, node.region, node.zone, node.instance_type, node.name) == (
        "lambda", "us-east-1", "", "gpu_1x_h100_pcie", "research-trainers-0-ab12")
    assert node.status is NodeStatus.RUNNING
    assert (node.gpu_count, node.gpu_type) == (1, "H100")
    assert node.ip_address.startswith("198.51.")
    assert dict(node.labels) == LABELS


def test_provision_omits_empty_user_data_and_tags(fake, provider):
    req = ProvisionRequest(name="n-1", instance_type="gpu_1x_a10", region="us-west-1",
                           ssh_key_names=("ops-team",))
    provider.provision(req)
    assert fake.requests("POST", LAUNCH)[0].body == {
        "region_name": "us-west-1", "instance_type_name": "gpu_1x_a10",
        "ssh_key_names": ["ops-team"], "name": "n-1"}


@pytest.mark.parametrize("change", [
    {"ssh_key_names": ()}, {"ssh_key_names": ("a", "b")}, {"zone": "us-east-1a"},
    {"labels": {"Team": "ml"}}, {"labels": {"team_name": "ml"}}, {"labels": {"t": "ml"}},
    {"labels": {"team": "x" * 129}}])
def test_requests_lambda_would_refuse_fail_before_any_http_call(fake, provider, change):
    req = ProvisionRequest(**{**REQ.__dict__, **change})
    with pytest.raises(InvalidRequestError) as err:
        provider.provision(req)
    assert err.value.provider == "lambda" and err.value.region == "us-east-1"
    assert fake.log == []


def test_new_instance_is_provisioning_until_booted(key):
    fake = FakeLambda(api_key=key, boot_polls=2)
    with make(fake, key) as p:
        node = p.provision(REQ)
        assert (node.status, node.ip_address) == (NodeStatus.PROVISIONING, "")
        assert p.get(node.id).status is NodeStatus.PROVISIONING
        booted = p.get(node.id)
    assert booted.status is NodeStatus.RUNNING and booted.ip_address


def test_status_mapping_and_node_fields(fake, provider):
    expected = {"booting": NodeStatus.PROVISIONING, "active": NodeStatus.RUNNING,
                "unhealthy": NodeStatus.UNHEALTHY, "terminating": NodeStatus.TERMINATING,
                "terminated": NodeStatus.TERMINATED, "preempted": NodeStatus.TERMINATED,
                "restarting": NodeStatus.PROVISIONING, "some-new-state": NodeStatus.UNKNOWN}
    ids = {fake.seed_instance("gpu_8x_h100_sxm5", "us-west-2", name=f"n-{s}", status=s): s
           for s in expected}
    for i in ids:  # seeded booting would otherwise turn active on the first look
        fake.instances[i].polls_left = 10
    nodes = {n.id: n for n in provider.list()}
    assert {i: nodes[i].status for i in ids} == {i: expected[s] for i, s in ids.items()}
    assert {i: nodes[i].cloud_status for i in ids} == ids
    node = nodes[next(i for i, s in ids.items() if s == "active")]
    assert (node.region, node.zone, node.gpu_count, node.gpu_type, node.name) == (
        "us-west-2", "", 8, "H100", "n-active")


def test_list_returns_every_instance_unfiltered_and_get_finds_one(fake, provider):
    mine = fake.seed_instance(tags={"navarch-workspace": "research"}, name="mine")
    foreign = fake.seed_instance("gpu_1x_a10", "us-west-1", name="someone-else")
    assert {n.id for n in provider.list()} == {mine, foreign}
    got = provider.get(mine)
    assert got.id == mine and dict(got.labels) == {"navarch-workspace": "research"}
    assert provider.get(foreign).labels == {}
    assert provider.get("0" * 32) is None


# -- terminate ------------------------------------------------------------------------------

def test_terminate_is_idempotent_and_the_instance_goes_away(fake, provider):
    node = provider.provision(REQ)
    provider.terminate(node.id)
    assert fake.requests("POST", TERMINATE)[0].body == {"instance_ids": [node.id]}
    assert {n.id: n.status for n in provider.list()} == {node.id: NodeStatus.TERMINATED}
    assert provider.list() == []
    provider.terminate(node.id)  # the cloud now answers 404 for it
    provider.terminate("deadbeef" * 4)  # never existed
    assert provider.get(node.id) is None
    assert len(fake.requests("POST", TERMINATE)) == 3


def test_terminate_checks_a_refusal_against_the_instance(fake, provider):
    live = fake.seed_instance()
    gone = fake.seed_instance(status="terminated")
    refusal = error_body("global/invalid-parameters", "Cannot terminate.")
    fake.inject(400, method="POST", path=TERMINATE, body=refusal)
    provider.terminate(gone)  # refused, but it is gone anyway: success
    fake.inject(400, method="POST", path=TERMINATE, body=refusal)
    with pytest.raises(InvalidRequestError):
        provider.terminate(live)
    assert fake.instances[live].status == "active"


def test_terminate_retries_transient_errors(fake, provider):
    live = fake.seed_instance()
    fake.inject(500, method="POST", path=TERMINATE, body=error_body("global/internal-error"))
    provider.terminate(live)
    assert len(fake.requests("POST", TERMINATE)) == 2
    assert fake.instances[live].status == "terminated"


# -- instance types and capacity ------------------------------------------------------------

def test_instance_types_prices_and_availability(key):
    fake = FakeLambda(api_key=key, capacity={("gpu_1x_h100_pcie", "us-east-1"): 1})
    with make(fake, key) as p:
        offers = {o.name: o for o in p.list_instance_types()}
        h100 = offers["gpu_1x_h100_pcie"]
        assert (h100.gpu_count, h100.gpu_type, h100.memory_gb, h100.vcpus) == (1, "H100", 200, 26)
        assert h100.price_per_hr == pytest.approx(2.49)
        assert h100.regions == ("us-east-1",) and h100.available
        assert offers["gpu_8x_h100_sxm5"].regions == ("us-east-1", "us-west-2")
        assert offers["gpu_8x_h100_sxm5"].price_per_hr == pytest.approx(23.92)
        assert offers["gpu_8x_a100"].available is False
        assert offers["gpu_8x_a100"].regions == () and offers["gpu_8x_a100"].gpu_type == "A100"

        p.provision(REQ)
        assert not {o.name: o for o in p.list_instance_types()}["gpu_1x_h100_pcie"].available
        # That listing is the live catalog the next launch looks at: no launch is sent.
        with pytest.raises(NoCapacityListedError) as err:
            p.provision(REQ)
    assert (err.value.provider, err.value.region) == ("lambda", "us-east-1")
    assert "no launch was sent" in str(err.value)
    assert len(fake.requests("POST", LAUNCH)) == 1
    assert len(fake.instances) == 1


# -- error mapping --------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "code", "cls"), [
    (400, "instance-operations/launch/insufficient-capacity", CapacityError),
    (400, "global/quota-exceeded", QuotaError),
    (401, "global/invalid-api-key", AuthError),
    (403, "global/account-inactive", AuthError),
    (403, "global/invalid-address", AuthError),
    (404, "global/object-does-not-exist", NotFoundError),
    (400, "global/invalid-parameters", InvalidRequestError),
    (409, "global/duplicate", InvalidRequestError),
    (400, "instance-operations/launch/file-system-in-wrong-region", InvalidRequestError),
    (404, None, InvalidRequestError),  # a 404 without Lambda's code: likely a wrong base_url
    (401, None, AuthError),
    (500, "global/internal-error", TransientError),
    (502, None, TransientError),
    (503, "provider/internal-unavailable", TransientError),
    (400, "provider/internal-unavailable", TransientError),
])
def test_error_codes_map_to_error_classes(fake, key, status, code, cls):
    body = error_body(code, "the cloud's own words", "a hint") if code else "<html>oops</html>"
    fake.inject(status, method="GET", path="/instances", body=body)
    with make(fake, key, max_retries=0) as p, pytest.raises(ProviderError) as err:
        p.list()
    assert type(err.value) is cls
    assert err.value.provider == "lambda"
    assert err.value.code == (code or "")
    if code:
        assert err.value.cloud_message == "the cloud's own words"
        assert "the cloud's own words a hint" in str(err.value)
    assert secret_free(err.value, key)


@pytest.mark.parametrize(("code", "cls"), [
    ("instance-operations/launch/insufficient-capacity", CapacityError),
    ("global/quota-exceeded", QuotaError),
    ("global/invalid-parameters", InvalidRequestError),
    # A launch naming what the account lacks (type, key, file system, image): the
    # request is wrong, wherever it goes.
    ("global/object-does-not-exist", InvalidRequestError),
    ("instance-operations/launch/file-system-in-wrong-region", InvalidRequestError),
    ("global/account-inactive", AuthError),
])
def test_launch_refusals_carry_region_and_are_not_retried(fake, provider, key, code, cls):
    status = {"global/object-does-not-exist": 404, "global/account-inactive": 403}.get(code, 400)
    fake.inject(status, method="POST", path=LAUNCH, body=error_body(code, "no"))
    with pytest.raises(cls) as err:
        provider.provision(REQ)
    assert (err.value.region, err.value.code) == ("us-east-1", code)
    # no retry, no re-list
    assert [r.path for r in fake.log] == ["/instance-types", LAUNCH]
    if cls is QuotaError:
        assert err.value.provider_wide
    assert secret_free(err.value, key)


def test_wrong_key_is_an_auth_error_that_never_shows_the_key(fake):
    wrong = "sk-wrong-" + uuid.uuid4().hex
    with make(fake, wrong) as p:
        with pytest.raises(AuthError) as err:
            p.list()
        assert secret_free(err.value, wrong) and wrong not in repr(p)
    assert err.value.code == "global/invalid-api-key"
    assert fake.log[0].authorized is False


def test_redirect_is_not_followed(fake, provider):
    fake.inject(301, method="GET", path="/instances",
                headers={"Location": "https://cloud.lambda.ai/api/v1/instances"})
    with pytest.raises(InvalidRequestError, match="base_url"):
        provider.list()
    assert len(fake.log) == 1


def test_reply_without_envelope_is_transient(fake, key):
    fake.inject(200, method="GET", path="/instances", body="<html>captive portal</html>")
    with make(fake, key, max_retries=0) as p, pytest.raises(TransientError):
        p.list()


# -- rate limits and retries ----------------------------------------------------------------

def test_429_without_retry_after_or_body_is_retried_with_backoff(fake, provider):
    fake.seed_instance()
    fake.inject(429, method="GET", path="/instances", times=2)
    assert len(provider.list()) == 1
    assert len(fake.requests("GET", "/instances")) == 3


@pytest.mark.parametrize(("header", "body", "expected"), [
    ("7", None, 7.0), ("7", "slow down", 7.0), (None, {"error": "weird"}, None),
    ("soon", b"\x00\xff", None)])
def test_429_is_a_rate_limit_error_whatever_the_body(fake, key, header, body, expected):
    fake.inject(429, method="GET", path="/instance-types", body=body,
                headers={"Retry-After": header} if header else {})
    with make(fake, key, max_retries=0) as p, pytest.raises(RateLimitError) as err:
        p.list_instance_types()
    assert err.value.retry_after == expected


def test_retry_after_as_http_date(fake, key):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake.inject(429, method="GET", path="/instances", headers={"Retry-After": when})
    with make(fake, key, max_retries=0) as p, pytest.raises(RateLimitError) as err:
        p.list()
    assert 27 <= err.value.retry_after <= 30


def test_retry_after_beyond_the_cap_goes_back_to_the_caller_at_once(fake, provider):
    fake.inject(429, method="GET", path="/instances", headers={"Retry-After": "3600"})
    start = time.monotonic()
    with pytest.raises(RateLimitError) as err:
        provider.list()
    assert err.value.retry_after == 3600 and time.monotonic() - start < 1
    assert len(fake.log) == 1


def test_launch_429_waits_retry_after_then_launches_once(fake, provider):
    fake.inject(429, method="POST", path=LAUNCH, headers={"Retry-After": "1"})
    start = time.monotonic()
    node = provider.provision(REQ)
    assert time.monotonic() - start >= 0.95  # backoff_base alone would be ~1 ms
    assert len(fake.requests("POST", LAUNCH)) == 2
    assert list(fake.instances) == [node.id]


def test_launch_429_without_retry_after_backs_off_and_gives_up(fake, key):
    fake.inject(429, method="POST", path=LAUNCH)
    with make(fake, key, max_retries=2) as p:
        assert p.provision(REQ).status is NodeStatus.RUNNING
        fake.inject(429, method="POST", path=LAUNCH, times=5)
        with pytest.raises(RateLimitError) as err:
            p.provision(REQ)
    assert err.value.region == "us-east-1"
    assert len(fake.requests("POST", LAUNCH)) == 2 + 3
    assert len(fake.instances) == 1


def test_5xx_on_get_is_retried_then_surfaces(fake, key):
    fake.seed_instance()
    fake.inject(500, method="GET", path="/instances", body=error_body("global/internal-error"),
                times=2)
    with make(fake, key, max_retries=2) as p:
        assert len(p.list()) == 1
        assert len(fake.requests("GET", "/instances")) == 3
        fake.inject(503, method="GET", path="/instance-types", times=10)
        with pytest.raises(TransientError):
            p.list_instance_types()
    assert len(fake.requests("GET", "/instance-types")) == 3


# -- launches are never retried blindly -----------------------------------------------------

def test_launch_5xx_without_an_instance_relists_and_fails(fake, provider):
    fake.inject(500, method="POST", path=LAUNCH, body=error_body("global/internal-error"))
    with pytest.raises(TransientError) as err:
        provider.provision(REQ)
    assert err.value.region == "us-east-1" and REQ.name in str(err.value)
    assert [r.path for r in fake.log] == ["/instance-types", LAUNCH, "/instances"]
    assert fake.instances == {}


def test_launch_5xx_after_the_cloud_created_it_returns_that_instance(fake, provider):
    fake.seed_instance(name=REQ.name, status="terminated")  # an earlier, dead namesake
    fake.inject(502, method="POST", path=LAUNCH, passthrough=True)
    node = provider.provision(REQ)
    assert len(fake.requests("POST", LAUNCH)) == 1
    assert fake.instances[node.id].status == "active"
    assert node.name == REQ.name and node.status is NodeStatus.RUNNING


def test_launch_timeout_after_creation_relists_instead_of_launching_again(fake, key):
    fake.timeout_after_creating(delay=3.0)
    with serve(fake) as url, LambdaProvider("lambda", key, base_url=url, timeout=0.3,
                                            **FAST) as p:
        start = time.monotonic()
        node = p.provision(REQ)
        elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 2.0
    assert len(fake.requests("POST", LAUNCH)) == 1
    assert [r.path for r in fake.log] == ["/instance-types", LAUNCH, "/instances"]
    assert list(fake.instances) == [node.id] and node.name == REQ.name


def test_get_timeout_is_retried_over_a_socket(fake, key):
    fake.seed_instance()
    fake.inject(method="GET", path="/instances", delay=3.0)
    with serve(fake) as url, LambdaProvider("lambda", key, base_url=url, timeout=0.3,
                                            **FAST) as p:
        assert len(p.list()) == 1
    assert len(fake.requests("GET", "/instances")) == 2


def test_connection_refused_is_transient(key):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with LambdaProvider("lambda", key, base_url=f"http://127.0.0.1:{port}/api/v1",
                        max_retries=1, **FAST) as p, pytest.raises(TransientError) as err:
        p.list()
    assert err.value.code == "connection-error" and secret_free(err.value, key)


# -- launch pacing --------------------------------------------------------------------------

def test_launches_are_paced_but_other_calls_are_not(fake, key):
    reqs = [ProvisionRequest(**{**REQ.__dict__, "name": f"paced-{i}"}) for i in range(3)]
    with serve(fake) as url, LambdaProvider("lambda", key, base_url=url,
                                            launch_interval=0.2, backoff_base=0.001) as p:
        start = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(p.provision, r) for r in reqs]
            time.sleep(0.05)
            list_start = time.monotonic()
            p.list()
            list_time = time.monotonic() - list_start
            nodes = [f.result() for f in futures]
        elapsed = time.monotonic() - start
    assert elapsed >= 0.4
    assert list_time < 0.15
    assert len({n.id for n in nodes}) == 3
    times = sorted(r.time for r in fake.requests("POST", LAUNCH))
    assert all(b - a >= 0.15 for a, b in zip(times, times[1:], strict=False))


def test_a_provider_paces_its_own_launches_on_the_shared_pacer(fake, key):
    """Used from Python (not from a config, where apply's scheduler paces), a provider
    spaces its launches `launch_interval` apart, with apply's own Pacer and clock."""
    clock = FakeClock()
    with make(fake, key, launch_interval=12, clock=clock) as p:
        for i in range(3):
            p.provision(ProvisionRequest(**{**REQ.__dict__, "name": f"n-{i}"}))
    assert clock.slept == [12.0, 12.0], "the first launch at once, then one per 12 s"


# -- configuration and secrets --------------------------------------------------------------

def test_built_from_its_type_reads_the_key_from_the_named_variable(fake, key):
    fake.seed_instance()
    with serve(fake) as url:
        options = {"api_key_env": "LAMBDA_API_KEY", "base_url": url, "launch_interval": 0,
                   "timeout": 5}
        built = LAMBDA.build("gpu-cloud", options, {"LAMBDA_API_KEY": key}, BuildContext())
        assert isinstance(built, LambdaProvider)
        with built as p:
            nodes = p.list()
            assert p.name == "gpu-cloud" and p.launch_interval == 0
    assert [n.provider for n in nodes] == ["gpu-cloud"]
    assert fake.log[0].authorized


@pytest.mark.parametrize("env", [{}, {"LAMBDA_API_KEY": ""}, {"OTHER": "sk-x"}])
def test_built_without_the_variable_is_an_auth_error(env):
    with pytest.raises(AuthError, match="LAMBDA_API_KEY") as err:
        LAMBDA.build("lambda", {"api_key_env": "LAMBDA_API_KEY"}, env, BuildContext())
    assert "sk-x" not in str(err.value) and err.value.provider == "lambda"


def test_a_config_without_api_key_env_is_refused_at_load():
    with pytest.raises(ConfigError, match="api_key_env"):
        parse_config("version: 1\nproviders: {lambda: {type: lambda}}\n", "n.yaml",
                     {"LAMBDA_API_KEY": "k"})


def test_key_never_in_repr_or_logs(fake, key, caplog):
    caplog.set_level(logging.DEBUG)
    with serve(fake) as url, LambdaProvider("lambda", key, base_url=url, **FAST) as p:
        p.provision(REQ)
        p.list()
        assert key not in repr(p) and key not in repr(p.__dict__)
        assert isinstance(p, Provider)
        assert isinstance(p, InstanceTypeLister) and isinstance(p, NodeGetter)
    assert "HTTP Request: POST" in caplog.text and "send_request_headers" in caplog.text
    assert key not in caplog.text


# -- the fake holds the line the real API holds ---------------------------------------------

def test_fake_rejects_quantity_and_ssh_key_mistakes(fake, key):
    base = {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
            "ssh_key_names": ["ops-team"]}
    with httpx.Client(transport=httpx.WSGITransport(app=fake), base_url="http://x/api/v1",
                      headers={"Authorization": f"Bearer {key}"}) as c:
        def launch(**change: object) -> httpx.Response:
            return c.post(LAUNCH, json={**base, **change})
        assert launch(quantity=2).json()["error"]["code"] == "global/invalid-parameters"
        assert launch(ssh_key_names=[]).status_code == 400
        assert launch(ssh_key_names=["ops-team", "b"]).status_code == 400
        assert launch(ssh_key_names=["nobody"]).status_code == 404
        assert launch(quanity=1).status_code == 400  # unknown field
        assert launch(quantity=1).status_code == 200
    assert len(fake.instances) == 1
