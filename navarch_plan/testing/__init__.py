"""What navarch ships for testing providers and the code that drives them: the
conformance suite (`conformance`), and a real cloud's lag for any provider with the
scenarios it must come through (`lagging`), and a clock whose time passes at once
(`clock`)."""

from navarch_plan.testing.clock import FakeClock
from navarch_plan.testing.conformance import (
    INVALID_TYPE_ERRORS,
    CapacityHook,
    ConformanceGap,
    ProviderConformance,
    RequestFactory,
)
from navarch_plan.testing.lagging import ConsistencyScenarios, LaggingProvider

__all__ = ["CapacityHook", "ConformanceGap", "ConsistencyScenarios", "FakeClock",
           "INVALID_TYPE_ERRORS", "LaggingProvider", "ProviderConformance", "RequestFactory"]
