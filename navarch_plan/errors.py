"""The error tree. Callers act on the class, never on a message string.

    NavarchError                    anything the CLI reports as one line, exit 1
    ├── UsageError                  a command line that cannot be right (an unknown
    │                               option value, an address not in state, ...)
    ├── ConfigError                 bad config: carries file, line, column, key path
    │   └── ConfigErrors            several at once (`errors`); reads as the first
    ├── StateError                  unreadable, corrupt, newer-format or foreign state
    │   └── LockError               the state lock is held by someone else
    ├── PlanError                   a plan that must not run (prevent_destroy, bad plan file)
    │   ├── StalePlanError          a saved plan no longer matches state, cloud or config
    │   └── RefusedPlanError        a plan over max_hourly_cost: carries the refused plan
    ├── ApplyError                  an action that could not finish; state holds what exists
    │   ├── UnknownReferenceError   a ${...} reference whose node does not exist
    │   ├── BootTimeoutError        a new node still provisioning after the boot timeout
    │   ├── VanishedError           a node not seen again after the consistency window
    │   ├── NotRunningError         a new node that booted into another status
    │   └── TerminateTimeoutError   a terminate the cloud never confirmed
    └── ProviderError               a cloud said no; carries provider, region, code, message
        ├── CapacityError           no capacity for this type here: try elsewhere
        │   ├── NotOfferedError     this type is not sold here at all
        │   └── NoCapacityListedError  the cloud's live catalog lists no capacity here:
        │                             refused before any launch call
        ├── QuotaError              over quota (provider_wide: the whole provider is out)
        ├── RateLimitError          slow down (retry_after seconds, if the cloud said)
        ├── AuthError               credentials missing, wrong or inactive
        ├── InvalidRequestError     the request itself is wrong: never retried elsewhere
        │   └── DuplicateLaunchError  the cloud saw this launch's idempotency key before,
        │                             with other parameters: that first launch happened
        ├── NotFoundError           the object does not exist
        ├── TransientError          5xx, timeouts: safe to retry idempotent calls
        └── LaunchLostError         a launch whose reply was lost, and whose instance did
                                    not appear within the consistency window: nothing
                                    was created
"""

from __future__ import annotations

__all__ = [
    "NavarchError",
    "UsageError",
    "ConfigError",
    "ConfigErrors",
    "StateError",
    "LockError",
    "PlanError",
    "StalePlanError",
    "RefusedPlanError",
    "ApplyError",
    "UnknownReferenceError",
    "BootTimeoutError",
    "VanishedError",
    "NotRunningError",
    "TerminateTimeoutError",
    "ProviderError",
    "CapacityError",
    "NotOfferedError",
    "NoCapacityListedError",
    "QuotaError",
    "RateLimitError",
    "AuthError",
    "InvalidRequestError",
    "DuplicateLaunchError",
    "NotFoundError",
    "TransientError",
    "LaunchLostError",
    "NotSentError",
]


class NavarchError(Exception):
    """An error the user can act on; its str() is the one line the CLI prints."""


class UsageError(NavarchError):
    pass


class ConfigError(NavarchError):
    def __init__(self, message: str, file: str = "", line: int = 0, column: int = 0,
                 path: str = "") -> None:
        self.file, self.line, self.column, self.path = file, line, column, path
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        place = self.file or "<config>"
        if self.line:
            place += f":{self.line}:{self.column}"
        where = f" {self.path}:" if self.path else ""
        return f"{place}:{where} {self.message}"


class ConfigErrors(ConfigError):
    """Several independent config errors found at once (`errors`, in file order). It
    reads as its first; the command prints every one, a line each."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.message, first.file, first.line, first.column, first.path)
        self.errors = list(errors)

    @staticmethod
    def of(errors: list[ConfigError]) -> ConfigError:
        """One error as itself, several as ConfigErrors (flattened)."""
        flat = [e for err in errors for e in getattr(err, "errors", [err])]
        return flat[0] if len(flat) == 1 else ConfigErrors(flat)


class StateError(NavarchError):
    pass


class LockError(StateError):
    def __init__(self, message: str, info: dict | None = None) -> None:
        self.info = info or {}
        super().__init__(message)


class PlanError(NavarchError):
    pass


class StalePlanError(PlanError):
    pass


class RefusedPlanError(PlanError):
    """A plan that was made but must not run (over budget): `plan` is the refused Plan,
    so the user sees what was refused."""

    def __init__(self, message: str, plan: object) -> None:
        self.plan = plan
        super().__init__(message)


class ApplyError(NavarchError):
    pass


class UnknownReferenceError(ApplyError):
    pass


class BootTimeoutError(ApplyError):
    pass


class VanishedError(ApplyError):
    pass


class NotRunningError(ApplyError):
    pass


class TerminateTimeoutError(ApplyError):
    pass


class ProviderError(NavarchError):
    def __init__(self, message: str, *, provider: str = "", region: str = "",
                 code: str = "", cloud_message: str = "") -> None:
        self.provider, self.region, self.code = provider, region, code
        self.cloud_message = cloud_message or message
        self.message = message
        where = "/".join(p for p in (provider, region) if p)
        prefix = f"{where}: " if where else ""
        suffix = f" ({code})" if code else ""
        super().__init__(f"{prefix}{message}{suffix}")


class CapacityError(ProviderError):
    pass


class NotOfferedError(CapacityError):
    """The cloud does not sell this type in this zone or region at all (GCE: machine or
    accelerator type absent from the zone; EC2 `Unsupported`): not a mistake in the
    request, so failover moves on, and no retry will help here."""


class NoCapacityListedError(CapacityError):
    """The cloud's own live catalog lists no capacity for this type here (Lambda's
    `regions_with_capacity_available`): refused before any launch was sent, so it cost
    no launch call and no launch slot; failover moves on."""


class QuotaError(ProviderError):
    """`provider_wide`: the whole provider is out. `instance_types`: the types the
    exhausted quota covers in this region (GCE: a GPU model's quota; EC2: an instance
    family's vCPUs); None: every type in the region."""

    def __init__(self, message: str, *, provider_wide: bool = False,
                 instance_types: frozenset[str] | None = None, **kw: str) -> None:
        self.provider_wide = provider_wide
        self.instance_types = instance_types
        super().__init__(message, **kw)


class RateLimitError(ProviderError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw: str) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class AuthError(ProviderError):
    pass


class InvalidRequestError(ProviderError):
    pass


class DuplicateLaunchError(InvalidRequestError):
    pass


class NotFoundError(ProviderError):
    pass


class TransientError(ProviderError):
    pass


class LaunchLostError(ProviderError):
    pass


class NotSentError(ProviderError):
    """The call was never sent: navarch was stopped (a second Ctrl-C) while the call
    waited for its rate-limit slot. Nothing was created or changed by it."""
