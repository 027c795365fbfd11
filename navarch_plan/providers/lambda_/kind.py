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

__all__ = ["LAMBDA", "DEFAULT_BASE_URL", "LAUNCH_INTERVAL", "CAPACITY_CACHE_SECONDS",
           "LAUNCH_OPTIONS", "launch_fields"]

DEFAULT_BASE_URL = "https://cloud.lambda.ai/api/v1"
LAUNCH_INTERVAL = 12.0  # seconds: Lambda allows one launch per 12 s per account
# How long one GET /instance-types answers the capacity check before launches (docs/clouds/
# lambda.md): longer than a launch slot, so a pool's launches share a read.
CAPACITY_CACHE_SECONDS = 60.0

# Options a pool may set for its own nodes (`launch:`), each also a provider option.
# Lambda's launch fields (InstanceLaunchRequest): file systems and firewall rulesets
# belong to one region, so a pool over several regions sets them per providers entry.
LAUNCH_SCHEMA: dict[str, Any] = {
    "file_systems": {
        "description": "names of Lambda file systems to attach (launch: file_system_names); "
                       "a file system lives in one region",
        "type": "array", "uniqueItems": True,
        "items": {"type": "string", "pattern": "^[a-zA-Z][0-9a-zA-Z-]*$", "maxLength": 60,
                  "patternErrorMessage": "a file system name: letters, digits and '-', starting "
                  "with a letter"}},
    "firewall_rulesets": {
        "description": "ids of firewall rulesets to apply (launch: firewall_rulesets: "
                       "[{id}]); a ruleset lives in one region",
        "type": "array", "uniqueItems": True, "items": {"type": "string", "minLength": 1}},
    "image": {
        "description": "the machine image (launch: image), by id or by family; default: "
                       "the latest Lambda Stack",
        # One of id or family; written this way (not oneOf) so an error names the key.
        "type": "object", "minProperties": 1, "maxProperties": 1,
        "additionalProperties": False,
        "properties": {"id": {"type": "string", "minLength": 1},
                       "family": {"type": "string", "minLength": 1}}},
}
LAUNCH_OPTIONS = frozenset(LAUNCH_SCHEMA)

OPTIONS = {
    "required": ["api_key_env"],
    "properties": {
        "api_key_env": {"description": "the name of the environment variable holding the "
                                       "API key (never the key itself)",
                        "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                        "patternErrorMessage": "an environment variable's name: letters, digits "
                        "and '_', not starting with a digit"},
        "base_url": {"type": "string", "pattern": "^https?://",
                     "patternErrorMessage": "an http:// or https:// URL"},
        "launch_interval": {"description": "seconds between launches (Lambda: 12)",
                            "type": "number", "minimum": 0},
        "timeout": {"description": "seconds per HTTP call", "type": "number",
                    "exclusiveMinimum": 0},
        "capacity_cache_seconds": {
            "description": "seconds one read of GET /instance-types answers the capacity "
                           "check before launches (0: read before every launch)",
            "type": "number", "minimum": 0},
        **LAUNCH_SCHEMA,
    },
}


def launch_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """The launch request's fields for navarch's launch options (schema-checked); an
    option left out or empty sends nothing, so Lambda's defaults apply."""
    body: dict[str, Any] = {}
    if options.get("file_systems"):
        body["file_system_names"] = list(options["file_systems"])
    if options.get("firewall_rulesets"):
        body["firewall_rulesets"] = [{"id": r} for r in options["firewall_rulesets"]]
    if options.get("image"):
        body["image"] = dict(options["image"])
    return body

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
        clock=context.clock,
        capacity_cache_seconds=float(options.get("capacity_cache_seconds",
                                                 CAPACITY_CACHE_SECONDS)),
        launch={k: options[k] for k in LAUNCH_OPTIONS if k in options})


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
    launch_options=LAUNCH_OPTIONS,
)
