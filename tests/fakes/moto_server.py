"""moto's ThreadedMotoServer on 127.0.0.1, as the EC2 tests share it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from moto.server import ThreadedMotoServer


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
