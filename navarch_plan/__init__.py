"""navarch-plan: declarative GPU fleets across clouds, planned and applied.

The public face: everything a program needs, importable from here. Names resolve on
first use, so `import navarch_plan` stays light (no cloud SDK is imported until a
provider class that needs one is asked for).

    from navarch_plan import Engine, FakeProvider, Pool, PoolEntry, ProvisionRequest
"""

from __future__ import annotations

from navarch_plan.lazy import lazy_attributes

__version__ = "0.1.0"

_WHERE = {
    "Engine": "engine", "load_config": "engine",
    "Pool": "pool", "PoolEntry": "pool",
    "Plan": "plan", "Action": "plan", "ActionKind": "plan", "Reason": "plan",
    "PlanOptions": "planner", "PlanInputs": "planner", "make_plan": "planner",
    "Config": "config", "parse_config": "config",
    "Consistency": "model", "InstanceType": "model", "Listing": "model", "Node": "model",
    "NodeStatus": "model", "ProvisionRequest": "model", "RateLimit": "model",
    "Provider": "providers.base", "InstanceTypeLister": "providers.base",
    "NodeGetter": "providers.base", "PartialLister": "providers.base",
    "EventuallyConsistent": "providers.base", "LabelSetter": "providers.base",
    "RateLimited": "providers.base",
    "FakeProvider": "providers.fake", "LambdaProvider": "providers.lambda_",
    "GcpProvider": "providers.gcp", "AwsProvider": "providers.aws",
    "Hooks": "apply.hooks", "ApplyResult": "apply.executor",
    **{name: "errors" for name in (
        "NavarchError", "ConfigError", "StateError", "LockError", "PlanError",
        "StalePlanError", "ApplyError", "BootTimeoutError", "VanishedError",
        "NotRunningError", "TerminateTimeoutError", "ProviderError", "CapacityError",
        "NotOfferedError",
        "QuotaError", "RateLimitError", "AuthError", "InvalidRequestError",
        "DuplicateLaunchError", "NotFoundError", "TransientError", "LaunchLostError")},
}

__all__ = ["__version__", *sorted(_WHERE)]


__getattr__ = lazy_attributes(__name__, _WHERE)


def __dir__() -> list[str]:
    return __all__
