"""The `lambda` provider type: Lambda Cloud's options, tag rules and launch rules, known
without importing httpx."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from navarch_plan.errors import AuthError
from navarch_plan.model import Consistency, RateLimit
from navarch_plan.providers.base import (
    BuildContext,
    LabelRules,
    NodeFacts,
    NodeProblem,
    Provider,
)
from navarch_plan.providers.declared import DeclaredType

__all__ = ["LAMBDA", "DEFAULT_BASE_URL", "LAUNCH_INTERVAL"]

DEFAULT_BASE_URL = "https://cloud.lambda.ai/api/v1"
LAUNCH_INTERVAL = 12.0  # seconds: Lambda allows one launch per 12 s per account

OPTIONS = {
    "required": ["api_key_env"],
    "properties": {
        "api_key_env": {"description": "the name of the environment variable holding the "
                                       "API key (never the key itself)",
                        "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "base_url": {"type": "string", "pattern": "^https?://"},
        "launch_interval": {"description": "seconds between launches (Lambda: 12)",
                            "type": "number", "minimum": 0},
        "timeout": {"description": "seconds per HTTP call", "type": "number",
                    "exclusiveMinimum": 0},
    },
}

# Lambda's launch spec: tag keys ^[a-z][a-z0-9-:]+$, at most 55 characters; values at
# most 128.
TAG_RULES = LabelRules(
    key_pattern=r"[a-z][a-z0-9-:]+", max_key=55, max_value=128,
    words="Lambda Cloud's tag rules (keys: a lowercase letter, then lowercase letters, "
          "digits, '-' or ':', at most 55 characters; values at most 128)")


def launch_rules(options: Mapping[str, Any], node: NodeFacts) -> Iterator[NodeProblem]:
    if len(node.ssh_keys) != 1:
        yield NodeProblem("Lambda Cloud launches take exactly one SSH key name; "
                          f"{len(node.ssh_keys)} given", field="ssh_keys")
    if node.zone:
        yield NodeProblem("Lambda Cloud has no zones: leave zone out", field="zone")


def build(name: str, options: Mapping[str, Any], env: Mapping[str, str],
          context: BuildContext) -> Provider:
    """Secrets come only from the environment variable the options name. Built from a
    config, apply's scheduler owns retries and pacing (from `rate_limit`): the provider
    doing them too would multiply tries and park workers on a 429."""
    from navarch_plan.providers.lambda_.provider import LambdaProvider

    var = options["api_key_env"]
    key = env.get(var)
    if not key:
        raise AuthError(f"environment variable {var} is not set; it must hold the "
                        "Lambda Cloud API key", provider=name)
    return LambdaProvider(
        name, key, base_url=options.get("base_url", DEFAULT_BASE_URL),
        launch_interval=float(options.get("launch_interval", LAUNCH_INTERVAL)),
        timeout=float(options.get("timeout", 30.0)), max_retries=0, self_paced=False,
        clock=context.clock)


LAMBDA = DeclaredType(
    name="lambda", title="Lambda Cloud", factory=build, options_schema=OPTIONS,
    label_rules=TAG_RULES,
    # The listing can come back short for a moment after a launch; 8x H100 nodes take
    # over 20 minutes to boot (dstack #2342), so 30; a launch has no idempotency key, so
    # a lost reply is settled by looking for the name.
    consistency=Consistency(window=120.0, boot_timeout=1800.0, idempotent_launch=False),
    # One launch per 12 s; about one request per second otherwise.
    rate_limit=RateLimit(launches_per_second=1.0 / LAUNCH_INTERVAL, calls_per_second=1.0),
    node_checks=(launch_rules,),
)
