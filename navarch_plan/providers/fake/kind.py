"""The `fake` provider type: the fake cloud's options (its manners: latency, capacity,
lag, injected faults), known without opening its file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from navarch_plan.model import Consistency
from navarch_plan.providers.base import BuildContext, Provider
from navarch_plan.providers.declared import SPOT_RESERVED_ON_DEMAND, DeclaredType
from navarch_plan.providers.fake.faults import FAULT_OPS

__all__ = ["FAKE"]

_SECONDS = {"type": "number", "minimum": 0, "maximum": 3600}
#: The config schema's shared rule for region and zone names.
_LOCATION = {"$ref": "#/$defs/location"}

_FAULT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["op"],
    "properties": {
        "op": {"enum": list(FAULT_OPS)},
        "error": {"enum": ["transient", "capacity", "rate_limit", "quota", None]},
        "effect": {"type": "boolean"},
        "delay": _SECONDS,
        "retry_after": {"type": "number", "minimum": 0},
        "address": {"type": "string", "minLength": 1},
        "hide": {"type": "number", "minimum": 0, "maximum": 1},
        "unreachable": {"type": "array", "items": _LOCATION},
        "purchase": {"enum": ["on-demand", "spot", "reservation"]},
    },
    # Only a timeout can have happened anyway (a refusal has no effect).
    "if": {"properties": {"effect": {"const": True}}, "required": ["effect"]},
    "then": {"required": ["error"], "properties": {"error": {"const": "transient"}}},
}

OPTIONS = {
    "properties": {
        "path": {"description": "the cloud's SQLite file, relative to the config's folder "
                                "(without it the cloud lives in memory for one run)",
                 "type": "string", "minLength": 1},
        "latency": {"type": "number", "minimum": 0, "maximum": 60},
        "capacity": {"type": "object",
                     "additionalProperties": {"type": "integer", "minimum": 0}},
        "fail_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "seed": {"type": "integer"},
        "boot_time": _SECONDS,
        "visibility_lag": {"description": "seconds a new instance is missing from list "
                                          "and get, and a terminate of it does nothing "
                                          "(EC2's eventual consistency)", **_SECONDS},
        "terminate_lag": {"description": "seconds a terminated instance stays listed as "
                                         "terminating", **_SECONDS},
        "idempotent": {"description": "a launch re-sent with the same idempotency key "
                                      "returns the first instance (default true, like "
                                      "EC2; false, like Lambda)", "type": "boolean"},
        "spot_prices": {"description": "the spot price of each type, USD per hour, the "
                                       "same in every region (a type left out has no "
                                       "known spot price)",
                        "type": "object", "maxProperties": 100,
                        "additionalProperties": {"type": "number", "minimum": 0}},
        "faults": {"description": "injected faults, each taken in order by the next "
                                  "matching call (providers/fake/faults.py)",
                   "type": "array", "maxItems": 10000, "items": _FAULT},
    },
}

_PASSED_ON = ("latency", "capacity", "fail_rate", "seed", "boot_time", "faults",
              "visibility_lag", "terminate_lag", "idempotent", "spot_prices")


def build(name: str, options: Mapping[str, Any], env: Mapping[str, str],
          context: BuildContext) -> Provider:
    from navarch_plan.providers.fake.provider import FakeProvider

    path = options.get("path")
    return FakeProvider(name, path=os.path.join(context.base_dir, path) if path else None,
                        clock=context.clock,
                        **{key: options[key] for key in _PASSED_ON if key in options})


FAKE = DeclaredType(
    name="fake", title="the fake cloud", factory=build, options_schema=OPTIONS,
    # Consistent unless told to lag; each fake provider says its own window (three
    # times its lag) through consistency().
    consistency=Consistency(window=0.0, boot_timeout=900.0, idempotent_launch=True),
    purchase_models=SPOT_RESERVED_ON_DEMAND,
    placement_groups=True,
)
