"""What navarch ships for testing providers and the code that drives them: the
conformance suite (`conformance`)."""

from navarch_plan.testing.conformance import (
    INVALID_TYPE_ERRORS,
    CapacityHook,
    ConformanceGap,
    ProviderConformance,
    RequestFactory,
)

__all__ = ["CapacityHook", "ConformanceGap", "INVALID_TYPE_ERRORS", "ProviderConformance",
           "RequestFactory"]
