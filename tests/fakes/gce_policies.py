"""Compact placement policies for the local GCE server (tests/fakes/gce_server.py):
regions/R/resourcePolicies insert, get and delete, aggregated/resourcePolicies, and the
region operations their inserts and deletes return. Like GCE: an operation is RUNNING
until polled (`polls_until_done` times, as the server's zone operations), a policy being
created can't be named yet and one being deleted is there until its operation is DONE;
a second insert of a name is 409 alreadyExists; deleting a policy an instance still
names in `resourcePolicies` is 400 resourceInUseByAnotherResource; an instance naming a
policy that does not exist (or is not READY) is refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.gce_server import FakeGce

API = "https://compute.googleapis.com/compute/v1"


def route_policies(fake: FakeGce, method: str, parts: list[str], body: Any) -> dict | None:
    """The reply for a policy (or region operation) path, or None when it is not one."""

    if parts == ["aggregated", "resourcePolicies"] and method == "GET":
        return _aggregated(fake)
    if len(parts) < 3 or parts[0] != "regions":
        return None
    region, rest = parts[1], parts[2:]
    if rest[0] == "operations" and len(rest) in (2, 3):
        return fake._poll(rest[1])
    if rest == ["resourcePolicies"] and method == "POST":
        return _insert(fake, region, body or {})
    if len(rest) == 2 and rest[0] == "resourcePolicies":
        if method == "GET":
            return _get(fake, region, rest[1])
        if method == "DELETE":
            return _delete(fake, region, rest[1])
    return None


def _link(fake: FakeGce, region: str, name: str) -> str:
    return f"{API}/projects/{fake.project}/regions/{region}/resourcePolicies/{name}"


def _insert(fake: FakeGce, region: str, body: dict[str, Any]) -> dict:
    from tests.fakes.gce_server import HttpError

    name = body["name"]
    if (region, name) in fake.policies:
        raise HttpError(409, f"The resource 'projects/{fake.project}/regions/{region}/"
                        f"resourcePolicies/{name}' already exists", "alreadyExists")
    policy = {**body, "kind": "compute#resourcePolicy",
              "region": f"{API}/projects/{fake.project}/regions/{region}",
              "selfLink": _link(fake, region, name), "status": "CREATING"}
    fake.policies[(region, name)] = policy
    return _region_op(fake, region, "insert", name,
                      on_done=lambda: policy.update(status="READY"))


def _get(fake: FakeGce, region: str, name: str) -> dict:
    from tests.fakes.gce_server import HttpError

    if (region, name) not in fake.policies:
        raise HttpError(404, f"The resource 'projects/{fake.project}/regions/{region}/"
                        f"resourcePolicies/{name}' was not found", "notFound")
    return fake.policies[(region, name)]


def _delete(fake: FakeGce, region: str, name: str) -> dict:
    from tests.fakes.gce_server import HttpError

    _get(fake, region, name)
    users = [inst["name"] for inst in fake.instances.values()
             if inst["status"] not in ("TERMINATED",)
             and any(p.endswith(f"regions/{region}/resourcePolicies/{name}")
                     for p in inst.get("resourcePolicies", []))]
    if users:
        raise HttpError(400, f"The resource_policy resource '{name}' is already being used "
                        f"by '{users[0]}'", "resourceInUseByAnotherResource")
    fake.policies[(region, name)]["status"] = "DELETING"
    return _region_op(fake, region, "delete", name,
                      on_done=lambda: fake.policies.pop((region, name), None))


def _aggregated(fake: FakeGce) -> dict:
    items: dict[str, Any] = {}
    for (region, _), policy in sorted(fake.policies.items()):
        items.setdefault(f"regions/{region}", {}).setdefault("resourcePolicies",
                                                              []).append(policy)
    return {"kind": "compute#resourcePolicyAggregatedList", "items": items}


def _region_op(fake: FakeGce, region: str, kind: str, target: str,
               on_done: Any) -> dict:
    """A RUNNING region operation that is DONE (and takes effect) on its
    `polls_until_done`-th poll."""
    from tests.fakes.gce_server import _Op

    op_id = str(next(fake._ids))
    r = f"{API}/projects/{fake.project}/regions/{region}"
    body = {"kind": "compute#operation", "id": op_id, "name": f"operation-{op_id}",
            "operationType": kind, "status": "RUNNING", "progress": 0, "region": r,
            "targetLink": f"{r}/resourcePolicies/{target}",
            "selfLink": f"{r}/operations/operation-{op_id}"}
    fake.operations[body["name"]] = _Op(body=body, polls_left=fake.polls_until_done,
                                        on_done=on_done)
    return dict(body)


def check_policies(fake: FakeGce, zone: str, body: dict[str, Any]) -> None:
    """An instance may name only policies that exist in its region."""
    from tests.fakes.gce_server import HttpError

    region = zone.rsplit("-", 1)[0]
    for link in body.get("resourcePolicies", []):
        name = link.rsplit("/", 1)[-1]
        if f"regions/{region}/resourcePolicies/" not in link \
                or fake.policies.get((region, name), {}).get("status") != "READY":
            raise HttpError(400, f"Invalid value for field 'resource.resourcePolicies[0]': "
                            f"'{link}'. The resource was not found", "invalid")
