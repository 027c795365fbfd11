"""Applying a plan: the DAG executor, one action's runner, failover, pacing, waits, hooks."""
