"""The planner: desired, recorded and observed worlds in (inputs), a Plan out (diff),
with the parts it is made of: what absence means (observed), interrupted launches
(intents, interrupted), references (references), the actions it builds (actions), their
order (graph), whole-plan checks and cost (checks), candidate order (strategies) and
whose an instance is (ownership). Pure: no file, network or cloud SDK."""

from navarch_plan.planner.diff import make_plan
from navarch_plan.planner.inputs import PlanInputs, PlanOptions, live_fingerprint

__all__ = ["PlanInputs", "PlanOptions", "live_fingerprint", "make_plan"]
