"""A planner's world as plain data: a config, and a state and cloud that agree with it.
Shared by the planner and rendering tests, which never touch a provider or a file."""

from __future__ import annotations

import itertools
from typing import Any

from navarch_plan.config import Config, parse_config
from navarch_plan.model import Node, NodeStatus
from navarch_plan.planner import PlanInputs, PlanOptions, make_plan
from navarch_plan.planner.observed import Observed
from navarch_plan.planner.ownership import ownership_labels
from navarch_plan.state.model import NodeRecord, StateDoc

BASE = """
version: 1
workspace: ws
providers: {sim: {type: fake}}
pools:
  head: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1}
  workers:
    provider: sim
    instance_type: gpu_1x_a100
    region: us-west-1
    nodes: 3
    user_data: "HEAD=${pools.head.nodes[0].ip_address}"
"""


def config(text: str = BASE) -> Config:
    return parse_config(text, "navarch.yaml", {})


class World:
    """A state and a cloud that agree: every desired node exists and runs."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = StateDoc.new("ws")
        self.live: list[Node] = []
        self._ids = itertools.count(1)
        for address, node in cfg.desired.items():
            self.add(address, node)
        for address, node in cfg.desired.items():
            refs = {r.text: self.state.nodes[r.address].ip_address for r in node.refs}
            self.state.nodes[address] = NodeRecord(**{**self.state.nodes[address].__dict__,
                                                      "ref_values": refs})

    def add(self, address: str, node: Any, status: str = "running") -> Node:
        n = next(self._ids)
        live = Node(id=f"i-{n}", provider="sim", region=node.region,
                    instance_type=node.instance_type, status=NodeStatus(status),
                    name=f"ws-{n}", ip_address=f"10.0.0.{n}",
                    labels=ownership_labels("ws", node))
        self.live.append(live)
        self.state.nodes[address] = NodeRecord(
            id=live.id, provider="sim", region=live.region, zone="",
            instance_type=live.instance_type, name=live.name, spec=dict(node.spec),
            spec_hash=node.spec_hash, status="running", ip_address=live.ip_address,
            labels=dict(live.labels), created_at="2026-01-01T00:00:00+00:00")
        return live

    def plan(self, cfg: Config | None = None, observed: Observed | None = None,
             idempotent: frozenset[str] = frozenset(),
             label_setters: frozenset[str] = frozenset({"sim"}), **options: Any
             ) -> dict[str, Any]:
        """`observed`: what the reads showed, when more than a complete listing of
        `live` (lookups, windows, unreachable places, the time). `label_setters`: the
        providers that set labels in place (the fake does)."""
        cfg = cfg or self.cfg
        inputs = PlanInputs(workspace="ws", desired=cfg.desired, groups=cfg.groups,
                            state=self.state, live={"sim": self.live},
                            prices={("sim", "gpu_1x_a10"): 0.75, ("sim", "gpu_1x_a100"): 1.29},
                            config_hash=cfg.config_hash, created_at="now",
                            observed=observed, idempotent=idempotent,
                            label_setters=label_setters)
        plan = make_plan(inputs, PlanOptions(**options), lambda seed: "abcd")
        return plan.to_json()
