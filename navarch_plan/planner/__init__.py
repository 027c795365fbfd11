"""The planner: desired, recorded and observed in, a Plan out. Pure."""
