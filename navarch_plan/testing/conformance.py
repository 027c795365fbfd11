"""A conformance suite for Provider implementations, run with pytest (docs/providers.md).

Subclass `ProviderConformance` in a test module (as `TestSomething`) and give it fixtures:
`provider` (the Provider under test), `request_factory` (a `RequestFactory`: a request this
provider can fulfil, with exactly the name and labels given) and `capacity_exhausted` (a
`CapacityHook`: given a request, a context manager inside which provisioning it raises
CapacityError, and after which it works again).

Nothing is ever skipped. A provider that cannot simulate a stock-out declares it with
`capacity_unsupported_reason = "why"`: the test then passes with a `ConformanceGap` warning
in pytest's summary, and fails when neither (or both) is given. Likewise `supports_get`
and `supports_instance_types` (default True) must match what the provider implements.

Every test terminates what it created, so the suite can run against a real account too
(set `settle_seconds` when listings lag). pytest is imported only inside the tests.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, TypeVar

from navarch_plan.errors import (
    CapacityError,
    InvalidRequestError,
    NotFoundError,
    ProviderError,
)
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_SPEC,
    LABEL_WORKSPACE,
    InstanceType,
    Node,
    NodeStatus,
    ProvisionRequest,
    RateLimit,
    address_to_label,
    pool_address,
)
from navarch_plan.providers.base import InstanceTypeLister, NodeGetter, Provider, RateLimited

__all__ = ["CapacityHook", "ConformanceGap", "INVALID_TYPE_ERRORS", "ProviderConformance",
           "RequestFactory"]

_T = TypeVar("_T")
_ALIVE = (NodeStatus.PROVISIONING, NodeStatus.RUNNING)

#: What provisioning an instance type that does not exist may raise. InvalidRequestError
#: and NotFoundError say what happened. CapacityError is accepted because some clouds
#: cannot tell "no such type" from "not offered here" (EC2's `Unsupported`): navarch
#: then fails over to the next candidate, which refuses the type too, so the plan still
#: fails, with every attempt reported. Retryable kinds (TransientError, RateLimitError)
#: and AuthError/QuotaError are not accepted: they would send the executor the wrong way.
INVALID_TYPE_ERRORS: tuple[type[ProviderError], ...] = (
    InvalidRequestError, NotFoundError, CapacityError)


class RequestFactory(Protocol):
    """Makes a request this provider can fulfil, with exactly this name and these labels."""

    def __call__(self, name: str, labels: Mapping[str, str]) -> ProvisionRequest: ...


#: Given a request: a context inside which provisioning it raises CapacityError.
CapacityHook = Callable[[ProvisionRequest], AbstractContextManager[object]]


class ConformanceGap(UserWarning):
    """A deliberately declared gap in what the suite could check."""


class ProviderConformance:
    """The contract of DESIGN section 2, as pytest tests; see the module docstring."""

    workspace: str = "conformance"
    user_labels: Mapping[str, str] = {"team": "ml"}
    name_prefix: str = "nvconf"
    invalid_instance_type: str = "navarch-no-such-type"
    supports_get: bool = True
    supports_instance_types: bool = True
    capacity_unsupported_reason: str = ""
    settle_seconds: float = 0.0

    # -- helpers -------------------------------------------------------------------------

    def make_request(self, factory: RequestFactory, index: int = 0) -> ProvisionRequest:
        """A fresh name and the four kinds of labels navarch sets; checks the factory
        passed them through untouched."""
        name = f"{self.name_prefix}-{uuid.uuid4().hex[:8]}"
        labels = {LABEL_WORKSPACE: self.workspace,
                  LABEL_ADDRESS: address_to_label(pool_address("conformance", index)),
                  LABEL_SPEC: uuid.uuid4().hex[:10], **self.user_labels}
        req = factory(name, labels)
        assert isinstance(req, ProvisionRequest), f"request_factory returned {req!r}"
        assert (req.name, dict(req.labels)) == (name, labels), \
            "request_factory must use the name and labels it is given"
        return req

    def unknown_node_id(self, node: Node) -> str:
        """A well-formed id that no instance has: `node.id` with its last letter or digit
        changed (hex stays hex). Override when ids carry a checksum or other structure."""
        chars = list(node.id)
        for i in range(len(chars) - 1, -1, -1):
            c = chars[i]
            if c.isdigit():
                chars[i] = "1" if c == "0" else "0"
                return "".join(chars)
            if c.isalpha():
                other = "b" if c.lower() == "a" else "a"
                chars[i] = other.upper() if c.isupper() else other
                return "".join(chars)
        return node.id + "0"

    @contextmanager
    def tracked(self, provider: Provider) -> Iterator[list[str]]:
        """Ids appended to the yielded list are terminated on the way out, pass or fail."""
        ids: list[str] = []
        try:
            yield ids
        finally:
            for node_id in ids:
                provider.terminate(node_id)

    def settled(self, fetch: Callable[[], _T], done: Callable[[_T], bool]) -> _T:
        """fetch() until done(value), for at most settle_seconds; the last value."""
        deadline = time.monotonic() + self.settle_seconds
        value = fetch()
        while not done(value) and time.monotonic() < deadline:
            time.sleep(min(1.0, self.settle_seconds / 10))
            value = fetch()
        return value

    def expect_error(self, kinds: tuple[type[ProviderError], ...],
                     call: Callable[[], object]) -> ProviderError:
        try:
            result = call()
        except kinds as exc:
            return exc
        except Exception as exc:
            names = ", ".join(k.__name__ for k in kinds)
            raise AssertionError(f"expected one of {names}, got {type(exc).__name__}: {exc}"
                                 ) from exc
        raise AssertionError(f"expected {kinds[0].__name__}, but the call returned {result!r}")

    def _alive_named(self, provider: Provider, name: str) -> list[Node]:
        return [n for n in provider.list() if n.name == name and n.status in _ALIVE]

    def _by_id(self, provider: Provider) -> dict[str, Node]:
        return {n.id: n for n in provider.list()}

    # -- the contract --------------------------------------------------------------------

    def test_implements_the_protocols(self, provider: Provider) -> None:
        assert isinstance(provider, Provider), "provision, terminate, list and name needed"
        assert isinstance(provider.name, str) and provider.name
        assert isinstance(provider, NodeGetter) == self.supports_get, \
            "get() presence must match supports_get (set it False to declare it absent)"
        assert isinstance(provider, InstanceTypeLister) == self.supports_instance_types, \
            "list_instance_types() presence must match supports_instance_types"

    def test_declared_rate_limits_are_usable(self, provider: Provider) -> None:
        """The limits apply's scheduler will pace this provider by must be usable
        (positive rates, or None for no limit): the provider's own `rate_limit()` if it
        declares one, else what the scheduler falls back to."""
        from navarch_plan.apply.throttle import gate_for

        if isinstance(provider, RateLimited):
            assert isinstance(provider.rate_limit(), RateLimit), \
                "rate_limit() returns navarch_plan.model.RateLimit"
        limit = gate_for(provider.name, provider, {}).limit
        for rate in (limit.launches_per_second, limit.calls_per_second):
            assert rate is None or (isinstance(rate, int | float) and 0 < rate < math.inf)
        assert limit.concurrency is None or (isinstance(limit.concurrency, int)
                                             and limit.concurrency >= 1)

    def test_provision_returns_the_requested_node(self, provider: Provider,
                                                  request_factory: RequestFactory) -> None:
        req = self.make_request(request_factory)
        with self.tracked(provider) as ids:
            node = provider.provision(req)
            assert isinstance(node, Node), f"provision returned {node!r}"
            ids.append(node.id)
            assert isinstance(node.id, str) and node.id
            assert type(node.status) is NodeStatus and node.status in _ALIVE, \
                f"a new node is provisioning or running, not {node.status}"
            assert (node.provider, node.name, node.instance_type, node.region) == (
                provider.name, req.name, req.instance_type, req.region)

    def test_list_shows_the_node_with_its_labels(self, provider: Provider,
                                                 request_factory: RequestFactory) -> None:
        req = self.make_request(request_factory)
        with self.tracked(provider) as ids:
            node = provider.provision(req)
            ids.append(node.id)
            listed = self.settled(lambda: self._by_id(provider), lambda d: node.id in d)
            assert node.id in listed, f"{node.id} missing from list(): {sorted(listed)}"
            seen = listed[node.id]
            assert dict(seen.labels) == dict(req.labels), "labels must round-trip exactly"
            assert (seen.name, seen.instance_type, seen.region) == (
                req.name, req.instance_type, req.region)
            assert seen.status in _ALIVE

    def test_get_finds_the_node(self, provider: Provider,
                                request_factory: RequestFactory) -> None:
        if not isinstance(provider, NodeGetter):
            assert not self.supports_get, "provider has no get() but supports_get is True"
            return
        req = self.make_request(request_factory)
        with self.tracked(provider) as ids:
            node = provider.provision(req)
            ids.append(node.id)
            got = self.settled(lambda: provider.get(node.id), lambda n: n is not None)
            assert got is not None and got.id == node.id
            assert (got.name, dict(got.labels)) == (req.name, dict(req.labels))
            assert provider.get(self.unknown_node_id(node)) is None

    def test_terminate_removes_the_node(self, provider: Provider,
                                        request_factory: RequestFactory) -> None:
        node = provider.provision(self.make_request(request_factory))
        provider.terminate(node.id)
        listed = self.settled(lambda: self._by_id(provider),
                              lambda d: node.id not in d or d[node.id].status not in _ALIVE)
        assert node.id not in listed or listed[node.id].status in (
            NodeStatus.TERMINATING, NodeStatus.TERMINATED), \
            f"after terminate, list() shows {node.id} as {listed[node.id].status}"
        if isinstance(provider, NodeGetter):
            got = provider.get(node.id)
            assert got is None or got.status not in _ALIVE, f"get() still shows {got}"

    def test_terminate_is_idempotent(self, provider: Provider,
                                     request_factory: RequestFactory) -> None:
        req = self.make_request(request_factory)
        with self.tracked(provider) as ids:
            node = provider.provision(req)
            ids.append(node.id)
            ghost = self.unknown_node_id(node)
            assert ghost != node.id and ghost not in self._by_id(provider)
            provider.terminate(ghost)  # never existed: success
            listed = self.settled(lambda: self._by_id(provider), lambda d: node.id in d)
            assert node.id in listed and listed[node.id].status in _ALIVE, \
                f"terminating the unknown id {ghost!r} touched {node.id}"
            provider.terminate(node.id)
            provider.terminate(node.id)  # already terminated: success
        assert node.id not in {n.id for n in provider.list() if n.status in _ALIVE}

    def test_list_returns_normalised_nodes(self, provider: Provider,
                                           request_factory: RequestFactory) -> None:
        with self.tracked(provider) as ids:
            ids.append(provider.provision(self.make_request(request_factory)).id)
            nodes = provider.list()
            assert isinstance(nodes, list) and nodes, "list() must show the new node"
            for n in nodes:
                assert isinstance(n, Node), f"list() returned {n!r}"
                assert type(n.status) is NodeStatus, f"{n.id}: status {n.status!r}"
                assert n.provider == provider.name and isinstance(n.id, str) and n.id
                assert isinstance(n.gpu_count, int) and n.gpu_count >= 0
            assert len({n.id for n in nodes}) == len(nodes), "ids must be unique"

    def test_list_instance_types(self, provider: Provider,
                                 request_factory: RequestFactory) -> None:
        if not isinstance(provider, InstanceTypeLister):
            assert not self.supports_instance_types, \
                "provider has no list_instance_types() but supports_instance_types is True"
            return
        offers = provider.list_instance_types()
        assert isinstance(offers, list) and offers
        for offer in offers:
            assert isinstance(offer, InstanceType), f"not an InstanceType: {offer!r}"
            assert isinstance(offer.name, str) and offer.name
            assert isinstance(offer.gpu_count, int) and offer.gpu_count >= 0, offer
            assert offer.price_per_hr is None or offer.price_per_hr >= 0, offer
            assert all(isinstance(r, str) and r for r in offer.regions), offer
        assert len({o.name for o in offers}) == len(offers), "offer names must be unique"
        wanted = self.make_request(request_factory).instance_type
        assert wanted in {o.name for o in offers}, f"{wanted!r} (request_factory) not offered"

    def test_capacity_error(self, provider: Provider, request_factory: RequestFactory,
                            request: Any) -> None:
        import pytest  # only here: importing this module must not need pytest

        try:
            hook: CapacityHook | None = request.getfixturevalue("capacity_exhausted")
        except pytest.FixtureLookupError:
            hook = None
        reason = self.capacity_unsupported_reason.strip()
        if hook is None:
            assert reason, ("give the class a `capacity_exhausted` fixture, or declare the gap "
                            "with capacity_unsupported_reason = '<why it cannot be simulated>'")
            warnings.warn(ConformanceGap(f"{type(self).__name__}: capacity errors not "
                                         f"checked: {reason}"), stacklevel=1)
            return
        assert not reason, "capacity_exhausted is given, so drop capacity_unsupported_reason"
        req = self.make_request(request_factory)
        with self.tracked(provider) as ids:
            with hook(req):
                err = self.expect_error((CapacityError,), lambda: provider.provision(req))
                assert isinstance(err, ProviderError)
                assert (err.provider, err.region) == (provider.name, req.region)
                leaked = self._alive_named(provider, req.name)
                ids.extend(n.id for n in leaked)
                assert not leaked, f"a refused launch left {leaked}"
            # Capacity is back: the same request works (under a new name, as a real retry
            # would have: some clouds remember a failed launch by its name or token).
            node = provider.provision(self.make_request(request_factory))
            ids.append(node.id)
            assert node.status in _ALIVE

    def test_invalid_instance_type(self, provider: Provider,
                                   request_factory: RequestFactory) -> None:
        req = dataclasses.replace(self.make_request(request_factory),
                                  instance_type=self.invalid_instance_type)
        with self.tracked(provider) as ids:
            err = self.expect_error(INVALID_TYPE_ERRORS, lambda: provider.provision(req))
            assert err.provider == provider.name
            leaked = self._alive_named(provider, req.name)
            ids.extend(n.id for n in leaked)
            assert not leaked, f"an invalid request left {leaked}"
