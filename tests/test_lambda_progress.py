"""Progress names the place the way failover lines do: `lambda/us-east-1` on Lambda (no
zones), `gcp/us-central1-a` where there is a zone. The start line and the live view used
to say `provider/region` only, dropping the zone the failover lines named."""

from __future__ import annotations

import io
import json
from contextlib import ExitStack

from rich.console import Console

from navarch_plan.cli import reporting
from navarch_plan.cli.live import LiveHooks
from navarch_plan.plan import Action, ActionKind, Reason
from tests.conftest import Workdir
from tests.test_e2e_clouds import LambdaCloud

ZONED = Action(key="pool.w[0]", address="pool.w[0]", action=ActionKind.CREATE,
               reason=Reason.MISSING, group="w", provider="gcp", region="us-central1",
               zone="us-central1-a", instance_type="g2-standard-4")


def test_the_start_line_the_live_view_and_json_name_the_zone() -> None:
    assert reporting.started(ZONED) == "pool.w[0]: creating on gcp/us-central1-a..."
    console = Console(record=True, width=200, file=io.StringIO())
    hooks = LiveHooks([ZONED], console)
    hooks.action_start(ZONED)
    console.print(hooks._render())
    (row,) = [line for line in console.export_text().splitlines() if "pool.w[0]" in line]
    assert "gcp/us-central1-a" in row, row
    events: list[str] = []
    reporting.JsonHooks(events.append).action_start(ZONED)
    event = json.loads(events[0])
    assert (event["region"], event["zone"]) == ("us-central1", "us-central1-a")


def test_lambda_progress_names_provider_and_region_throughout(work: Workdir) -> None:
    with ExitStack() as stack:
        lam = LambdaCloud(stack)
        doc = {"version": 1, "workspace": "prog", "providers": {"lambda": lam.provider},
               "defaults": {"ssh_keys": ["ops-team"]},
               "pools": {"w": {"instance_type": "gpu_1x_h100_pcie", "nodes": 1, "providers": [
                   {"name": "lambda", "regions": ["us-west-1", "us-east-1"]}]}}}
        (work.path / "navarch.yaml").write_text(json.dumps(doc))
        result = work.cli("apply", "--auto-approve", env=lam.env)
    assert result.code == 0, result.out + result.err
    lines = [line.split(" ", 1)[1] for line in result.out.splitlines()
             if "pool.w[0]:" in line]
    assert lines[0] == "pool.w[0]: creating on lambda/us-west-1..."
    assert "pool.w[0]: lambda/us-west-1 no capacity (live catalog), trying the next " \
           "candidate" in lines
    assert "pool.w[0]: launching on lambda/us-east-1" in lines
    assert "pool.w[0]: lambda/us-west-1 no capacity (live catalog) -> lambda/us-east-1 " \
           "created" in lines
