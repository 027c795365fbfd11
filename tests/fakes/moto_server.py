"""moto's ThreadedMotoServer on 127.0.0.1, as the EC2 tests share it, and the EC2
errors moto never produces, injected through botocore's `before-send` event so that
botocore's real parsing and retry logic runs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

import moto.settings
import pytest
from botocore.awsrequest import AWSResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.utils import utcnow
from moto.ec2.models import EC2Backend, ec2_backends
from moto.server import ThreadedMotoServer
from moto.ssm.models import Parameter, ssm_backends
from werkzeug.exceptions import HTTPException

AMI = "ami-0123456789abcdef0"  # moto does not validate image ids by default


@contextmanager
def serve_moto() -> Iterator[str]:
    """Yields the endpoint URL; the server stops on exit."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as env:
        # moto's ~1300 default AMIs cost seconds after every reset, and image ids are not
        # validated anyway. Read by the in-process server, so set before it starts.
        env.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


def ec2_error(code: str, message: str = "injected") -> bytes:
    return (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            f"</Errors><RequestID>x</RequestID></Response>").encode()


class Recorder:
    """A before-send handler: counts requests, answers the first `fail` with `response`
    (an AWSResponse, or an exception to raise), and lets the rest reach moto."""

    def __init__(self, response: Any = None, fail: int = 1 << 30) -> None:
        self.response, self.fail, self.calls = response, fail, 0
        self.bodies: list[dict[str, str]] = []  # each request's form fields, as sent

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        self.calls += 1
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        self.bodies.append(dict(parse_qsl(body or "", keep_blank_values=True)))
        if self.response is None or self.calls > self.fail:
            return None
        if isinstance(self.response, BaseException):
            raise self.response
        return self.response(request) if callable(self.response) else self.response


def error_response(status: int, code: str, message: str = "injected") -> Callable:
    return lambda req: AWSResponse(req.url, status, {"Content-Type": "text/xml"},
                                   RawBody(ec2_error(code, message)))


class RawBody:
    """The minimal raw body AWSResponse reads from."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


# -- EC2 as strict as the real one where region scoping matters ----------------------------

def strict_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto refuses an AMI id its region does not hold (InvalidAMIID.NotFound), as EC2
    does, instead of launching any id. Its own switch (MOTO_ENABLE_AMI_VALIDATION), read
    on every launch by the in-process server. Subnets and security groups are checked
    per region already."""
    monkeypatch.setattr(moto.settings, "ENABLE_AMI_VALIDATION", True)


def register_ami(ec2: Any, name: str, root_device: str = "/dev/sda1") -> str:
    """An AMI in the client's region only (EC2 gives a copy in another region a new
    id). moto's RegisterImage drops RootDeviceName (every AMI says /dev/sda1, as Ubuntu
    images do); EC2 keeps it (Amazon Linux: /dev/xvda), so it is set on moto's image."""
    ami = ec2.register_image(Name=name, RootDeviceName=root_device)["ImageId"]
    ec2_backends[DEFAULT_ACCOUNT_ID][ec2.meta.region_name].amis[ami].root_device_name = \
        root_device
    return ami


def publish_public_parameter(region: str, name: str, value: str) -> None:
    """A public `/aws/service/...` SSM parameter in one region, as AWS publishes them.
    moto ships some (Amazon Linux, ECS-optimized AMIs) but not the Deep Learning AMI's,
    and refuses PutParameter under `/aws` as AWS does, so the test writes it into moto's
    backend the way moto loads its own. `POST /moto-api/reset` removes it."""
    parameters = ssm_backends[DEFAULT_ACCOUNT_ID][region]._parameters
    parameters[name].append(Parameter(
        account_id=DEFAULT_ACCOUNT_ID, name=name, value=value, parameter_type="String",
        description=None, allowed_pattern=None, keyid=None, last_modified_date=utcnow(),
        version=1, data_type="aws:ec2:image"))


def refuse_launches(monkeypatch: pytest.MonkeyPatch, region: str, code: str,
                    message: str = "injected", status: int = 500) -> None:
    """moto's EC2 in `region` answers every RunInstances with this EC2 error (HTTP 500,
    as EC2 sends InsufficientInstanceCapacity), for clients in any process: the server
    runs in the test's process. Other regions launch as usual."""
    launch = EC2Backend.run_instances

    def run_instances(backend: Any, *args: Any, **kwargs: Any) -> Any:
        if backend.region_name == region:
            refusal = HTTPException(description=ec2_error(code, message).decode())
            refusal.code = status
            raise refusal
        return launch(backend, *args, **kwargs)

    monkeypatch.setattr(EC2Backend, "run_instances", run_instances)
