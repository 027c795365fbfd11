"""The `gcp` provider type: Compute Engine's options, label rules and launch rules, known
without importing google-cloud-compute."""

from __future__ import annotations

import re
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
from navarch_plan.providers.declared import SPOT_RESERVED_ON_DEMAND, DeclaredType

__all__ = ["GCP", "LABEL_RULES"]

_DISK_TYPES = ["pd-balanced", "pd-ssd", "pd-standard", "pd-extreme", "hyperdisk-balanced",
               "hyperdisk-extreme", "hyperdisk-throughput", "hyperdisk-ml"]
_RESOURCE = {"type": "string", "pattern": "^[a-z0-9][a-z0-9/._:-]*$", "maxLength": 1024,
             "patternErrorMessage": "a name or path: lowercase letters, digits and / . _ : -, "
             "starting with a letter or digit"}

OPTIONS = {
    "required": ["project"],
    "properties": {
        "project": {"type": "string", "minLength": 1},
        "endpoint": {"type": "string", "pattern": "^https?://",
                     "patternErrorMessage": "an http:// or https:// URL"},
        "image": {"type": "string", "minLength": 1,
                  "description": "boot image or image family path (default: a Deep Learning "
                                 "VM image with CUDA)"},
        "disk_gb": {"type": "integer", "minimum": 10, "description": "boot disk size "
                    "(default 200)"},
        "disk_type": {"enum": _DISK_TYPES, "description": "boot disk type (default "
                      "pd-balanced; hyperdisk-balanced on A3 Ultra, A4, A4X)"},
        "network": {**_RESOURCE, "description": "VPC network: a name or "
                    "projects/P/global/networks/N (default: default)"},
        "subnetwork": {"description": "subnetwork: a name or path, or a map by region",
                       "oneOf": [_RESOURCE, {"type": "object", "minProperties": 1,
                                             "additionalProperties": _RESOURCE}]},
        "service_account": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$",
                            "patternErrorMessage": "an email address "
                                                   "(NAME@PROJECT.iam.gserviceaccount.com)",
                            "description": "email of the service account the VM runs as "
                                           "(scope cloud-platform; default: none)"},
        "ssh_user": {"type": "string", "pattern": "^[a-z_][a-z0-9_-]{0,31}$",
                     "patternErrorMessage": "a Linux user name: lowercase letters, digits, '_' "
                     "and '-', starting with a letter or '_', at most 32 characters",
                     "description": "the user ssh_keys are installed for (default navarch)"},
        "credentials": {"description": "default: application-default credentials; "
                                       "anonymous: none (a local test server)",
                        "enum": ["default", "anonymous"]},
    },
}
LAUNCH_OPTIONS = frozenset({"image", "disk_gb", "disk_type", "network", "subnetwork",
                            "service_account"})
# Families whose boot disk must be Hyperdisk; and those that refuse pd-standard.
_HYPERDISK_ONLY = ("a3-ultragpu", "a4-", "a4x-")
_NO_PD_STANDARD = ("a2-", "a3-", "g2-")

# Compute Engine's label rules: keys start with a lowercase letter; keys and values use
# lowercase letters, digits, '_' and '-', at most 63 characters. The provider fits other
# labels to them when used from Python; a config gets an error instead, since a label the
# cloud rewrote would never match what the config says.
# Labels whose key starts with `goog-` are put on instances by Google's own services
# (the Ops Agent's goog-ops-agent-policy, GKE's goog-gke-node, ...): not the config's to
# set, and never removed by navarch (the provider neither lists nor overwrites them).
LABEL_RULES = LabelRules(
    key_pattern=r"[a-z][a-z0-9_-]*", value_pattern=r"[a-z0-9_-]*", max_key=63,
    max_value=63, reserved_prefixes=("goog-",),
    words="Compute Engine's label rules (lowercase letters, digits, '_' and '-', at most "
          "63 characters; keys start with a letter and not with 'goog-', which Google's "
          "services use)")


#: A specific reservation, by its name (RFC 1035, as every Compute Engine resource).
_RESERVATION_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def launch_rules(options: Mapping[str, Any], node: NodeFacts) -> Iterator[NodeProblem]:
    if not node.zone:
        yield NodeProblem("Compute Engine needs a zone (zone: us-central1-a)")
    subnetwork = options.get("subnetwork")
    if isinstance(subnetwork, Mapping) and node.region not in subnetwork:
        yield NodeProblem(f"subnetwork has no value for region {node.region}, a candidate "
                          f"region (it has: {', '.join(sorted(subnetwork))})",
                          option="subnetwork")
    yield from _disk_rules(options.get("disk_type", ""), node.instance_type)
    if node.reservation and not _RESERVATION_NAME.fullmatch(node.reservation):
        yield NodeProblem(f"{node.reservation!r} is not a Compute Engine reservation name "
                          "(lowercase letters, digits and '-', at most 63 characters)",
                          field="reservation")
    missing = [k for k in node.ssh_keys if k not in node.ssh_public_keys]
    if missing:
        yield NodeProblem(f"ssh key {missing[0]!r} has no public key in ssh_public_keys: "
                          "Compute Engine installs keys from their text (ssh-keys metadata)",
                          field="ssh_keys")


def _disk_rules(disk_type: str, instance_type: str) -> Iterator[NodeProblem]:
    machine = instance_type.split("+", 1)[0]
    if disk_type.startswith("pd-") and machine.startswith(_HYPERDISK_ONLY):
        yield NodeProblem(f"{machine} boots only from Hyperdisk (disk_type: "
                          "hyperdisk-balanced)", option="disk_type")
    elif disk_type == "pd-standard" and machine.startswith(_NO_PD_STANDARD):
        yield NodeProblem(f"{machine} does not take pd-standard disks (use pd-balanced or "
                          "pd-ssd)", option="disk_type")


def build(name: str, options: Mapping[str, Any], env: Mapping[str, str],
          context: BuildContext) -> Provider:
    """Credentials are google-auth's business (GOOGLE_APPLICATION_CREDENTIALS, the
    metadata server), never the config's."""
    from google.auth.credentials import AnonymousCredentials

    from navarch_plan.providers.gcp.launch import LaunchSettings
    from navarch_plan.providers.gcp.provider import GcpProvider

    anonymous = options.get("credentials") == "anonymous"
    settings = LaunchSettings.of({k: options[k] for k in (*LAUNCH_OPTIONS, "ssh_user")
                                  if k in options})
    return GcpProvider(name, str(options["project"]), endpoint=options.get("endpoint"),
                       credentials=AnonymousCredentials() if anonymous else None,
                       clock=context.clock, settings=settings)


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
    launch_options=LAUNCH_OPTIONS,
    purchase_models=SPOT_RESERVED_ON_DEMAND,
    placement_groups=True,
)
