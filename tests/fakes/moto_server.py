"""moto's ThreadedMotoServer on 127.0.0.1, as the EC2 tests share it, and the EC2
errors moto never produces, injected through botocore's `before-send` event so that
botocore's real parsing and retry logic runs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from moto.server import ThreadedMotoServer

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

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        self.calls += 1
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
