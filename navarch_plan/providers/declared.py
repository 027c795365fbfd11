"""A provider type from its parts (`DeclaredType`): how the built-ins declare themselves,
and what a plugin may use as well; and the adapter that makes a plain provider class with
`from_config` (the older plugin contract) a provider type."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from navarch_plan.catalog.facts import ON_DEMAND, RESERVATION, SPOT
from navarch_plan.model import Consistency, RateLimit
from navarch_plan.providers.base import (
    DEFAULT_CONSISTENCY,
    BuildContext,
    LabelRules,
    NodeFacts,
    NodeProblem,
    Provider,
)

__all__ = ["DeclaredType", "NodeCheck", "SPOT_RESERVED_ON_DEMAND", "type_from_class"]

#: The purchase models of a cloud that launches spot instances and into capacity
#: reservations (`reservation:`) as well as on demand.
SPOT_RESERVED_ON_DEMAND = frozenset({ON_DEMAND, SPOT, RESERVATION})

#: One rule about a node: (provider options, node) -> what the cloud would refuse.
NodeCheck = Callable[[Mapping[str, Any], NodeFacts], Iterable[NodeProblem]]
Factory = Callable[[str, Mapping[str, Any], Mapping[str, str], BuildContext], Provider]


@dataclass(frozen=True)
class DeclaredType:
    """A ProviderType: the label rules are checked for every node, then each of
    `node_checks`; `factory` builds the provider (and is where the SDK is imported)."""

    name: str
    title: str
    factory: Factory = field(compare=False)
    options_schema: Mapping[str, Any] | None = None
    label_rules: LabelRules | None = None
    consistency: Consistency = DEFAULT_CONSISTENCY
    rate_limit: RateLimit = RateLimit()
    node_checks: tuple[NodeCheck, ...] = field(default=(), compare=False)
    launch_options: frozenset[str] = frozenset()
    purchase_models: frozenset[str] = frozenset({ON_DEMAND})
    placement_groups: bool = False

    def check_node(self, options: Mapping[str, Any], node: NodeFacts
                   ) -> Sequence[NodeProblem]:
        problems = [NodeProblem(f"label {key}={value!r} {why}", field=f"labels.{key}")
                    for key, value in node.labels.items()
                    if self.label_rules
                    and (why := self.label_rules.problem(key, str(value))) is not None]
        for check in self.node_checks:
            problems.extend(check(options, node))
        return problems

    def build(self, name: str, options: Mapping[str, Any], env: Mapping[str, str],
              context: BuildContext) -> Provider:
        return self.factory(name, options, env, context)


def type_from_class(name: str, cls: Any) -> DeclaredType:
    """A provider class registered directly: built with `cls.from_config(name, cfg, env)`
    where `cfg` is its YAML mapping, `type` included. Optional class attributes declare
    the rest: `options_schema`, `label_rules`, `title`, `default_consistency`,
    `default_rate_limit`. Without `options_schema` any keys pass the config's schema, so
    `from_config` must check them. `launch_options`: option names a pool may override
    (they reach `provision` as `ProvisionRequest.launch`). `purchase_models`: how it
    can buy (default on-demand only; add "spot" when `provision` honours
    `ProvisionRequest.purchase`). `placement_groups`: True when `provision` honours
    `ProvisionRequest.placement_group` (`placement: cluster`)."""
    def factory(provider: str, options: Mapping[str, Any], env: Mapping[str, str],
                context: BuildContext) -> Provider:
        built: Provider = cls.from_config(provider, {"type": name, **options}, env)
        return built

    return DeclaredType(
        name=name, title=getattr(cls, "title", name), factory=factory,
        options_schema=getattr(cls, "options_schema", None),
        label_rules=getattr(cls, "label_rules", None),
        consistency=getattr(cls, "default_consistency", DEFAULT_CONSISTENCY),
        rate_limit=getattr(cls, "default_rate_limit", RateLimit()),
        launch_options=frozenset(getattr(cls, "launch_options", ())),
        purchase_models=frozenset(getattr(cls, "purchase_models", {ON_DEMAND})),
        placement_groups=bool(getattr(cls, "placement_groups", False)))
