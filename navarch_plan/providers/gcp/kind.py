"""The `gcp` provider type: Compute Engine's options, label rules and launch rules, known
without importing google-cloud-compute."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from navarch_plan.model import Consistency, RateLimit
from navarch_plan.providers.base import (
    BuildContext,
    LabelRules,
    NodeFacts,
    NodeProblem,
    Provider,
)
from navarch_plan.providers.declared import DeclaredType

__all__ = ["GCP", "LABEL_RULES"]

OPTIONS = {
    "required": ["project"],
    "properties": {
        "project": {"type": "string", "minLength": 1},
        "endpoint": {"type": "string", "pattern": "^https?://"},
        "image": {"type": "string", "minLength": 1},
        "disk_gb": {"type": "integer", "minimum": 10},
        "credentials": {"description": "default: application-default credentials; "
                                       "anonymous: none (a local test server)",
                        "enum": ["default", "anonymous"]},
    },
}

# Compute Engine's label rules: keys start with a lowercase letter; keys and values use
# lowercase letters, digits, '_' and '-', at most 63 characters. The provider fits other
# labels to them when used from Python; a config gets an error instead, since a label the
# cloud rewrote would never match what the config says.
LABEL_RULES = LabelRules(
    key_pattern=r"[a-z][a-z0-9_-]*", value_pattern=r"[a-z0-9_-]*", max_key=63,
    max_value=63,
    words="Compute Engine's label rules (lowercase letters, digits, '_' and '-', at most "
          "63 characters; keys start with a letter)")


def launch_rules(options: Mapping[str, Any], node: NodeFacts) -> Iterator[NodeProblem]:
    if not node.zone:
        yield NodeProblem("Compute Engine needs a zone (zone: us-central1-a)")


def build(name: str, options: Mapping[str, Any], env: Mapping[str, str],
          context: BuildContext) -> Provider:
    """Credentials are google-auth's business (GOOGLE_APPLICATION_CREDENTIALS, the
    metadata server), never the config's."""
    from google.auth.credentials import AnonymousCredentials

    from navarch_plan.providers.gcp.provider import GcpProvider

    anonymous = options.get("credentials") == "anonymous"
    extra = {key: options[key] for key in ("image", "disk_gb") if key in options}
    return GcpProvider(name, str(options["project"]), endpoint=options.get("endpoint"),
                       credentials=AnonymousCredentials() if anonymous else None,
                       clock=context.clock, **extra)


GCP = DeclaredType(
    name="gcp", title="Compute Engine", factory=build, options_schema=OPTIONS,
    label_rules=LABEL_RULES,
    # Reads by name are consistent, but an aggregated list can lag a new instance or
    # leave zones out; accelerator VMs take minutes to boot; an insert re-sent with the
    # same requestId and name returns the first one.
    consistency=Consistency(window=60.0, boot_timeout=1200.0, idempotent_launch=True),
    # Below the default per-project API rate quotas, which a fleet shares with everything
    # else in the project.
    rate_limit=RateLimit(launches_per_second=5.0, calls_per_second=20.0),
    node_checks=(launch_rules,),
)
